"""Forward-gradient (zeroth-order) training without an autograd graph.

One step on a batch, K seeds s_k drawn from a seeded generator:

    PerturbedForward  runs the model once for all P streams stacked along the batch dimension (in chunks of
                      streams under a memory budget; central chunks keep each (+k, -k) pair together; the shared
                      prefix before the first trained LoRA layer is computed once and reused by every chunk)
    projected grads   central: g_k = (L(+k) - L(-k)) / (2 eps);  forward: g_k = (L(+k) - L(0)) / eps
    update            every trained tensor t (LoRA A/B, head W/b):  t += sum_k (-lr g_k / K) Z(s_k, id(t), slot(t))
                      with kernels.zo_replay_seeds_f32, in place.

g_k Z_k is an unbiased (central: to O(eps^2)) estimate of the gradient projected on Z_k, so the update is SGD on
(1/K) sum_k g_k Z_k. The pairs (s_k, g_k) are all a client needs to send: ``apply_pairs`` rebuilds the update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from . import _ops
from .lora import MODES, Streams, perturbing, set_perturbation_scale, tensor_scales, trainable_tensors

SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class Schedule:
    """Learning rate at a step: linear warmup over `warmup` steps, then constant, cosine or linear decay to
    `final` x lr at `total` steps."""

    lr: float
    kind: str = "constant"
    warmup: int = 0
    total: int | None = None
    final: float = 0.0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, got {self.kind!r}")
        if self.kind != "constant" and not self.total:
            raise ValueError(f"schedule {self.kind!r} needs total steps")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: must be a finite number > 0, got {self.lr}")

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.lr
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        f = 0.5 * (1 + math.cos(math.pi * t)) if self.kind == "cosine" else 1.0 - t
        return self.lr * (self.final + (1.0 - self.final) * f)


@dataclass
class StepResult:
    loss: float  # loss at the current parameters (central: mean of the pair means; forward: L(0))
    seeds: np.ndarray  # uint64 [K]
    g: np.ndarray  # float32 [K] projected gradients
    lr: float
    losses: np.ndarray = field(repr=False, default=None)  # [P] stream losses

    def pairs(self) -> list[tuple[int, float]]:
        """(seed, g) pairs: the seed-only upload of a client (K x (8 + 4) bytes)."""
        return [(int(s), float(g)) for s, g in zip(self.seeds, self.g)]


def projected_gradients(losses: np.ndarray, eps: float, mode: str) -> np.ndarray:
    """g_k from the P stream losses in kernel order."""
    losses = np.asarray(losses, dtype=np.float64)
    if mode == "central":
        return ((losses[0::2] - losses[1::2]) / (2 * eps)).astype(np.float32)
    return ((losses[1:] - losses[0]) / eps).astype(np.float32)


def chunks(num_seeds: int, mode: str, max_streams: int) -> list[slice]:
    """Seed slices of each chunk so that a chunk runs at most `max_streams` streams (at least one seed)."""
    per = max_streams // 2 if mode == "central" else max_streams - 1
    per = max(1, per)
    n = math.ceil(num_seeds / per)
    per = math.ceil(num_seeds / n)  # even chunks: no tiny tail
    return [slice(i, min(num_seeds, i + per)) for i in range(0, num_seeds, per)]


class PerturbedForward:
    """Stream losses of a model for a batch and K seeds, chunked under a memory budget.

    The model follows the protocol of ``SentenceClassifier``: ``prefix(ids, mask, head)``,
    ``stream_losses(prefix, labels, streams, head) -> [P]``, ``stream_bytes(prefix)``.
    chunk_bytes: working-memory budget of one chunk (None = all streams at once); chunk_streams: a fixed
    number of streams per chunk instead.
    """

    def __init__(self, model: nn.Module, eps: float = 1e-3, mode: str = "central", dist: str = "gaussian",
                 head: bool = True, chunk_bytes: int | None = 48 << 20, chunk_streams: int | None = None):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if not eps > 0:
            raise ValueError(f"eps: must be > 0, got {eps}")
        self.model, self.eps, self.mode, self.dist, self.head = model, float(eps), mode, dist, head
        self.chunk_bytes, self.chunk_streams = chunk_bytes, chunk_streams
        self.last_chunks: list[slice] = []

    def max_streams(self, pre, num_seeds: int) -> int:
        if self.chunk_streams:
            return int(self.chunk_streams)
        P = 2 * num_seeds if self.mode == "central" else num_seeds + 1
        if self.chunk_bytes is None:
            return P
        return max(2, min(P, int(self.chunk_bytes // max(1, self.model.stream_bytes(pre)))))

    @torch.inference_mode()
    def losses(self, input_ids, attention_mask, labels, seeds: np.ndarray, pre=None) -> np.ndarray:
        """Stream losses [P] in kernel order (forward mode: L(0) then L(+k)). pre: the batch's prefix when the
        caller already has it (e.g. cached frozen-layer activations); input_ids / attention_mask are then unused."""
        seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
        with _ops.quiet_blas():
            return self._losses(input_ids, attention_mask, labels, seeds, pre)

    def _losses(self, input_ids, attention_mask, labels, seeds, pre=None):
        if pre is None:
            pre = self.model.prefix(input_ids, attention_mask, self.head)
        self.last_chunks = chunks(len(seeds), self.mode, self.max_streams(pre, len(seeds)))
        out = []
        for i, sl in enumerate(self.last_chunks):
            st = Streams(seeds[sl], self.eps, self.mode, self.dist)
            L = self.model.stream_losses(pre, labels, st, self.head).numpy()
            out.append(L if (self.mode == "central" or i == 0) else L[1:])
        return np.concatenate(out)

    def gradients(self, input_ids, attention_mask, labels, seeds, pre=None) -> tuple[np.ndarray, np.ndarray]:
        """(g [K] float32, stream losses [P])."""
        L = self.losses(input_ids, attention_mask, labels, seeds, pre)
        return projected_gradients(L, self.eps, self.mode), L


class StackedModel(nn.Module):
    """Gives any model (e.g. transformers' BertModel + add_lora + a ZOLinear head) the PerturbedForward protocol:
    the batch is replicated P times along dimension 0, so every tensor is stacked from the start (no shared
    prefix; models written like ``SentenceClassifier`` share it).

    model(input_ids, attention_mask) -> logits [B, C]; loss: per-example loss(logits, labels) (default CE).
    """

    def __init__(self, model: nn.Module, loss=None):
        super().__init__()
        self.model = model
        self.loss = loss or (lambda logits, y: torch.nn.functional.cross_entropy(logits.double(), y, reduction="none"))

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask)

    def prefix(self, input_ids, attention_mask, head: bool = True):
        return input_ids, attention_mask

    def stream_losses(self, pre, labels, streams: Streams, head: bool = True) -> torch.Tensor:
        ids, mask = pre
        P, B = streams.P, ids.shape[0]
        streams.rows = B
        with perturbing(self.model, streams, head=head):
            logits = self.model(ids.repeat(P, *[1] * (ids.dim() - 1)), mask.repeat(P, *[1] * (mask.dim() - 1)))
        return self.loss(logits, labels.repeat(P)).view(P, B).mean(1)

    def stream_bytes(self, pre) -> int:
        widest = max((m.out_features for m in self.model.modules() if isinstance(m, nn.Linear)), default=1)
        return 16 * pre[0].numel() * widest


def apply_pairs(model: nn.Module, seeds, g, lr: float, head: bool = True, dist: str = "gaussian") -> None:
    """Apply the update of (seed, g) pairs: t += sum_k (-lr sigma(t) g_k / K) Z(s_k, id(t), slot(t)) for every
    trained tensor t of `model` (how a client steps, and how a server rebuilds a client's update); sigma(t) is the
    module's perturbation scale (1 unless set_perturbation_scale changed it)."""
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    g = np.asarray(g, dtype=np.float64)
    if g.shape != seeds.shape:
        raise ValueError(f"g: expected shape {seeds.shape} (one per seed), got {g.shape}")
    coefs = -float(lr) * g / len(seeds)
    with torch.no_grad(), _ops.quiet_blas():
        for (_name, t, layer_id, slot), sigma in zip(trainable_tensors(model, head), tensor_scales(model, head)):
            _ops.replay(t, seeds, (sigma * coefs).astype(np.float32), layer_id, slot, dist)


class ZOTrainer:
    """SGD with forward gradients: ``step(input_ids, attention_mask, labels) -> StepResult``.

    lr: float or Schedule; K seeds per step drawn from np.random.Generator(Philox(seed)); mode central/forward;
    train_head: perturb and train the head as well as the trainable LoRA layers; lora_scale: sigma of the LoRA
    modules (see set_perturbation_scale).
    """

    def __init__(self, model: nn.Module, lr=1e-3, eps: float = 1e-3, K: int = 16, mode: str = "central",
                 dist: str = "gaussian", train_head: bool = True, chunk_bytes: int | None = 48 << 20,
                 chunk_streams: int | None = None, seed: int = 0, lora_scale: float | None = None):
        if K < 1:
            raise ValueError(f"K: must be >= 1, got {K}")
        self.model, self.K, self.head, self.dist = model, int(K), bool(train_head), dist
        if lora_scale is not None:
            set_perturbation_scale(model, lora=lora_scale)
        self.schedule = lr if isinstance(lr, Schedule) else Schedule(float(lr))
        self.fwd = PerturbedForward(model, eps, mode, dist, self.head, chunk_bytes, chunk_streams)
        self.rng = np.random.Generator(np.random.Philox(int(seed)))
        self.steps = 0
        if not trainable_tensors(model, self.head):
            raise ValueError("nothing to train: add LoRA layers (add_lora) or set train_head=True")

    def draw_seeds(self) -> np.ndarray:
        return self.rng.integers(0, 2**63, size=self.K, dtype=np.uint64)

    def step(self, input_ids, attention_mask, labels) -> StepResult:
        seeds = self.draw_seeds()
        g, L = self.fwd.gradients(input_ids, attention_mask, labels, seeds)
        lr = self.schedule(self.steps)
        apply_pairs(self.model, seeds, g, lr, self.head, self.dist)
        self.steps += 1
        loss = float(L.mean()) if self.fwd.mode == "central" else float(L[0])
        return StepResult(loss, seeds, g, lr, L)


@torch.inference_mode()
def evaluate(model: nn.Module, input_ids, attention_mask, labels, batch: int = 64) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the unperturbed model."""
    correct, loss, n = 0, 0.0, len(labels)
    for i in range(0, n, batch):
        logits = model(input_ids[i:i + batch], attention_mask[i:i + batch])
        y = labels[i:i + batch]
        correct += int((logits.argmax(1) == y).sum())
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
    return correct / n, loss / n
