"""Analytic (not measured) block costs of LoRA fine-tuning of a RoBERTa encoder.

A placeholder until measured profiles replace it: every figure here is a count from the model's
configuration, and the files it writes say ``"measurement": {"method": "analytic"}``.

Symbols: batch b, sequence length s, hidden size h, intermediate size i, heads a, layers L, LoRA
rank r on the query and value projections, 4 bytes per fp32 element.

Forward FLOPs of one encoder layer (a multiply-add counts 2):

    F_layer = 8 b s h^2          (query, key, value, output projections)
            + 4 b s^2 h          (Q K^T and the attention-weighted sum)
            + 4 b s h i          (the two feed-forward matrices)

The block of layer l (0-based) has depth d = L - l. One training step that yields its gradient
runs the forward pass over all L layers and back-propagates input gradients through the d layers
from the output down to layer l; frozen weights need no weight gradients, so each of those layers
costs about one forward pass more. With the classification head (dense h x h on the first token,
then h x 2) and the adapter (forward 8 b s h r on the two projections, backward about twice that):

    C(d) = (L + d) F_layer + 3 (2 b h^2 + 4 b h) + 3 * 8 b s h r

Peak memory: the fp32 weights of the whole model, the activations kept for back-propagation of the
d traversed layers, and the adapter's weights, gradients and two Adam moments:

    m(d) = 4 P_model + d * A_layer + 16 D,
    A_layer = 2 s b h (34 + 5 a s / h)   bytes

where A_layer is the per-layer activation memory of Korthikanti et al., "Reducing Activation
Recomputation in Large Transformer Models" (MLSys 2023), eq. (1), for 16-bit tensors, doubled for
fp32. The adapter has D = 2 modules x r (h + h) = 4 r h parameters.

>>> blocks = analytic_profile("roberta-base")["blocks"]
>>> blocks[0]["params"], blocks[0]["depth"], blocks[0]["name"]
(24576, 1, 'layer.11')
"""
from __future__ import annotations

import json
from pathlib import Path

from .._io import atomic_write_text

__all__ = ["ROBERTA_CONFIGS", "analytic_profile", "model_parameters", "write_bundled"]

# Hugging Face configurations of roberta-base and roberta-large (config.json of each model).
ROBERTA_CONFIGS = {
    "roberta-base": dict(num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                         num_attention_heads=12, vocab_size=50265, max_position_embeddings=514,
                         type_vocab_size=1),
    "roberta-large": dict(num_hidden_layers=24, hidden_size=1024, intermediate_size=4096,
                          num_attention_heads=16, vocab_size=50265, max_position_embeddings=514,
                          type_vocab_size=1),
}
FINE_TUNING = dict(peft="lora", rank=8, target_modules=["query", "value"], batch_size=16,
                   sequence_length=128, dtype="float32", num_labels=2)


def model_parameters(config: dict, num_labels: int = 2) -> int:
    """Parameters of RobertaForSequenceClassification with this configuration."""
    h, i, L = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    embeddings = (config["vocab_size"] + config["max_position_embeddings"]
                  + config["type_vocab_size"]) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * (2 * h)
    head = (h * h + h) + (h * num_labels + num_labels)
    return embeddings + L * layer + head


def analytic_profile(model: str) -> dict:
    """The profile document (specification, section 7) of ``model`` from the formulas above."""
    config = ROBERTA_CONFIGS[model]
    b, s, r = FINE_TUNING["batch_size"], FINE_TUNING["sequence_length"], FINE_TUNING["rank"]
    h, i = config["hidden_size"], config["intermediate_size"]
    a, L = config["num_attention_heads"], config["num_hidden_layers"]
    f_layer = 8 * b * s * h * h + 4 * b * s * s * h + 4 * b * s * h * i
    head = 2 * b * h * h + 4 * b * h
    adapter = 8 * b * s * h * r
    activation_bytes = 2 * s * b * h * (34 + 5 * a * s / h)
    adapter_params = 4 * r * h
    weights_bytes = 4 * model_parameters(config, FINE_TUNING["num_labels"])
    blocks = []
    for depth in range(1, L + 1):
        layer = L - depth
        blocks.append(dict(
            name=f"layer.{layer}", layer=layer, depth=depth, params=adapter_params,
            flops=float((L + depth) * f_layer + 3 * head + 3 * adapter),
            latency_s=None,
            memory_bytes=float(weights_bytes + depth * activation_bytes + 16 * adapter_params)))
    return {
        "model": model,
        "config": {"architecture": "RobertaForSequenceClassification", **config, **FINE_TUNING},
        "measurement": {
            "method": "analytic",
            "note": "counted from the configuration by lola.profiles.analytic, not measured; "
                    "latency_s is null because nothing was timed",
            "host": None, "libraries": {}, "repetitions": 0},
        "blocks": blocks,
    }


def write_bundled(directory: Path | None = None) -> list[Path]:
    """Regenerate the bundled analytic tables."""
    directory = Path(directory or Path(__file__).resolve().parent)
    written = []
    for model in ROBERTA_CONFIGS:
        path = directory / f"{model}.json"
        atomic_write_text(path, json.dumps(analytic_profile(model), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_bundled():
        print(path)
