"""Int8 GEMM over a packed frozen backbone, int8 linear + LoRA, quantized adapter update
(contract: csrc/include/edgelearn/quant.h)."""

from __future__ import annotations

import numpy as np

from .. import _kernels
from . import _validate as v
from .zo import MODES, ZO_DISTS, num_streams

#: Packed int8 weights [n, k] (create with qgemm_pack_s8; qgemm_unpack_s8 gives W back; picklable).
QWeightS8 = _kernels._QWeightS8
OUT_DTYPES = {"float32": 0, "int8": 1}
_TINY = float(np.finfo(np.float32).tiny)


def _scales(obj, name: str, length: int | None = None) -> np.ndarray:
    """A float32 [length] array of finite, positive, normal scales."""
    s = v.array(obj, name, np.float32, 1)
    if length is not None and s.shape[0] != length:
        raise ValueError(f"{name}: expected shape ({length},), got {s.shape}")
    bad = ~(np.isfinite(s) & (s >= _TINY))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: must be finite, > 0 and a normal float32 (found {s[i]} at {i})")
    return s


def _bias(bias, n: int):
    """None, or a finite float32 [n] bias."""
    if bias is None:
        return None
    bias = v.array(bias, "bias", np.float32, 1)
    if bias.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},), got {bias.shape}")
    if not np.isfinite(bias).all():
        raise ValueError("bias: must be finite (found NaN or inf)")
    return bias


def _scale(value, name: str) -> float:
    s = v.real(value, name, positive=True)
    if s < _TINY:
        raise ValueError(f"{name}: must be a normal float32 (>= {_TINY}), got {s}")
    return s


def _packed(obj, name: str = "W") -> QWeightS8:
    if isinstance(obj, QWeightS8):
        return obj
    if isinstance(obj, np.ndarray) or hasattr(obj, "detach"):
        raise TypeError(f"{name}: expected packed weights from qgemm_pack_s8, got an unpacked array "
                        "(call qgemm_pack_s8(W) once and pass its result)")
    raise TypeError(f"{name}: expected packed weights from qgemm_pack_s8, got {type(obj).__name__}")


def qgemm_pack_s8(W) -> QWeightS8:
    """Pack int8 W [n, k] (n output channels; values in [-127, 127], k <= 65536) once for qgemm_s8."""
    W = v.array(W, "W", np.int8, 2)
    if W.shape[1] > 65536:
        raise ValueError(f"W: k = {W.shape[1]} inputs exceeds 65536 (int32 accumulator range)")
    if (W == -128).any():
        j, t = np.argwhere(W == -128)[0]
        raise ValueError(f"W: values must be in [-127, 127] (symmetric int8), found -128 at [{j}, {t}]")
    return _kernels.qgemm_pack_s8(W)


def qgemm_unpack_s8(W) -> np.ndarray:
    """int8 W [n, k] back from packed weights (the inverse of qgemm_pack_s8, exact)."""
    return _kernels.qgemm_unpack_s8(_packed(W))


def qgemm_s8(x, W, w_scale, x_scale, bias=None, x_zero_point=0, out_dtype="float32", y_scale=None,
             y_zero_point=0, out=None):
    """y = ((x - x_zero_point) W^T) * (x_scale * w_scale) + bias, as float32 or requantised to int8.

    x int8 [m, k]; W packed weights (qgemm_pack_s8) of shape [n, k]; w_scale float32 [n] (per output channel);
    x_scale a float (per tensor) or float32 [m] (per token); bias float32 [n] or None. out_dtype "float32", or
    "int8" with y_scale > 0 and y_zero_point: round half away from zero, saturating. Bit-exact with
    edgelearn.kernels.reference.qgemm_s8. Returns y [m, n] (written into `out` if given).
    """
    x = v.array(x, "x", np.int8, 2)
    W = _packed(W)
    n, k = W.shape
    if x.shape[1] != k:
        raise ValueError(f"x: expected shape [m, {k}] to match W's k, got {x.shape}")
    m = x.shape[0]
    w_scale = _scales(w_scale, "w_scale", n)
    if isinstance(x_scale, np.ndarray) or hasattr(x_scale, "detach"):
        x_scale = _scales(x_scale, "x_scale")
        if x_scale.shape[0] not in (1, m):
            raise ValueError(f"x_scale: expected shape (1,) or ({m},) (one per row), got {x_scale.shape}")
        sx_max = float(x_scale.max())
    else:
        x_scale = _scale(x_scale, "x_scale")
        sx_max = x_scale
    with np.errstate(over="ignore"):
        product = np.float32(sx_max) * w_scale.max()
    if not np.isfinite(product):
        raise ValueError("x_scale: x_scale * w_scale overflows float32")
    bias = _bias(bias, n)
    x_zero_point = v.integer(x_zero_point, "x_zero_point", -128, 127)
    od = v.choice(out_dtype, "out_dtype", OUT_DTYPES)
    if od == 1:
        if y_scale is None:
            raise ValueError("y_scale: required for out_dtype 'int8'")
        y_scale = _scale(y_scale, "y_scale")
        y_zero_point = v.integer(y_zero_point, "y_zero_point", -128, 127)
    else:
        y_scale, y_zero_point = 1.0, 0
    if out is not None:
        out = v.array(out, "out", np.float32 if od == 0 else np.int8, 2, writeable=True)
        if out.shape != (m, n):
            raise ValueError(f"out: expected shape ({m}, {n}), got {out.shape}")
        if any(np.may_share_memory(out, t) for t in (x, w_scale, bias) if isinstance(t, np.ndarray)):
            raise ValueError("out: must not overlap an input")
    return _kernels.qgemm_s8(x, W, w_scale, x_scale, bias, x_zero_point, od, y_scale, y_zero_point, out)


def qlinear_s8(x, W, w_scale, x_scale, bias=None, out=None, activation=None):
    """The frozen int8 layer from float32 activations: y = qgemm_s8(quantize(x), W, w_scale, x_scale, bias).

    x float32 [m, k] (finite), quantized per tensor inside the kernel with the calibrated x_scale (> 0): xq =
    clip(round_half_away(x / x_scale), -127, 127) (float32 ops, as qlinear_lora_s8); W packed [n, k] with w_scale
    float32 [n]; bias [n] or None. Returns float32 y [m, n] (into `out` if given). Bit-exact with
    edgelearn.kernels.reference.qlinear_s8. NaN/inf in x raise ValueError (checked in the kernel's pass over x).
    activation "gelu": y = gelu(y) applied in the kernel's epilogue (erf by Abramowitz & Stegun 7.1.26, |error| <=
    1.5e-7; quant.h), still bit-exact with the twin; None: no activation.
    """
    if activation not in (None, "gelu"):
        raise ValueError(f"activation: expected None or 'gelu', got {activation!r}")
    x = v.array(x, "x", np.float32, 2)
    W = _packed(W)
    n, k = W.shape
    if x.shape[1] != k:
        raise ValueError(f"x: expected shape [m, {k}] to match W's k, got {x.shape}")
    w_scale = _scales(w_scale, "w_scale", n)
    x_scale = _scale(x_scale, "x_scale")
    with np.errstate(over="ignore", divide="ignore"):
        if not np.isfinite(np.float32(1.0) / np.float32(x_scale)):
            raise ValueError(f"x_scale: 1 / x_scale overflows float32 ({x_scale})")
        if not np.isfinite(np.float32(x_scale) * w_scale.max()):
            raise ValueError("x_scale: x_scale * w_scale overflows float32")
    bias = _bias(bias, n)
    if out is not None:
        out = v.array(out, "out", np.float32, 2, writeable=True)
        if out.shape != (x.shape[0], n):
            raise ValueError(f"out: expected shape ({x.shape[0]}, {n}), got {out.shape}")
        if any(np.may_share_memory(out, t) for t in (x, w_scale, bias) if isinstance(t, np.ndarray)):
            raise ValueError("out: must not overlap an input")
    return _kernels.qlinear_s8(x, W, w_scale, x_scale, bias, out, activation == "gelu")


def qlinear_lora_s8(x, W, w_scale, x_scale, bias, A, B, scale, seeds=None, eps=1e-3, layer_id=0, mode="central",
                    dist="gaussian", out=None):
    """The frozen int8 layer plus a float LoRA adapter: y[p] = qgemm_s8(quantize(x), W) + bias + scale (x A_p^T) B_p^T.

    x float32 [m, k] or [S, m, k] (finite), quantized per tensor with x_scale (> 0): xq = clip(round_half_away(
    x / x_scale), -127, 127); W packed [n, k] (qgemm_pack_s8) with w_scale float32 [n]; bias [n] or None; A [r, k];
    B [n, r]. seeds None: the plain layer, y [m, n] for a 2-D x ([1, m, n] for 3-D). seeds uint64 [K]: P
    perturbation streams of the adapter exactly as zo_perturbed_linear_f32 (mode "central": P = 2K, "forward":
    P = K + 1), x [S, m, k] with S = 1 (shared) or P; returns y [P, m, n]. See quant.h.
    """
    x = v.array(x, "x", np.float32, None)
    two_d = x.ndim == 2
    if x.ndim not in (2, 3):
        raise ValueError(f"x: expected 2 or 3 dimensions, got {x.ndim}")
    x3 = x.reshape(1, *x.shape) if two_d else x
    W = _packed(W)
    n, k = W.shape
    if x3.shape[2] != k:
        raise ValueError(f"x: expected last dimension {k} to match W's k, got {x.shape}")
    if not np.isfinite(x3).all():
        raise ValueError("x: must be finite (found NaN or inf)")
    w_scale = _scales(w_scale, "w_scale", n)
    x_scale = _scale(x_scale, "x_scale")
    if not np.isfinite(np.float32(1.0) / np.float32(x_scale)):
        raise ValueError(f"x_scale: 1 / x_scale overflows float32 ({x_scale})")
    bias = _bias(bias, n)
    A = v.array(A, "A", np.float32, 2)
    B = v.array(B, "B", np.float32, 2)
    if B.shape[0] != n:
        raise ValueError(f"B: expected shape [{n}, r] to match W's n, got {B.shape}")
    r = B.shape[1]
    if A.shape != (r, k):
        raise ValueError(f"A: expected shape ({r}, {k}) from B's rank and W's k, got {A.shape}")
    scale = v.real(scale, "scale")
    if seeds is None:
        if x3.shape[0] != 1:
            raise ValueError(f"x: without seeds the first dimension must be 1, got {x3.shape[0]}")
        P, mode_i, dist_i, eps, layer_id = 1, 0, 0, 1.0, 0
    else:
        seeds = v.seeds(seeds)
        eps = v.real(eps, "eps", positive=True)
        layer_id = v.integer(layer_id, "layer_id", 0, 2**62)
        mode_i = v.choice(mode, "mode", MODES)
        dist_i = v.choice(dist, "dist", ZO_DISTS)
        P = num_streams(mode, seeds.size)
        if x3.shape[0] not in (1, P):
            raise ValueError(f"x: first dimension must be 1 (shared input) or P = {P} streams, got {x3.shape[0]}")
    m = x3.shape[1]
    if P * m * n > 2**40:
        raise ValueError(f"x: output of {P} x {m} x {n} elements is too large")
    if out is not None:
        out = v.array(out, "out", np.float32, 3, writeable=True)
        if out.shape != (P, m, n):
            raise ValueError(f"out: expected shape ({P}, {m}, {n}), got {out.shape}")
        if any(np.may_share_memory(out, t) for t in (x3, w_scale, A, B) + ((bias,) if bias is not None else ())):
            raise ValueError("out: must not overlap an input")
    y = _kernels.qlinear_lora_s8(x3, W, w_scale, x_scale, bias, A, B, scale, seeds, eps, layer_id, mode_i, dist_i,
                                 out)
    return y[0] if (two_d and seeds is None and out is None) else y


def qadapter_update_s8(q, scales, grads, lr, seed, streams=None, qas=False):
    """In place, for every tensor t: q[t] <- clip(SR(q[t] - lr * g[t] / s[t]), -127, 127). Returns q.

    q: a list of int8 arrays (or torch CPU tensors), each [rows, ...] with per-row (output channel) scales
    scales[t] float32 [rows]; grads[t] float32 of q[t]'s shape: dL/dW of the real weight W = s q (qas=False) or
    dL/dq (qas=True, scaled by s^-2: tiny-training's quantization-aware scaling). SR is stochastic rounding with
    the uniforms of Philox stream (seed, streams[t]) (default streams[t] = t), element i = row-major index.
    NaN/inf gradient elements leave their weight unchanged and raise ValueError after the pass.
    """
    if not isinstance(q, (list, tuple)):
        raise TypeError(f"q: expected a list of arrays, got {type(q).__name__}")
    if not q:
        raise ValueError("q: need at least one tensor")
    for name, seq in (("scales", scales), ("grads", grads)):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{name}: expected a list of arrays, got {type(seq).__name__}")
        if len(seq) != len(q):
            raise ValueError(f"{name}: expected {len(q)} arrays (one per tensor), got {len(seq)}")
    qs, ss, gs = [], [], []
    for t, (qt, st, gt) in enumerate(zip(q, scales, grads)):
        qa = v.array(qt, f"q[{t}]", np.int8, None, writeable=True)
        if qa.ndim < 1:
            raise ValueError(f"q[{t}]: must have at least one dimension")
        ga = v.array(gt, f"grads[{t}]", np.float32)
        if ga.shape != qa.shape:
            raise ValueError(f"grads[{t}]: expected the shape of q[{t}] {qa.shape}, got {ga.shape}")
        qs.append(qa)
        ss.append(_scales(st, f"scales[{t}]", qa.shape[0]))
        gs.append(ga)
    for t, qa in enumerate(qs):
        for s, other in enumerate(qs[:t]):
            if np.may_share_memory(qa, other):
                raise ValueError(f"q[{t}]: overlaps q[{s}]")
    lr = v.real(lr, "lr")
    seed = v.integer(seed, "seed", 0, 2**64 - 1)
    if streams is not None:
        streams = v.seeds(streams, "streams")
        if streams.shape != (len(qs),):
            raise ValueError(f"streams: expected shape ({len(qs)},) (one per tensor), got {streams.shape}")
    if not isinstance(qas, (bool, np.bool_)):
        raise TypeError(f"qas: expected a bool, got {type(qas).__name__}")
    _kernels.qadapter_update_s8(qs, ss, gs, lr, seed, streams, bool(qas))
    return q


__all__ = ["QWeightS8", "OUT_DTYPES", "qgemm_pack_s8", "qgemm_unpack_s8", "qgemm_s8", "qlinear_lora_s8", "qadapter_update_s8", "MODES", "ZO_DISTS",
           "num_streams"]
