"""Analytic (not measured) block costs of LoRA fine-tuning of a RoBERTa or BERT encoder.

A placeholder until measured profiles replace it: every figure here is a count from the model's
configuration, and the files it writes say ``"measurement": {"method": "analytic"}``.

Symbols: batch b, sequence length s, hidden size h, intermediate size i, heads a, layers L, LoRA
rank r on the query and value projections, 4 bytes per fp32 element.

FLOPs of one training step as ``torch.utils.flop_counter`` counts them (a multiply-add is 2):
the forward pass over all L layers, then input gradients back from the loss through the layers
above the block (frozen weights need no weight gradients), then the block's own layer down to its
adapters (its key projection needs no gradient, so attention backward skips dK)::

    F_fwd   = 8 b s h^2 + 4 b s^2 h + 4 b s h i       (projections, attention, feed-forward)
    F_bwd   = 8 b s h^2 + 8 b s^2 h + 4 b s h i       (a frozen layer, input gradients only)
    F_block = 2 b s h^2 + 6 b s^2 h + 4 b s h i + 12 b s h r
    F_head  = 2 b h^2 + 2 b h c                       (classification head, c labels)

    C(d) = L F_fwd + 8 b s h r + (d - 1) F_bwd + F_block + 2 F_head

for the block at depth d (layer l = L - d, 0-based); the adapter adds 8 b s h r forward.

A BERT encoder (``minilm``: all-MiniLM-L6-v2) counts the same: its pooler (a dense h x h on the
first token) and classifier (h x c) are F_head, and the token type embeddings are a lookup. When
the classification head is trained as a block of its own (``head``; the default for ``minilm``),
it is block ``classifier`` at depth 1 and layer l moves to depth d = L - l + 1. Its step runs the
whole forward with every adapter off and back-propagates into the classifier's weights only (its
input needs no gradient): C(classifier) = L F_fwd + F_head + 2 b h c. The layers' formula above
holds with d - 1 in place of d. The head adds delta = 2 b h c (its weight gradient) to a step that
already reaches a layer.

Peak memory: the fp32 weights of the whole model, the activations kept for back-propagation of the
d traversed layers, and the adapter's weights, gradients and two Adam moments:

    m(d) = 4 P_model + d * A_layer + 16 D,
    A_layer = 2 s b h (34 + 5 a s / h)   bytes

where A_layer is the per-layer activation memory of Korthikanti et al., "Reducing Activation
Recomputation in Large Transformer Models" (MLSys 2023), eq. (1), for 16-bit tensors, doubled for
fp32. The adapter has D = 2 modules x r (h + h) = 4 r h parameters. The head block, when there is
one, keeps no layer's activations: m(classifier) = 4 P_model + 16 (h c + c), and a layer at depth
d stores d - 1 layers' activations.

>>> blocks = analytic_profile("roberta-base")["blocks"]
>>> blocks[0]["params"], blocks[0]["depth"], blocks[0]["name"]
(24576, 1, 'layer.11')
"""
from __future__ import annotations

import json

from .._io import atomic_write_text

__all__ = ["ROBERTA_CONFIGS", "PRETRAINED_CONFIGS", "HEAD_BLOCKS", "FINE_TUNING",
           "analytic_profile", "model_parameters"]

# Hugging Face configurations of roberta-base and roberta-large (config.json of each model).
ROBERTA_CONFIGS = {
    "roberta-base": dict(num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                         num_attention_heads=12, vocab_size=50265, max_position_embeddings=514,
                         type_vocab_size=1),
    "roberta-large": dict(num_hidden_layers=24, hidden_size=1024, intermediate_size=4096,
                          num_attention_heads=16, vocab_size=50265, max_position_embeddings=514,
                          type_vocab_size=1),
}
# config.json of the pretrained models of lola.pretrained: all-MiniLM-L6-v2 (BERT, 6 layers,
# width 384, 12 heads, an uncased vocabulary of 30,522).
PRETRAINED_CONFIGS = {
    "minilm": dict(num_hidden_layers=6, hidden_size=384, intermediate_size=1536,
                   num_attention_heads=12, vocab_size=30522, max_position_embeddings=512,
                   type_vocab_size=2),
}
# Models whose classification head is trained as a block of its own (at depth 1), by its module.
HEAD_BLOCKS = {"minilm": "classifier"}
_ARCHITECTURES = {"minilm": "BertForSequenceClassification"}
# Their fine-tuning defaults where they differ from FINE_TUNING: the race's 64 tokens.
_TUNING = {"minilm": dict(sequence_length=64)}
FINE_TUNING = dict(peft="lora", rank=8, target_modules=["query", "value"], batch_size=16,
                   sequence_length=128, dtype="float32", num_labels=2)


def model_parameters(config: dict, num_labels: int = 2) -> int:
    """Parameters of RobertaForSequenceClassification (or BertForSequenceClassification, whose
    pooler and classifier count as RoBERTa's head) with this configuration."""
    h, i, L = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    embeddings = (config["vocab_size"] + config["max_position_embeddings"]
                  + config["type_vocab_size"]) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * (2 * h)
    head = (h * h + h) + (h * num_labels + num_labels)
    return embeddings + L * layer + head


def analytic_profile(model: str, *, config: dict | None = None,
                     fine_tuning: dict | None = None, head: bool | None = None) -> dict:
    """The profile document of ``model`` from the formulas above.

    ``config`` and ``fine_tuning`` override entries of the model's preset (RoBERTa's, or a
    pretrained model's) and of :data:`FINE_TUNING` (batch_size, sequence_length, rank,
    num_labels). ``head``: list the trained classification head as block ``classifier`` at depth
    1 (default: for the models of :data:`HEAD_BLOCKS`).

    >>> [b["name"] for b in analytic_profile("minilm")["blocks"]][:3]
    ['classifier', 'layer.5', 'layer.4']
    """
    config = {**ROBERTA_CONFIGS.get(model, {}), **PRETRAINED_CONFIGS.get(model, {}),
              **(config or {})}
    tuning = {**FINE_TUNING, **_TUNING.get(model, {}), **(fine_tuning or {})}
    head = model in HEAD_BLOCKS if head is None else head
    b, s, r = tuning["batch_size"], tuning["sequence_length"], tuning["rank"]
    h, i = config["hidden_size"], config["intermediate_size"]
    a, L = config["num_attention_heads"], config["num_hidden_layers"]
    c = tuning["num_labels"]
    f_forward = 8 * b * s * h * h + 4 * b * s * s * h + 4 * b * s * h * i
    f_backward = 8 * b * s * h * h + 8 * b * s * s * h + 4 * b * s * h * i
    f_block = 2 * b * s * h * h + 6 * b * s * s * h + 4 * b * s * h * i + 12 * b * s * h * r
    f_head = 2 * b * h * h + 2 * b * h * c
    activation_bytes = 2 * s * b * h * (34 + 5 * a * s / h)
    adapter_params = 4 * r * h
    weights_bytes = 4 * model_parameters(config, c)
    blocks = []
    if head:
        head_params = h * c + c
        blocks.append(dict(
            name="classifier", depth=1, params=head_params,
            flops=float(L * f_forward + f_head + 2 * b * h * c), latency_s=None,
            memory_bytes=float(weights_bytes + 16 * head_params)))
    for traversed in range(1, L + 1):  # layers back-propagated through: the block's and above
        layer = L - traversed
        blocks.append(dict(
            name=f"layer.{layer}", layer=layer, depth=traversed + int(head),
            params=adapter_params,
            flops=float(L * f_forward + 8 * b * s * h * r + (traversed - 1) * f_backward
                        + f_block + 2 * f_head),
            latency_s=None,
            memory_bytes=float(weights_bytes + traversed * activation_bytes
                               + 16 * adapter_params)))
    architecture = _ARCHITECTURES.get(model, "RobertaForSequenceClassification")
    return {
        "model": model,
        "config": {"architecture": architecture, **config, **tuning,
                   **({"head": HEAD_BLOCKS.get(model, "classifier")} if head else {})},
        "measurement": {
            "method": "analytic",
            "note": "counted from the configuration by lola.profiles.analytic, not measured; "
                    "latency_s is null because nothing was timed",
            "host": None, "libraries": {}, "repetitions": 0},
        "blocks": blocks,
    }


def main(argv=None) -> None:
    """``python -m lola.profiles.analytic MODEL [-o FILE]``: write an analytic profile."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lola.profiles.analytic",
                                     description="Write the analytic profile of a model.")
    parser.add_argument("model", choices=sorted({**ROBERTA_CONFIGS, **PRETRAINED_CONFIGS}))
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    if args.output:  # one line and exit 2, as every lola command, before any work
        from .._io import OutputPathError, check_output_path

        try:
            check_output_path(args.output, option="-o")
        except OutputPathError as err:
            import sys

            print(f"{parser.prog}: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    text = json.dumps(analytic_profile(args.model), indent=2) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
