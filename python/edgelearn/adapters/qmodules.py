"""Torch modules over the quant kernels: a frozen int8 Linear, the same with a float LoRA adapter, an int8 embedding.

Each int8 Linear holds packed weights W [n, k] (qgemm_pack_s8), per-channel scales w_scale [n], a float bias and one
calibrated activation scale x_scale (x is quantized per tensor: xq = clip(round_half_away(x / x_scale), -127, 127)).
Three ways through it, chosen per call:

    int8      no gradient needed: qgemm_s8 (QLinear) / qlinear_lora_s8 (QLoRALinear), the deployment path
    streams   inside ``edgelearn.zo.perturbing``: qlinear_lora_s8 runs all P perturbation streams of the adapter
              in one call (shared input computed once), so ZOTrainer trains on the int8 kernels
    backprop  the input needs a gradient: the dequantised base w_scale * W with x fake-quantised (the same grid;
              straight-through gradient), in float32 torch ops (the reference path)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import _kernels
from ..kernels import quant
from ..kernels.zo import MODES, ZO_DISTS
from ..zo.lora import LoRALinear


def quantize_weight(W: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: (Wq int8 [n, k] in [-127, 127], scale float32 [n] > 0)."""
    W = W.detach().float().numpy()
    amax = np.abs(W).max(axis=1)
    s = (np.maximum(amax, 1e-12) / 127.0).astype(np.float32)
    q = np.clip(np.rint(W / s[:, None]), -127, 127).astype(np.int8)
    return q, s


def fake_quant(x: torch.Tensor, x_scale: float) -> torch.Tensor:
    """x on the int8 grid of x_scale (half away from zero, clipped to +-127), gradient passed straight through."""
    v = x * (1.0 / x_scale)
    q = torch.clamp(torch.trunc(v + torch.copysign(torch.full_like(v, 0.5), v)), -127, 127) * x_scale
    return x + (q - x).detach()


def _needs_grad(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


class QLinear(nn.Module):
    """A frozen int8 nn.Linear replacement (weights never change; no parameters)."""

    def __init__(self, W: quant.QWeightS8, w_scale: np.ndarray, bias: np.ndarray | None, x_scale: float):
        super().__init__()
        if not isinstance(W, quant.QWeightS8):
            raise TypeError(f"W: expected packed weights from qgemm_pack_s8, got {type(W).__name__}")
        self.W = W
        self.w_scale = quant._scales(w_scale, "w_scale", W.n)
        if not (np.isfinite(x_scale) and x_scale >= np.finfo(np.float32).tiny):
            raise ValueError(f"x_scale: must be finite, > 0 and a normal float32, got {x_scale}")
        if not np.isfinite(np.float32(x_scale) * self.w_scale.max()):
            raise ValueError("x_scale: x_scale * w_scale overflows float32")
        self.bias_np = None if bias is None else quant._bias(bias, W.n)
        self.x_scale = float(x_scale)
        self.bias_t = None if self.bias_np is None else torch.tensor(self.bias_np)  # the reference path's bias

    @classmethod
    def from_linear(cls, lin: nn.Linear, x_scale: float) -> "QLinear":
        q, s = quantize_weight(lin.weight)
        b = None if lin.bias is None else lin.bias.detach().float().numpy()
        return cls(quant.qgemm_pack_s8(q), s, b, x_scale)

    @property
    def in_features(self) -> int:
        return self.W.k

    @property
    def out_features(self) -> int:
        return self.W.n

    @property
    def nbytes(self) -> int:
        """Bytes of the frozen layer: int8 W, scales, bias."""
        return self.W.n * self.W.k + 4 * self.W.n * (2 if self.bias_np is not None else 1)

    def dequantized(self) -> torch.Tensor:
        """w_scale * W as float32 [n, k] (the reference path's weight)."""
        return torch.from_numpy(quant.qgemm_unpack_s8(self.W).astype(np.float32) * self.w_scale[:, None])

    def base_fp32(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(fake_quant(x, self.x_scale), self.dequantized(), self.bias_t)

    def forward(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        """y = x W^T + b (gelu: GELU(y), fused into the kernel's epilogue on the int8 path)."""
        if _needs_grad(x):
            y = self.base_fp32(x)
            return F.gelu(y) if gelu else y
        x2 = x.detach().reshape(-1, x.shape[-1]).contiguous().numpy()
        # the arguments were checked once in __init__; the binding checks x (dtype, shape, NaN/inf in the kernel)
        y = _kernels.qlinear_s8(x2, self.W, self.w_scale, self.x_scale, self.bias_np, None, gelu)
        return torch.from_numpy(y).view(*x.shape[:-1], self.out_features)

    def forward_gelu(self, x: torch.Tensor) -> torch.Tensor:
        """GELU(x W^T + b) in one kernel call (what a BERT FFN's first layer needs)."""
        return self.forward(x, gelu=True)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int8, x_scale={self.x_scale:.4g}"


class QLoRALinear(LoRALinear):
    """A QLinear (shared, not copied) plus a float LoRA adapter A [r, k], B [n, r], scale alpha / r.

    A LoRALinear for edgelearn.zo (perturbing, ZOTrainer, trainable_tensors): its perturbed forward is
    qlinear_lora_s8 over the int8 base.
    """

    def __init__(self, base: QLinear, r: int = 8, alpha: float = 16.0, generator: torch.Generator | None = None):
        nn.Module.__init__(self)
        if r < 1:
            raise ValueError(f"r: must be >= 1, got {r}")
        object.__setattr__(self, "base", base)  # shared with the backbone, not a submodule (not saved with it)
        self.weight = None
        self.bias = None
        self.r, self.alpha, self.scale = r, float(alpha), float(alpha) / r
        A = torch.empty(r, base.in_features)
        bound = 1.0 / math.sqrt(base.in_features)
        A.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(A)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def _kernel(self, x3: torch.Tensor, seeds=None, eps=1e-3, mode="central", dist="gaussian") -> torch.Tensor:
        b = self.base  # checked once in QLinear.__init__; the binding and the kernel check the rest
        A, B = (t.detach().contiguous().numpy() for t in (self.lora_A, self.lora_B))
        y = _kernels.qlinear_lora_s8(x3.detach().contiguous().numpy(), b.W, b.w_scale, b.x_scale, b.bias_np, A, B,
                                     self.scale, seeds, float(eps), max(self.zo_layer_id, 0), MODES[mode],
                                     ZO_DISTS[dist])
        return torch.from_numpy(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st, d = self._streams, x.shape[-1]
        if st is not None and self.zo_trainable:
            S = st.split(x)
            y = self._kernel(x.reshape(S, -1, d), st.seeds, st.eps * self.zo_scale, st.mode, st.dist)
            return y.view(st.P * st.rows, *x.shape[1:-1], self.out_features)
        if _needs_grad(x) or (torch.is_grad_enabled() and (self.lora_A.requires_grad or self.lora_B.requires_grad)):
            lo = self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)
            if _needs_grad(x):
                return self.base.base_fp32(x) + lo
            return self.base(x) + lo  # int8 base (no gradient into x needed), float adapter with autograd
        return self._kernel(x.reshape(1, -1, d))[0].view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha}, int8 base, " \
               f"id={self.zo_layer_id}"


class QEmbedding(nn.Module):
    """Frozen int8 embedding table with per-row scales: lookup gathers int8 rows and scales them to float32."""

    def __init__(self, q: np.ndarray, scale: np.ndarray):
        super().__init__()
        self.q = q  # may be a read-only view of the backbone file: indexed in NumPy, never written
        self.s = np.ascontiguousarray(scale, np.float32)

    @property
    def weight(self) -> torch.Tensor:  # dequantised (callers that index rows of .weight, e.g. token types)
        return torch.from_numpy(self.q.astype(np.float32) * self.s[:, None])

    @property
    def nbytes(self) -> int:
        return self.q.size + 4 * self.s.size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        i = ids.numpy()
        return torch.from_numpy(self.q[i].astype(np.float32) * self.s[i][..., None])
