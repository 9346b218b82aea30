"""On-device cost of the int8 backbone: firmware_sim's estimate (latency, energy, arena, flash, fits) of one
sequence through the encoder on a device profile, before anything is deployed.

    from edgelearn.adapters import Int8Backbone
    from edgelearn.adapters.cost import backbone_cost
    rows = backbone_cost(Int8Backbone("minilm.int8"), ("phone-soc", "corstone300-u55-256"), seq_len=64)

The Int8Backbone itself runs on edgelearn's kernels, which torch.export cannot trace; `DenseEncoder` is the same
network (the backbone's own int8 weights, dequantised, and its LayerNorms and embeddings) written as plain torch ops
for one unpadded sequence, which firmware_sim's torch importer turns into its graph (int8 deployment: int8
weights and activations, int32 biases; the word-embedding table is a GATHER over its int8 rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Int8Backbone
from .qmodules import QEmbedding, QLinear

TARGETS = ("phone-soc", "corstone300-u55-256")


def _linear(q: QLinear) -> nn.Linear:
    lin = nn.Linear(q.in_features, q.out_features, bias=q.bias_t is not None)
    with torch.no_grad():
        lin.weight.copy_(q.dequantized())
        if q.bias_t is not None:
            lin.bias.copy_(q.bias_t)
    return lin


class _Layer(nn.Module):
    def __init__(self, layer, heads: int):
        super().__init__()
        sa, ao = layer.attention.self, layer.attention.output
        self.heads = heads
        self.q, self.k, self.v, self.o = (_linear(m) for m in (sa.query, sa.key, sa.value, ao.dense))
        self.ln1, self.ln2 = ao.LayerNorm, layer.output.LayerNorm
        self.fc1, self.fc2 = _linear(layer.intermediate.dense), _linear(layer.output.dense)

    def forward(self, h):  # h [1, T, d]
        T, d = h.shape[1], h.shape[2]
        H = self.heads

        def heads(t):
            return t.view(1, T, H, d // H).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(heads(self.q(h)), heads(self.k(h)), heads(self.v(h)))
        a = self.ln1(self.o(ctx.transpose(1, 2).reshape(1, T, d)) + h)
        return self.ln2(self.fc2(F.gelu(self.fc1(a))) + a)


class DenseEncoder(nn.Module):
    """The backbone's encoder for one unpadded sequence, as traceable torch ops: forward(input_ids [1, T])."""

    def __init__(self, backbone: Int8Backbone):
        super().__init__()
        enc = backbone.encoder
        e = enc.embeddings
        word = e.word_embeddings
        self.word = nn.Embedding(*word.weight.shape)
        with torch.no_grad():
            self.word.weight.copy_(word.weight if isinstance(word, QEmbedding) else word.weight.detach())
        self.register_buffer("pos", e.position_embeddings.weight.detach().clone())
        self.register_buffer("tok", e.token_type_embeddings.weight[0].detach().clone())
        self.ln = e.LayerNorm
        self.layers = nn.ModuleList(_Layer(layer, backbone.config.num_attention_heads) for layer in enc.encoder.layer)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        h = self.ln(self.word(input_ids) + self.pos[:T] + self.tok)
        for layer in self.layers:
            h = layer(h)
        return h


def backbone_cost(backbone: Int8Backbone, targets=TARGETS, seq_len: int = 64) -> list[dict]:
    """firmware_sim estimates of one seq_len-token sequence through `backbone` on each target (default stack of
    each: the NPU for the phone-class SoC, Vela for Corstone-300/Ethos-U55). One dict per target: the `estimate`
    JSON contract without the per-layer table, plus macs and the number of ops."""
    from firmware_sim.estimate import estimate

    if not 1 <= seq_len <= backbone.config.max_position_embeddings:
        raise ValueError(f"seq_len: must be in [1, {backbone.config.max_position_embeddings}], got {seq_len}")
    module = DenseEncoder(backbone).eval()
    ids = torch.ones(1, seq_len, dtype=torch.long)
    rows = []
    for t in targets:
        e = estimate(module, t, example_inputs=(ids,))
        js = e.to_json()
        js.pop("layers")
        js.update(model="int8 " + backbone.header.get("source", "backbone"), seq_len=seq_len,
                  macs=int(sum(c.macs for c in e.layers)), ops=len(e.layers))
        rows.append(js)
    return rows


__all__ = ["DenseEncoder", "TARGETS", "backbone_cost"]
