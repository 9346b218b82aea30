"""LoRA adapters and zo-perturbable heads for torch models, and the streams that perturb them.

A forward pass normally runs one set of parameters. Inside ``perturbing(model, streams)`` it runs P perturbed
copies at once, stacked along the leading (batch) dimension: a tensor is either *shared* (leading size
``streams.rows``: identical for every stream, e.g. everything before the first LoRA layer) or *stacked*
(leading size ``P * rows``: stream p owns rows [p*rows, (p+1)*rows)). A LoRA layer fed a shared tensor computes
its frozen product once and returns a stacked tensor; the perturbations themselves are never stored, the kernel
regenerates them from (seed, layer_id, slot):

    LoRALinear   y = x W^T + b + (alpha/r) (x A^T) B^T   A += sigma eps Z(seed, id, 0), B += sigma eps Z(seed, id, 1)
    ZOLinear     y = x W^T + b (trainable, e.g. a head)  W += sigma eps Z(seed, id, 0), b += sigma eps Z(seed, id, 1)

Streams follow the kernel's order (central: (+k, -k) pairs; forward: unperturbed, then +k).
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _ops

MODES = ("central", "forward")


@dataclass
class Streams:
    """P perturbation streams of one forward: K seeds (uint64), eps, mode, distribution, shared row count."""

    seeds: np.ndarray
    eps: float
    mode: str = "central"
    dist: str = "gaussian"
    rows: int = 0  # leading size of a shared tensor where the current module runs (set by the model)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        self.seeds = np.ascontiguousarray(self.seeds, dtype=np.uint64)
        if self.seeds.ndim != 1 or self.seeds.size == 0:
            raise ValueError(f"seeds: expected a non-empty 1-D array, got shape {self.seeds.shape}")
        if not self.eps > 0:
            raise ValueError(f"eps: must be > 0, got {self.eps}")

    @property
    def P(self) -> int:
        return 2 * len(self.seeds) if self.mode == "central" else len(self.seeds) + 1

    def split(self, x: torch.Tensor) -> int:
        """S of a tensor here: 1 if shared, P if stacked; ValueError otherwise."""
        if x.shape[0] == self.rows:
            return 1
        if x.shape[0] == self.P * self.rows:
            return self.P
        raise ValueError(f"leading size {x.shape[0]} is neither shared ({self.rows}) nor stacked "
                         f"({self.P} x {self.rows}): set streams.rows where the tensor's batch changes")


class _ZOModule(nn.Module):
    """Common state of perturbable modules: layer_id (noise streams), trainable flag, active streams."""

    zo_layer_id: int = -1
    zo_trainable: bool = True
    zo_scale: float = 1.0  # sigma: this module's tensors are perturbed by zo_scale * eps * Z (a diagonal preconditioner)
    _streams: Streams | None = None

    def zo_tensors(self) -> list[tuple[torch.Tensor, int]]:  # (tensor, slot)
        raise NotImplementedError


class LoRALinear(_ZOModule):
    """A frozen nn.Linear (weight [o, d], bias [o]) plus LoRA A [r, d], B [o, r], scale alpha / r."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, generator: torch.Generator | None = None):
        super().__init__()
        if r < 1:
            raise ValueError(f"r: must be >= 1, got {r}")
        o, d = base.weight.shape
        self.weight = nn.Parameter(base.weight.detach().float().contiguous(), requires_grad=False)
        self.bias = None if base.bias is None else nn.Parameter(base.bias.detach().float().contiguous(),
                                                                requires_grad=False)
        self.r, self.alpha, self.scale = r, float(alpha), float(alpha) / r
        A = torch.empty(r, d)
        bound = 1.0 / math.sqrt(d)  # kaiming_uniform(a=sqrt(5)) as in PEFT / nn.Linear
        A.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(A)
        self.lora_B = nn.Parameter(torch.zeros(o, r))

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def zo_tensors(self):
        return [(self.lora_A, 0), (self.lora_B, 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self._streams
        if st is None or not self.zo_trainable:
            return F.linear(x, self.weight, self.bias) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)
        S = st.split(x)
        d = x.shape[-1]
        y = _ops.perturbed_linear(x.reshape(S, -1, d), self.weight, self.bias, self.lora_A.detach(),
                                  self.lora_B.detach(), self.scale, st.seeds, st.eps * self.zo_scale, self.zo_layer_id,
                                  st.mode, st.dist)
        return y.view(st.P * st.rows, *x.shape[1:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha}, id={self.zo_layer_id}"


class ZOLinear(nn.Linear, _ZOModule):
    """An nn.Linear whose weight and bias are trained by perturbation (e.g. a classification head)."""

    def zo_tensors(self):
        return [(self.weight, 0)] + ([(self.bias, 1)] if self.bias is not None else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self._streams
        y = F.linear(x, self.weight, self.bias)
        if st is None or not self.zo_trainable:
            return y
        S = st.split(x)
        P, rows, o, d = st.P, st.rows, self.out_features, self.in_features
        idx, sig = _ops.signs(st.mode, len(st.seeds))
        ZW = _ops.noise_stack(st.seeds, self.zo_layer_id, 0, (o, d), st.dist)[torch.from_numpy(idx)]
        xs = x.reshape(S, rows, d).expand(P, rows, d)
        s = (torch.from_numpy(sig) * float(st.eps * self.zo_scale)).view(P, 1, 1)
        delta = torch.bmm(xs, ZW.transpose(1, 2))
        if self.bias is not None:
            Zb = _ops.noise_stack(st.seeds, self.zo_layer_id, 1, (o,), st.dist)[torch.from_numpy(idx)]
            delta += Zb.unsqueeze(1)
        out = y.reshape(S, rows, o) + s * delta
        return out.reshape(P * rows, *x.shape[1:-1], o)


def zo_modules(model: nn.Module) -> list[tuple[str, _ZOModule]]:
    """The perturbable modules of a model in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _ZOModule)]


def assign_layer_ids(model: nn.Module) -> None:
    """Number all perturbable modules 0, 1, ... in registration order (the noise streams they use)."""
    for i, (_, m) in enumerate(zo_modules(model)):
        m.zo_layer_id = i


_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)(?:\.|$)")


def layer_index(name: str) -> int | None:
    """Index of the transformer block a module path belongs to ('encoder.layer.3.attention...' -> 3)."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def add_lora(model: nn.Module, targets: Iterable[str] = ("query", "value"), layers: Iterable[int] | None = None,
             r: int = 8, alpha: float = 16.0, seed: int = 0) -> list[str]:
    """Replace the nn.Linear modules named in `targets` (last path component) inside blocks `layers`
    (None = all) by LoRALinear; freeze everything else except ZOLinear modules. Returns the replaced paths.

    A is uniform(+-1/sqrt(d)) from a torch generator seeded by `seed`, B = 0 (the adapted model starts equal to
    the base model). Layer ids of all perturbable modules are (re)assigned in registration order.
    """
    targets = tuple(targets)
    wanted = None if layers is None else {int(i) for i in layers}
    gen = torch.Generator().manual_seed(int(seed))
    found = []
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, nn.Linear) or isinstance(mod, ZOLinear) or name.rsplit(".", 1)[-1] not in targets:
            continue
        li = layer_index(name)
        if wanted is not None and li not in wanted:
            continue
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], LoRALinear(mod, r=r, alpha=alpha, generator=gen))
        found.append(name)
    if not found:
        raise ValueError(f"add_lora: no nn.Linear named {targets} in layers {sorted(wanted) if wanted else 'all'}")
    for p in model.parameters():
        p.requires_grad_(False)
    for _, m in zo_modules(model):
        for t, _slot in m.zo_tensors():
            t.requires_grad_(True)
    assign_layer_ids(model)
    return found


def trainable_tensors(model: nn.Module, head: bool = True) -> list[tuple[str, torch.Tensor, int, int]]:
    """(name, tensor, layer_id, slot) of every tensor trained by perturbation: LoRA A/B of trainable LoRA
    layers, and the weight/bias of ZOLinear modules when `head`."""
    out = []
    for name, m in zo_modules(model):
        if not m.zo_trainable or (isinstance(m, ZOLinear) and not head):
            continue
        for t, slot in m.zo_tensors():
            out.append((f"{name}.{'AB'[slot] if isinstance(m, LoRALinear) else ('weight', 'bias')[slot]}",
                        t, m.zo_layer_id, slot))
    return out


def set_perturbation_scale(model: nn.Module, lora: float | None = None, head: float | None = None) -> None:
    """sigma of LoRA modules and/or ZOLinear heads: their tensors are perturbed by sigma * eps * Z and updated by
    -lr * sigma * g_k / K * Z, i.e. ZO-SGD preconditioned by sigma^2 (a smaller sigma for the many LoRA
    parameters keeps their estimator noise from swamping the head and from random-walking B)."""
    for _, m in zo_modules(model):
        v = lora if isinstance(m, LoRALinear) else head
        if v is not None:
            if not v > 0:
                raise ValueError(f"perturbation scale: must be > 0, got {v}")
            m.zo_scale = float(v)


def tensor_scales(model: nn.Module, head: bool = True) -> list[float]:
    """sigma of each entry of trainable_tensors(model, head)."""
    out = []
    for _, m in zo_modules(model):
        if not m.zo_trainable or (isinstance(m, ZOLinear) and not head):
            continue
        out += [m.zo_scale] * len(m.zo_tensors())
    return out


@contextmanager
def perturbing(model: nn.Module, streams: Streams, head: bool = True) -> Iterator[Streams]:
    """Within the block, the model's trainable perturbable modules run the P streams of `streams`."""
    mods = [m for _, m in zo_modules(model) if head or not isinstance(m, ZOLinear)]
    for m in mods:
        m._streams = streams
    try:
        yield streams
    finally:
        for m in mods:
            m._streams = None
