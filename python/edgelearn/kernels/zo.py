"""Perturbed forward passes and seed replay (contract: csrc/include/edgelearn/zo.h)."""

from __future__ import annotations

import numpy as np

from .. import _kernels
from . import _validate
from . import _validate as v

MODES = {"central": 0, "forward": 1}
ZO_DISTS = {"gaussian": 0, "rademacher": 1}


def num_streams(mode: str, num_seeds: int) -> int:
    """P for K seeds: 2K in central mode, K + 1 in forward mode."""
    return 2 * num_seeds if v.choice(mode, "mode", MODES) == 0 else num_seeds + 1


def zo_perturbed_linear_f32(x, W, b, A, B, scale, seeds, eps, layer_id, mode="central", dist="gaussian", out=None):
    """y[p] = x[p or 0] W^T + b + scale * (x A_p^T) B_p^T for all P perturbation streams at once.

    x [S, n, d] float32 with S = 1 (shared input) or S = P; W [o, d]; b [o] or None; A [r, d]; B [o, r];
    seeds uint64 [K]; eps > 0; layer_id >= 0 picks the noise streams; mode "central" (P = 2K: +eps, -eps per
    seed) or "forward" (P = K + 1, stream 0 unperturbed). Returns y [P, n, o] float32 (written into `out` if given).
    """
    x = v.array(x, "x", np.float32, 3)
    W = v.array(W, "W", np.float32, 2)
    A = v.array(A, "A", np.float32, 2)
    B = v.array(B, "B", np.float32, 2)
    seeds = v.seeds(seeds)
    scale = v.real(scale, "scale")
    eps = v.real(eps, "eps", positive=True)
    layer_id = v.integer(layer_id, "layer_id", 0, 2**62)
    mode_i = v.choice(mode, "mode", MODES)
    dist_i = v.choice(dist, "dist", ZO_DISTS)
    S, n, d = x.shape
    o, r = B.shape
    if W.shape[1] != d:
        raise ValueError(f"W: expected shape [o, {d}] to match x's last dimension, got {W.shape}")
    if W.shape[0] != o:
        raise ValueError(f"B: expected shape [{W.shape[0]}, r] to match W's rows, got {B.shape}")
    if A.shape != (r, d):
        raise ValueError(f"A: expected shape ({r}, {d}) from B's rank and x's last dimension, got {A.shape}")
    if b is not None:
        b = v.array(b, "b", np.float32, 1)
        if b.shape != (o,):
            raise ValueError(f"b: expected shape ({o},), got {b.shape}")
    P = num_streams(mode, seeds.size)
    if S not in (1, P):
        raise ValueError(f"x: first dimension must be 1 (shared input) or P = {P} streams, got {S}")
    if P * n * o > 2**40:
        raise ValueError(f"x: output of {P} x {n} x {o} elements is too large")
    if out is not None:
        out = v.array(out, "out", np.float32, 3, writeable=True)
        if out.shape != (P, n, o):
            raise ValueError(f"out: expected shape ({P}, {n}, {o}), got {out.shape}")
        if any(np.may_share_memory(out, t) for t in (x, W, A, B) + ((b,) if b is not None else ())):
            raise ValueError("out: must not overlap an input")
    return _kernels.zo_perturbed_linear_f32(x, W, b, A, B, scale, seeds, eps, layer_id, mode_i, dist_i, out)


def zo_replay_seeds_f32(param, seeds, coefs, layer_id, slot=0, dist="gaussian"):
    """In place: param += sum_k coefs[k] * Z(seeds[k], layer_id, slot). Returns param.

    param: float32 array or torch CPU tensor (any shape, C-contiguous; updated in place); seeds uint64 [K];
    coefs float32 [K], finite. This is how a client applies an update and a server rebuilds one from
    (seed, scalar) pairs.
    """
    target = param
    param = v.array(param, "param", np.float32, None, writeable=True)
    seeds = v.seeds(seeds)
    coefs = v.array(coefs, "coefs", np.float32, 1)
    if coefs.shape != seeds.shape:
        raise ValueError(f"coefs: expected shape {seeds.shape} (one per seed), got {coefs.shape}")
    if not np.all(np.isfinite(coefs)):
        raise ValueError("coefs: must be finite (found NaN or inf)")
    layer_id = v.integer(layer_id, "layer_id", 0, 2**62)
    slot = v.integer(slot, "slot", 0, 1)
    _kernels.zo_replay_seeds_f32(param, seeds, coefs, layer_id, slot, v.choice(dist, "dist", ZO_DISTS))
    return target


def zo_attention_packed_f32(q, k, v, lengths, heads, scale=None, out=None):
    """Multi-head attention over packed sequences, for S streams at once (a BERT layer's attention without padding).

    q, k, v float32 [S or 1, N, d] (finite; 1 = shared by every stream); lengths int64 [B], each >= 1, summing to N:
    sequence b owns the next lengths[b] rows; heads divides d; scale defaults to 1 / sqrt(d / heads). Returns
    out [S, N, d] float32 (into `out` if given): out[s, i] = softmax(scale q_i K^T) V over i's sequence, per head.
    """
    val = _validate  # `v` is the argument here
    q, k, v = (val.array(t, name, np.float32, 3) for t, name in ((q, "q"), (k, "k"), (v, "v")))
    lengths = val.array(lengths, "lengths", np.int64, 1)
    _, N, d = q.shape
    for t, name in ((k, "k"), (v, "v")):
        if t.shape[1:] != (N, d):
            raise ValueError(f"{name}: expected shape [S, {N}, {d}] to match q, got {t.shape}")
    heads = val.integer(heads, "heads", 1, d)
    if d % heads:
        raise ValueError(f"heads: must divide d = {d}, got {heads}")
    scale = 1.0 / np.sqrt(d // heads) if scale is None else val.real(scale, "scale")
    S = max(q.shape[0], k.shape[0], v.shape[0])
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if t.shape[0] not in (1, S):
            raise ValueError(f"{name}: first dimension must be 1 (shared) or S = {S}, got {t.shape[0]}")
    if lengths.size == 0 or (lengths < 1).any() or int(lengths.sum()) != N:
        raise ValueError(f"lengths: need sequence lengths >= 1 summing to N = {N}, got {lengths.tolist()[:8]}")
    if out is not None:
        out = val.array(out, "out", np.float32, 3, writeable=True)
        if out.shape != (S, N, d):
            raise ValueError(f"out: expected shape ({S}, {N}, {d}), got {out.shape}")
        if any(np.may_share_memory(out, t) for t in (q, k, v)):
            raise ValueError("out: must not overlap an input")
    return _kernels.zo_attention_packed_f32(q, k, v, lengths, heads, scale, out)
