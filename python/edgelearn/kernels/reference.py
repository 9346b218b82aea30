"""Reference twins of the compiled kernels: plain NumPy, slow and readable. They are the definition.

Each function has the name and the signature of its kernel in ``edgelearn.kernels`` (validated arguments,
NumPy in, NumPy out). The randomness contract is written out in ``csrc/include/edgelearn/philox.h``.
"""

from __future__ import annotations

import numpy as np

GAUSSIAN, RADEMACHER, UNIFORM = 0, 1, 2
CENTRAL, FORWARD = "central", "forward"

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_LO = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of counters [N, 4] (uint32) under keys [N, 2] (uint32): [N, 4] uint32."""
    c = [counter[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = key[:, 0].astype(np.uint32), key[:, 1].astype(np.uint32)
    with np.errstate(over="ignore"):
        for rnd in range(10):
            if rnd > 0:
                k0 = k0 + _W0
                k1 = k1 + _W1
            p0 = _M0 * c[0]
            p1 = _M1 * c[2]
            hi0, lo0 = p0 >> np.uint64(32), p0 & _LO
            hi1, lo1 = p1 >> np.uint64(32), p1 & _LO
            c = [hi1 ^ c[1] ^ k0.astype(np.uint64), lo1, hi0 ^ c[3] ^ k1.astype(np.uint64), lo0]
    return np.stack(c, axis=1).astype(np.uint32)


def _blocks(seed: int, stream: int, first_block: int, num_blocks: int) -> np.ndarray:
    """Words of blocks [first_block, first_block + num_blocks) of stream (seed, stream): [num_blocks, 4]."""
    block = np.arange(num_blocks, dtype=np.uint64) + np.uint64(first_block)
    counter = np.empty((num_blocks, 4), dtype=np.uint32)
    counter[:, 0] = (block & _LO).astype(np.uint32)
    counter[:, 1] = (block >> np.uint64(32)).astype(np.uint32)
    counter[:, 2] = np.uint32(stream & 0xFFFFFFFF)
    counter[:, 3] = np.uint32(stream >> 32)
    key = np.empty((num_blocks, 2), dtype=np.uint32)
    key[:, 0] = np.uint32(seed & 0xFFFFFFFF)
    key[:, 1] = np.uint32(seed >> 32)
    return philox4x32_10(counter, key)


def rng_philox_u32(seed: int, stream: int, count: int, start: int = 0) -> np.ndarray:
    """Raw words [start, start + count) of stream (seed, stream)."""
    first, last = start // 4, (start + count + 3) // 4
    words = _blocks(seed, stream, first, last - first).reshape(-1)
    return words[start - 4 * first : start - 4 * first + count].copy()


def _values_of_words(words: np.ndarray, dist: int) -> np.ndarray:
    """Float32 values of whole blocks of words ([N, 4] uint32) in distribution `dist`: [N * 4]."""
    if dist == UNIFORM:
        return (((words >> np.uint32(9)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-23)).reshape(-1)
    if dist == RADEMACHER:
        return np.where(words >> np.uint32(31), np.float32(-1.0), np.float32(1.0)).astype(np.float32).reshape(-1)
    a = (words[:, 0::2].astype(np.float64) + 0.5) * 2.0**-32
    t = (words[:, 1::2].astype(np.float64) + 0.5) * 2.0**-32
    rho = np.sqrt(-2.0 * np.log(a))
    angle = (2.0 * np.pi) * t
    z = np.empty(words.shape, dtype=np.float64)
    z[:, 0::2] = rho * np.cos(angle)
    z[:, 1::2] = rho * np.sin(angle)
    return z.astype(np.float32).reshape(-1)


def rng_fill_f32(seed: int, stream: int, count: int, start: int = 0, dist: int = GAUSSIAN) -> np.ndarray:
    """Float32 values [start, start + count) of stream (seed, stream): gaussian, rademacher or uniform."""
    first, last = start // 4, (start + count + 3) // 4
    values = _values_of_words(_blocks(seed, stream, first, last - first), dist)
    return values[start - 4 * first : start - 4 * first + count].copy()


def zo_noise(seed: int, layer_id: int, slot: int, shape: tuple[int, ...], dist: int = GAUSSIAN) -> np.ndarray:
    """Z(seed, layer_id, slot) shaped like the tensor it perturbs (row-major element order)."""
    return rng_fill_f32(seed, 2 * layer_id + slot, int(np.prod(shape)), 0, dist).reshape(shape)


def zo_stream_signs(mode: str, num_seeds: int) -> list[tuple[int, float]]:
    """(seed index, sigma) of each stream p: central = (+k, -k) pairs, forward = unperturbed then +k."""
    if mode == CENTRAL:
        return [(k, sigma) for k in range(num_seeds) for sigma in (1.0, -1.0)]
    return [(0, 0.0)] + [(k, 1.0) for k in range(num_seeds)]


def zo_perturbed_linear_f32(x, W, b, A, B, scale, seeds, eps, layer_id, mode=CENTRAL, dist=GAUSSIAN):
    """y[p] = x[p or 0] W^T + b + scale * (x A_p^T) B_p^T with A_p, B_p perturbed by stream p (see zo.h).

    Computed in float64 and rounded once: the tolerance of the float kernel is measured against this.
    """
    S, n, d = x.shape
    o, r = B.shape
    streams = zo_stream_signs(mode, len(seeds))
    y = np.empty((len(streams), n, o), dtype=np.float32)
    x64, W64, A64, B64 = (t.astype(np.float64) for t in (x, W, A, B))
    for p, (k, sigma) in enumerate(streams):
        xp = x64[p if S > 1 else 0]
        Ap, Bp = A64, B64
        if sigma != 0.0:
            seed = int(seeds[k])
            Ap = A64 + sigma * float(eps) * zo_noise(seed, layer_id, 0, (r, d), dist)
            Bp = B64 + sigma * float(eps) * zo_noise(seed, layer_id, 1, (o, r), dist)
        yp = xp @ W64.T + float(scale) * ((xp @ Ap.T) @ Bp.T)
        if b is not None:
            yp = yp + b.astype(np.float64)
        y[p] = yp
    return y


def zo_replay_seeds_f32(param, seeds, coefs, layer_id, slot=0, dist=GAUSSIAN):
    """In place: param += sum_k coefs[k] * Z(seeds[k], layer_id, slot), summed in float64 in seed order."""
    acc = np.zeros(param.size, dtype=np.float64)
    for seed, c in zip(seeds, coefs):
        acc += np.float64(c) * rng_fill_f32(int(seed), 2 * layer_id + slot, param.size, 0, dist).astype(np.float64)
    flat = param.reshape(-1)
    flat[:] = (flat.astype(np.float64) + acc).astype(np.float32)
    return param
