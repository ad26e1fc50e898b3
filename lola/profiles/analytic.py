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

Decoders (:class:`DecoderCount`: GPT-2, Qwen2, Llama from their published configurations) are
counted per linear map and per step instead of by closed formulas, as FlopCounterMode counts a
next-token step with tokens t = b s: every map y = x W of n_in x n_out costs 2 t n_in n_out
forward; backward runs through a map when its output needs a gradient (its input does, or its
adapter trains): 2 t n_in n_out for the input gradient when the input needs one, and for a
trained adapter of rank r its forward 2 t r (n_in + n_out) and backward 4 t r n_out + 2 t r n_in
(+ 2 t r n_in for its input gradient). Attention costs 4 b s^2 a d forward (a query heads of d
dimensions, whatever the key-value heads); backward, torch's fused SDPA kernels count
10 b s^2 a d whenever the query, key or value needs a gradient, while SDPA run decomposed
(``attention="math"``) counts 2 b s^2 a d for dV when the value needs it, and for dP, dQ and dK
each when the query or key (the query, the key) needs it. The output head adds 2 t h V forward
and 2 t h V for its input gradient (V the vocabulary). Normalisations, rotary embeddings,
activations and the loss count 0. With one block per layer or per map, C_n, delta_n (against the
nearest deeper block in a lower layer), F^dev_n and F^srv_n follow from these steps, and any set
of blocks is counted exactly.

>>> blocks = analytic_profile("roberta-base")["blocks"]
>>> blocks[0]["params"], blocks[0]["depth"], blocks[0]["name"]
(24576, 1, 'layer.11')
"""
from __future__ import annotations

import json

from .._io import atomic_write_text

__all__ = ["ROBERTA_CONFIGS", "PRETRAINED_CONFIGS", "HEAD_BLOCKS", "FINE_TUNING",
           "analytic_profile", "model_parameters", "DECODER_CONFIGS", "DECODER_TYPES",
           "DECODER_SIZE_KEYS", "DECODER_MATRICES", "DECODER_TARGETS", "DECODER_FINE_TUNING",
           "DTYPE_BYTES", "ATTENTION_KERNELS", "DECODER_ATTENTION", "DecoderCount",
           "decoder_count", "decoder_dimensions", "decoder_matrices"]

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


# Causal language models (decoders): the published config.json of each (its Hugging Face model
# repository), the keys that fix the shapes of a fine-tuning step: width, feed-forward size,
# layers, heads, key-value heads, vocabulary, positions, rotary embedding, and whether the output
# head shares the input embeddings' weights (tie_word_embeddings).
DECODER_CONFIGS = {
    # openai-community/gpt2 config.json; its n_inner is null, which GPT-2 reads as 4 n_embd
    "gpt2": dict(n_layer=12, n_embd=768, n_inner=3072, n_head=12, vocab_size=50257,
                 n_positions=1024, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                 tie_word_embeddings=True),
    # Qwen/Qwen2.5-0.5B config.json
    "qwen2.5-0.5b": dict(num_hidden_layers=24, hidden_size=896, intermediate_size=4864,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0,
                         rms_norm_eps=1e-6, tie_word_embeddings=True),
    # meta-llama/Llama-3.2-1B config.json (its head_dim, 64, is hidden_size / heads)
    "llama-3.2-1b": dict(num_hidden_layers=16, hidden_size=2048, intermediate_size=8192,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                         max_position_embeddings=131072, rope_theta=500000.0,
                         rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0,
                                           original_max_position_embeddings=8192),
                         rms_norm_eps=1e-5, tie_word_embeddings=True),
    # meta-llama/Meta-Llama-3-8B config.json
    "llama-3-8b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                       max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
                       tie_word_embeddings=False),
}
# The transformers architecture (model_type) of each decoder.
DECODER_TYPES = {"gpt2": "gpt2", "qwen2.5-0.5b": "qwen2", "llama-3.2-1b": "llama",
                 "llama-3-8b": "llama"}
_LLAMA_KEYS = dict(layers="num_hidden_layers", hidden="hidden_size",
                   intermediate="intermediate_size", heads="num_attention_heads",
                   kv_heads="num_key_value_heads", positions="max_position_embeddings")
# The configuration key of each size, per architecture.
DECODER_SIZE_KEYS = {
    "gpt2": dict(layers="n_layer", hidden="n_embd", intermediate="n_inner", heads="n_head",
                 kv_heads=None, positions="n_positions"),
    "llama": _LLAMA_KEYS, "qwen2": _LLAMA_KEYS,
}
_LLAMA_MATRICES = (("self_attn.q_proj", "attn_in"), ("self_attn.k_proj", "attn_in"),
                   ("self_attn.v_proj", "attn_in"), ("self_attn.o_proj", "attn_out"),
                   ("mlp.gate_proj", "mlp_in"), ("mlp.up_proj", "mlp_in"),
                   ("mlp.down_proj", "mlp_out"))
# The linear maps of one layer in the order of the forward pass, as (path in the layer, stage):
# attn_in maps read the normalised layer input, attn_out reads the attention output, mlp_in maps
# read the normalised residual stream, mlp_out reads the activation. GPT-2 computes the query,
# key and value in one map, c_attn.
DECODER_MATRICES = {
    "gpt2": (("attn.c_attn", "attn_in"), ("attn.c_proj", "attn_out"), ("mlp.c_fc", "mlp_in"),
             ("mlp.c_proj", "mlp_out")),
    "llama": _LLAMA_MATRICES, "qwen2": _LLAMA_MATRICES,
}
# LoRA targets (module names, as peft matches them): the attention query and value by default,
# and every linear map of the layer for ``all`` (GPT-2's c_proj names two maps).
DECODER_TARGETS = {
    "gpt2": {"default": ("c_attn",), "all": ("c_attn", "c_proj", "c_fc")},
    "llama": {"default": ("q_proj", "v_proj"),
              "all": tuple(path.rsplit(".", 1)[1] for path, _ in _LLAMA_MATRICES)},
}
DECODER_TARGETS["qwen2"] = DECODER_TARGETS["llama"]
# The attention kernel torch 2.13 runs on CPU for a training step of each architecture (batch of
# full sequences, no padding): Llama and Qwen2 pass is_causal to SDPA, which takes its fused CPU
# kernel; GPT-2 passes its causal mask, which SDPA runs decomposed.
DECODER_ATTENTION = {"gpt2": "math", "llama": "fused", "qwen2": "fused"}
# The setting of the bundled decoder tables: batch 4 x 512 tokens, bfloat16, rank 16 on all maps.
DECODER_FINE_TUNING = dict(peft="lora", rank=16, targets="all", batch_size=4,
                           sequence_length=512, dtype="bfloat16", granularity="layer")
# Which of the attention's query, key and value each input map computes.
_ATTENTION_PARTS = {"attn.c_attn": "qkv", "self_attn.q_proj": "q", "self_attn.k_proj": "k",
                    "self_attn.v_proj": "v"}
# How the attention's FLOPs are counted, by the kernel torch runs: "fused" (an SDPA kernel, which
# FlopCounterMode counts as two products forward and five backward: the scores recomputed, dP,
# dV, dQ, dK) or "math" (SDPA decomposed into batched products, each counted as it runs).
ATTENTION_KERNELS = ("fused", "math")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def decoder_dimensions(model_type: str, config: dict) -> dict:
    """Layers, width, feed-forward size, heads, key-value heads, head size and vocabulary."""
    keys = DECODER_SIZE_KEYS[model_type]
    hidden, heads = config[keys["hidden"]], config[keys["heads"]]
    kv_heads = config.get(keys["kv_heads"]) if keys["kv_heads"] else None
    return dict(layers=config[keys["layers"]], hidden=hidden,
                intermediate=config.get(keys["intermediate"]) or 4 * hidden, heads=heads,
                kv_heads=kv_heads or heads, head_dim=config.get("head_dim") or hidden // heads,
                vocab=config["vocab_size"])


def decoder_matrices(model_type: str, dimensions: dict) -> list:
    """(path, stage, in features, out features) of each linear map of a layer, forward order."""
    h, i = dimensions["hidden"], dimensions["intermediate"]
    query = dimensions["heads"] * dimensions["head_dim"]
    key_value = dimensions["kv_heads"] * dimensions["head_dim"]
    sizes = {"attn.c_attn": (h, 3 * h), "attn.c_proj": (h, h), "mlp.c_fc": (h, i),
             "mlp.c_proj": (i, h), "self_attn.q_proj": (h, query),
             "self_attn.k_proj": (h, key_value), "self_attn.v_proj": (h, key_value),
             "self_attn.o_proj": (query, h), "mlp.gate_proj": (h, i), "mlp.up_proj": (h, i),
             "mlp.down_proj": (i, h)}
    return [(path, stage, *sizes[path]) for path, stage in DECODER_MATRICES[model_type]]


class DecoderCount:
    """FLOPs of LoRA training steps of a causal language model, counted from its configuration
    as ``torch.utils.flop_counter.FlopCounterMode`` counts them (module docstring, decoders).

    Blocks are keyed 0 .. N-1 in the order of the forward pass: one per layer
    (``granularity="layer"``: every adapted map of the layer) or one per adapted map
    (``"matrix"``), so that key N-1 is depth 1.

    >>> count = DecoderCount("gpt2", DECODER_CONFIGS["gpt2"], rank=16, targets=("c_attn",),
    ...                      batch_size=4, sequence_length=512)
    >>> len(count.names), count.names[-1], count.params(11)
    (12, 'layer.11', 49152)
    """

    def __init__(self, model_type, config, *, rank, targets, batch_size, sequence_length,
                 granularity="layer", attention="fused"):
        if attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_KERNELS)}, got "
                             f"{attention!r}")
        self.attention = attention
        self.dimensions = decoder_dimensions(model_type, config)
        self.matrices = decoder_matrices(model_type, self.dimensions)
        self.rank, self.batch, self.length = rank, batch_size, sequence_length
        self.tokens = batch_size * sequence_length
        adapted = [slot for slot, (path, *_rest) in enumerate(self.matrices)
                   if path.rsplit(".", 1)[1] in set(targets)]
        layers = self.dimensions["layers"]
        if granularity == "matrix":
            self.slots = [(layer, (slot,)) for layer in range(layers) for slot in adapted]
            self.names = [f"layer.{layer}.{self.matrices[slots[0]][0]}"
                          for layer, slots in self.slots]
        else:
            self.slots = [(layer, tuple(adapted)) for layer in range(layers)]
            self.names = [f"layer.{layer}" for layer in range(layers)]

    def params(self, key) -> int:
        """LoRA parameters of block ``key``: r (in + out) per adapted map."""
        _, slots = self.slots[key]
        return sum(self.rank * (self.matrices[slot][2] + self.matrices[slot][3])
                   for slot in slots)

    def _layer(self, trained, input_needs_grad):
        """Forward and backward FLOPs of one layer, and whether its output needs a gradient.

        A map's output needs a gradient when its input does or its adapter trains; only then
        does the backward pass run through it: the frozen weight's input gradient when its input
        needs one, and the adapter's weight gradients (and its input gradient likewise).
        """
        t, r = self.tokens, self.rank
        attention = (self.batch * self.length * self.length * self.dimensions["heads"]
                     * self.dimensions["head_dim"])  # one product of the attention, / 2
        forward, backward = 4 * attention, 0  # two products forward, in either kernel
        made = {}  # stage -> whether some output of a map of that stage needs a gradient
        reads = {"attn_in": input_needs_grad}  # stage -> whether its input needs one
        parts = set()  # which of the query, key and value need a gradient
        for slot, (path, stage, n_in, n_out) in enumerate(self.matrices):
            if stage == "attn_out" and stage not in reads:
                reads[stage] = made.get("attn_in", False)  # the attention's output
                if reads[stage] and self.attention == "fused":
                    backward += 10 * attention  # torch's SDPA kernels: five products
                elif reads[stage]:  # decomposed: dV = P^T dO; dP = dO V^T, dQ, dK
                    backward += 2 * attention * (("v" in parts) + bool(parts & {"q", "k"})
                                                 + ("q" in parts) + ("k" in parts))
            elif stage == "mlp_in" and stage not in reads:
                reads[stage] = input_needs_grad or made.get("attn_out", False)  # residual
            elif stage == "mlp_out" and stage not in reads:
                reads[stage] = made.get("mlp_in", False)  # the activation
            forward += 2 * t * n_in * n_out
            adapted = slot in trained
            if adapted:
                forward += 2 * t * r * (n_in + n_out)
            output = reads[stage] or adapted
            made[stage] = made.get(stage, False) or output
            if stage == "attn_in" and output:
                parts.update(_ATTENTION_PARTS[path])
            if reads[stage]:
                backward += 2 * t * n_in * n_out
            if adapted:  # dB, the gradient of x A, dA, and dx through A when x needs it
                backward += 4 * t * r * n_out + 2 * t * r * n_in * (2 if reads[stage] else 1)
        return forward, backward, reads["mlp_in"] or made["mlp_out"]

    def _pieces(self, keys, input_needs_grad=False):
        trained = {}
        for key in keys:
            layer, slots = self.slots[key]
            trained.setdefault(layer, set()).update(slots)
        pieces, needs = [], input_needs_grad
        for layer in range(self.dimensions["layers"]):
            forward, backward, needs = self._layer(trained.get(layer, set()), needs)
            pieces.append((forward, backward))
        head = 2 * self.tokens * self.dimensions["hidden"] * self.dimensions["vocab"]
        return pieces, head, head if needs else 0

    def step_flops(self, keys, *, input_reference=False) -> float:
        """C(A): one step training the blocks ``keys``; ``input_reference`` also back-propagates
        into the input embeddings' output (the deepest block's reference, section 8)."""
        pieces, head_forward, head_backward = self._pieces(keys, input_reference)
        return float(sum(f + b for f, b in pieces) + head_forward + head_backward)

    def split_flops(self, key) -> tuple:
        """(F^dev, F^srv) of block ``key`` in split mode, cut after its layer (section 9)."""
        cut = self.slots[key][0]
        pieces, head_forward, head_backward = self._pieces([key])
        device = sum(f for f, _ in pieces[:cut + 1]) + pieces[cut][1]
        server = sum(f + b for f, b in pieces[cut + 1:]) + head_forward + head_backward
        return float(device), float(server)

    def extra_flops(self, key) -> float:
        """delta_n: C({n, n'}) - C({n'}), n' the nearest deeper block in a lower layer (the last
        block of the layer below); the blocks of layer 0 against the input reference."""
        layer = self.slots[key][0]
        if layer:
            lower = max(other for other, (place, _) in enumerate(self.slots) if place < layer)
            return self.step_flops([key, lower]) - self.step_flops([lower])
        return (self.step_flops([key], input_reference=True)
                - self.step_flops([], input_reference=True))

    def blocks(self) -> list:
        """Per block, depth 1 first: name, layer, depth, params, flops, extra_flops and the two
        split-mode FLOPs."""
        count = len(self.slots)
        rows = []
        for key in range(count - 1, -1, -1):
            device, server = self.split_flops(key)
            rows.append(dict(name=self.names[key], layer=self.slots[key][0], depth=count - key,
                             params=self.params(key), flops=self.step_flops([key]),
                             extra_flops=self.extra_flops(key), split_device_flops=device,
                             split_server_flops=server))
        return rows


def decoder_count(model: str, *, config: dict | None = None,
                  fine_tuning: dict | None = None) -> DecoderCount:
    """The :class:`DecoderCount` of a decoder of :data:`DECODER_CONFIGS`, with ``config`` and
    ``fine_tuning`` overriding its configuration and :data:`DECODER_FINE_TUNING`.

    >>> blocks = decoder_count("llama-3-8b", fine_tuning=dict(granularity="matrix")).blocks()
    >>> len(blocks), blocks[0]["name"], blocks[6]["name"], blocks[7]["name"]
    (224, 'layer.31.mlp.down_proj', 'layer.31.self_attn.q_proj', 'layer.30.mlp.down_proj')
    """
    model_type = DECODER_TYPES[model]
    tuning = {**DECODER_FINE_TUNING, **(fine_tuning or {})}
    targets = tuning["targets"]
    if isinstance(targets, str):
        targets = DECODER_TARGETS[model_type][targets]
    return DecoderCount(model_type, {**DECODER_CONFIGS[model], **(config or {})},
                        rank=tuning["rank"], targets=targets, batch_size=tuning["batch_size"],
                        sequence_length=tuning["sequence_length"],
                        granularity=tuning["granularity"],
                        attention=tuning.get("attention", DECODER_ATTENTION[model_type]))


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
