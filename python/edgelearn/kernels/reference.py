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


def zo_attention_packed_f32(q, k, v, lengths, heads, scale):
    """out[s, i] = softmax_j(scale q[s, i] . k[s, j]) v[s, j] per head, j over the rows of i's sequence (see zo.h).

    q, k, v [S or 1, N, d]; lengths [B] (rows of each sequence, in order, summing to N). Float64, rounded once.
    """
    S = max(q.shape[0], k.shape[0], v.shape[0])
    _, N, d = q.shape
    dh = d // heads
    out = np.empty((S, N, d), np.float32)
    off = np.concatenate([[0], np.cumsum(lengths)])
    for s in range(S):
        qs, ks, vs = (t[s if t.shape[0] > 1 else 0].astype(np.float64) for t in (q, k, v))
        for b in range(len(lengths)):
            rows = slice(int(off[b]), int(off[b + 1]))
            for h in range(heads):
                cols = slice(h * dh, (h + 1) * dh)
                z = float(scale) * qs[rows, cols] @ ks[rows, cols].T
                p = np.exp(z - z.max(axis=1, keepdims=True))
                out[s, rows, cols] = (p / p.sum(axis=1, keepdims=True)) @ vs[rows, cols]
    return out

# ------------------------------------------------------------------------------------------------ quant (quant.h)
def qgemm_pack_s8(W: np.ndarray) -> np.ndarray:
    """The packed layout of W [n, k]: [np/16, kp/4, 16, 4], zero padded; data[jb, g, c, t] = W[16 jb + c, 4 g + t]."""
    n, k = W.shape
    np_, kp = -(-n // 16) * 16, -(-k // 4) * 4
    padded = np.zeros((np_, kp), np.int8)
    padded[:n, :k] = W
    return np.ascontiguousarray(padded.reshape(np_ // 16, 16, kp // 4, 4).transpose(0, 2, 1, 3))


def qgemm_unpack_s8(data: np.ndarray, n: int, k: int) -> np.ndarray:
    """W [n, k] from the packed layout (the inverse of qgemm_pack_s8)."""
    nb, groups = data.shape[:2]
    return data.transpose(0, 2, 1, 3).reshape(nb * 16, groups * 4)[:n, :k]


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Float32 rounding to the nearest integer, ties away from zero: trunc(v) + sign(v) where |v - trunc(v)| >= 0.5."""
    with np.errstate(invalid="ignore"):
        t = np.trunc(v)
        away = np.abs(v - t) >= np.float32(0.5)
    return np.where(away, t + np.where(v > 0, np.float32(1), np.float32(-1)), t).astype(np.float32)


def qgemm_s8(x, W, w_scale, x_scale, bias=None, x_zero_point=0, out_dtype="float32", y_scale=None, y_zero_point=0):
    """y = ((x - zx) W^T) * (x_scale * w_scale) + bias in float32 (each operation rounded, in this order), or
    requantised: int8(clip(round_half_away(y * (1 / y_scale)) + y_zero_point, -128, 127)).

    W is the packed weight; its bytes (W.data) are unpacked here, so the layout is checked too.
    """
    Wu = qgemm_unpack_s8(W.data, *W.shape).astype(np.int64)
    acc = ((x.astype(np.int64) - x_zero_point) @ Wu.T).astype(np.int32)
    sx = np.asarray(x_scale, np.float32).reshape(-1, 1)
    with np.errstate(over="ignore"):
        real = acc.astype(np.float32) * (sx * w_scale[None, :])
        if bias is not None:
            real = real + bias
        if out_dtype == "float32":
            return real
        v = real * (np.float32(1.0) / np.float32(y_scale))
    r = np.clip(round_half_away(v) + np.float32(y_zero_point), -128, 127)
    return r.astype(np.int8)


def qadapter_update_s8(q, scales, grads, lr, seed, streams=None, qas=False):
    """In place, per tensor t (quant.h): v = q - ((lr * g) * (1/s)) [* (1/s) when qas], float32 ops in this order;
    q = clip(floor(v) + (u < v - floor(v)), -127, 127) with u(i) = (h(i) + 0.5) 2^-16, h(i) the 16-bit half i % 2
    (low first) of word i // 2 of Philox stream (seed, streams[t]). NaN/inf gradients leave their weight unchanged.
    Returns q."""
    for t, (qt, s, g) in enumerate(zip(q, scales, grads)):
        stream = t if streams is None else int(streams[t])
        words = rng_philox_u32(int(seed), stream, (qt.size + 1) // 2, 0)
        halves = np.stack([words & np.uint32(0xFFFF), words >> np.uint32(16)], axis=1).reshape(-1)[: qt.size]
        u = ((halves.astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-16)).reshape(qt.shape)
        inv = (np.float32(1.0) / s).reshape((-1,) + (1,) * (qt.ndim - 1))
        with np.errstate(over="ignore", invalid="ignore"):
            d = (np.float32(lr) * g) * inv
            if qas:
                d = d * inv
            v = qt.astype(np.float32) - d
            fl = np.floor(v)
            r = np.where(u < v - fl, fl + np.float32(1), fl)
        r = np.clip(r, -127, 127)
        qt[...] = np.where(np.isfinite(g), np.nan_to_num(r).astype(np.int8), qt)
    return q


def qlinear_s8(x, W, w_scale, x_scale, bias=None, activation=None):
    """qgemm_s8(xq, W, w_scale, x_scale, bias) as float32 with xq = int8(clip(round_half_away(x * (1 / x_scale)),
    -127, 127)) (float32 ops; quant.h); activation "gelu": then qlinear_gelu_f32."""
    inv = np.float32(1.0) / np.float32(x_scale)
    xq = np.clip(round_half_away(np.asarray(x, np.float32) * inv), -127, 127).astype(np.int8)
    y = qgemm_s8(xq, W, w_scale, np.float32(x_scale), bias)
    return qlinear_gelu_f32(y) if activation == "gelu" else y


def qlinear_gelu_f32(y):
    """GELU of qlinear_s8's epilogue, float32 operation by operation (quant.h): (0.5 y) (1 + erf(y / sqrt 2)) with
    erf(z) = sign(z) (1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-z^2)), t = 1 / (1 + p |z|) (Abramowitz &
    Stegun 7.1.26) and e^u = p6(r) 2^n, u = n ln2 + r, u >= -32."""
    f = np.float32
    y = np.asarray(y, f)
    z = np.abs(y) * f(0.707106781)
    t = f(1.0) / (f(1.0) + f(0.3275911) * z)
    poly = t * f(1.061405429)
    for a in (-1.453152027, 1.421413741, -0.284496736):
        poly = t * (f(a) + poly)
    poly = t * (f(0.254829592) + poly)
    u = np.maximum(-(z * z), f(-32.0))
    n = (u * f(1.44269504) - f(0.5)).astype(np.int32)  # truncation: round half away for u <= 0
    fn = n.astype(f)
    r = (u - fn * f(0.693145752)) - fn * f(1.42860677e-06)
    p = r * f(0.00138888889)
    for c in (0.00833333333, 0.0416666667, 0.166666667, 0.5, 1.0):
        p = r * (f(c) + p)
    p = f(1.0) + p
    two_n = ((n + 127).astype(np.uint32) << np.uint32(23)).view(f)
    erf_abs = f(1.0) - poly * (p * two_n)
    return (f(0.5) * y) * (f(1.0) + np.copysign(erf_abs, y))


def qlinear_lora_s8(x, W, w_scale, x_scale, bias, A, B, scale, seeds=None, eps=0.0, layer_id=0, mode=CENTRAL,
                    dist=GAUSSIAN):
    """y[p] = qgemm_s8(xq, W, w_scale, x_scale, bias) + scale * (x[p or 0] A_p^T) B_p^T (quant.h), with
    xq = int8(clip(round_half_away(x * (1 / x_scale)), -127, 127)) (float32 ops) and A_p, B_p perturbed by
    stream p as in zo_perturbed_linear_f32 (seeds None: one unperturbed stream). The base is the exact qgemm_s8
    result; the low-rank term is float64, added and rounded once."""
    S, m, k = x.shape
    n, r = B.shape
    streams = [(0, 0.0)] if seeds is None else zo_stream_signs(mode, len(seeds))
    inv = np.float32(1.0) / np.float32(x_scale)
    xq = np.clip(round_half_away(x * inv), -127, 127).astype(np.int8)
    base = qgemm_s8(xq.reshape(S * m, k), W, w_scale, np.float32(x_scale), bias).reshape(S, m, n)
    y = np.empty((len(streams), m, n), dtype=np.float32)
    x64, A64, B64 = (t.astype(np.float64) for t in (x, A, B))
    for p, (kk, sigma) in enumerate(streams):
        s = p if S > 1 else 0
        Ap, Bp = A64, B64
        if sigma != 0.0:
            seed = int(seeds[kk])
            Ap = A64 + sigma * float(np.float32(eps)) * zo_noise(seed, layer_id, 0, (r, k), dist)
            Bp = B64 + sigma * float(np.float32(eps)) * zo_noise(seed, layer_id, 1, (n, r), dist)
        y[p] = base[s].astype(np.float64) + float(scale) * ((x64[s] @ Ap.T) @ Bp.T)
    return y


# ================================================================================================== speech
# Twins of csrc/include/edgelearn/speech.h. The float front-end twin is float64 (the mathematical definition);
# the q15 front-end, the masks and the gate network are integer algorithms defined here bit for bit.
SPEECH_SR, SPEECH_FRAME, SPEECH_HOP, SPEECH_NFFT, SPEECH_NMELS = 16000, 480, 320, 512, 40
SPEECH_LOG_EPS = 2.0**-20


def speech_num_frames(n: int) -> int:
    return 0 if n < SPEECH_FRAME else 1 + (n - SPEECH_FRAME) // SPEECH_HOP


def speech_hann() -> np.ndarray:
    """Periodic Hann window of 480 samples (float64)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(SPEECH_FRAME) / SPEECH_FRAME)


def speech_mel_weights() -> np.ndarray:
    """[40, 257] float64: librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=0, fmax=8000, htk=True,
    norm=None), written out (HTK mel = 2595 log10(1 + f / 700))."""
    fft_freqs = np.arange(SPEECH_NFFT // 2 + 1) * (SPEECH_SR / SPEECH_NFFT)
    m_max = 2595.0 * np.log10(1.0 + 8000.0 / 700.0)
    mels = np.arange(SPEECH_NMELS + 2) * (m_max / (SPEECH_NMELS + 1))
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    fdiff = np.diff(hz)
    ramps = hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def _speech_frames(x: np.ndarray) -> np.ndarray:
    T = speech_num_frames(x.shape[0])
    idx = np.arange(T)[:, None] * SPEECH_HOP + np.arange(SPEECH_FRAME)[None, :]
    return x[idx]


def speech_logmel_f32(x) -> np.ndarray:
    """ln(mel(|rfft512(hann * frame)|^2) + 2^-20) per 30 ms frame, 20 ms hop: float32 [T, 40] (float64 inside)."""
    frames = _speech_frames(np.asarray(x, np.float64)) * speech_hann()
    P = np.abs(np.fft.rfft(frames, SPEECH_NFFT, axis=1)) ** 2
    return np.log(P @ speech_mel_weights().T + SPEECH_LOG_EPS).astype(np.float32)


def _q(v: np.ndarray, one: float) -> np.ndarray:
    return np.floor(v * one + 0.5).astype(np.int64)


def _cmul_q30(br, bi, c, s):
    """(br + i bi) (c + i s) with Q30 twiddles, each part rounded once: (.. + 2^29) >> 30 (int64)."""
    return (br * c - bi * s + (1 << 29)) >> 30, (br * s + bi * c + (1 << 29)) >> 30


def speech_rfft512_q15(xw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer 512-point real FFT of xw [..., 512] (int64 values < 2^15): (Re, Im) of 2X [..., 257], speech.h."""
    xw = np.asarray(xw, np.int64)
    zr, zi = xw[..., 0::2], xw[..., 1::2]
    bits = np.arange(256)
    rev = np.zeros(256, np.int64)
    for b in range(8):
        rev |= ((bits >> b) & 1) << (7 - b)
    ar, ai = zr[..., rev].copy(), zi[..., rev].copy()
    t = np.arange(128)
    c, s = _q(np.cos(-2 * np.pi * t / 256), 2.0**30), _q(np.sin(-2 * np.pi * t / 256), 2.0**30)
    m = 2
    while m <= 256:
        half = m // 2
        for j in range(half):
            k = np.arange(0, 256, m) + j
            tr, ti = _cmul_q30(ar[..., k + half], ai[..., k + half], c[j * (256 // m)], s[j * (256 // m)])
            ur, ui = ar[..., k], ai[..., k]
            ar[..., k], ai[..., k], ar[..., k + half], ai[..., k + half] = ur + tr, ui + ti, ur - tr, ui - ti
        m *= 2
    k = np.arange(257)
    km, kn = k % 256, (256 - k) % 256
    Ar, Ai, Br, Bi = ar[..., km], ai[..., km], ar[..., kn], -ai[..., kn]
    Er, Ei, Dr, Di = Ar + Br, Ai + Bi, Ar - Br, Ai - Bi
    Or, Oi = Di, -Dr
    kc, ks = _q(np.cos(-2 * np.pi * k / 512), 2.0**30), _q(np.sin(-2 * np.pi * k / 512), 2.0**30)
    pr, pi = _cmul_q30(Or, Oi, kc, ks)
    return Er + pr, Ei + pi


def speech_log2_table() -> np.ndarray:
    return _q(np.log2(1.0 + np.arange(65) / 64.0), 2.0**30)


def speech_log_q10(acc) -> np.ndarray:
    """Integer log of uint64 mel accumulators (>= 2^25): Q10 ln(acc 2^-45), int16 (speech.h)."""
    acc = np.asarray(acc, np.uint64)
    e = np.floor(np.log2(acc.astype(np.float64))).astype(np.int64)
    # floor(log2) exactly: fix the float estimate near powers of two
    e = np.where((acc >> e.astype(np.uint64)) == 0, e - 1, e)
    e = np.where((acc >> (e + 1).astype(np.uint64)) != 0, e + 1, e)
    up = np.where(e >= 30, acc >> np.maximum(e - 30, 0).astype(np.uint64),
                  acc << np.maximum(30 - e, 0).astype(np.uint64)).astype(np.int64)
    f = up - (1 << 30)
    L = speech_log2_table()
    i, r = f >> 24, f & ((1 << 24) - 1)
    lv = L[i] + (((L[i + 1] - L[i]) * r + (1 << 23)) >> 24)
    t = ((e - 45) << 30) + lv
    return np.clip((t * 11629080 + (1 << 43)) >> 44, -32768, 32767).astype(np.int16)


def speech_logmel_q15(x) -> np.ndarray:
    """The integer front-end of speech.h: int16 [n] -> Q10 log-mel int16 [T, 40]."""
    frames = _speech_frames(np.asarray(x, np.int64))
    wq = _q(speech_hann(), 32767.0)
    xw = np.zeros((frames.shape[0], SPEECH_NFFT), np.int64)
    xw[:, :SPEECH_FRAME] = (frames * wq + (1 << 14)) >> 15
    Xr, Xi = speech_rfft512_q15(xw)
    P = (Xr * Xr + Xi * Xi) >> 2
    mq = _q(speech_mel_weights(), 32768.0).astype(np.uint64)
    acc = np.full((frames.shape[0], SPEECH_NMELS), 1 << 25, np.uint64)
    Pu = P.astype(np.uint64)
    for b in range(SPEECH_NMELS):  # uint64 sums (a float matmul would round)
        nz = np.flatnonzero(mq[b])
        acc[:, b] += (Pu[:, nz] * mq[b, nz]).sum(axis=1, dtype=np.uint64)
    return speech_log_q10(acc)


def speech_ramp_table(ramp: int) -> np.ndarray:
    return _q(0.5 * (1.0 - np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)), 32768.0)


def speech_mask_gains(n: int, gates, seg_len: int, ramp: int) -> np.ndarray:
    """Q15 gain of every sample (int64 [n]) for gates over segments of seg_len samples, raised-cosine ramps."""
    g = np.asarray(gates).astype(np.int64)
    s = np.arange(n) // seg_len
    gain = g[s] * 32768
    r = speech_ramp_table(ramp)
    h = ramp // 2
    for b in range(1, len(g)):
        if g[b] == g[b - 1]:
            continue
        start = b * seg_len - h
        i = np.arange(ramp)
        pos = start + i
        ok = (pos >= 0) & (pos < n)
        gain[pos[ok]] = r[i[ok]] if g[b] else 32768 - r[i[ok]]
    return gain


def speech_mask_segments_s16(x, gates, seg_len: int, ramp: int) -> np.ndarray:
    """y = (x * gain + 2^14) >> 15 with the gains of speech_mask_gains (speech.h). int16 [n]."""
    x = np.asarray(x, np.int64)
    n = x.shape[0]
    S = -(-n // seg_len)
    gain = speech_mask_gains(n, np.asarray(gates)[:S], seg_len, ramp)
    return ((x * gain + (1 << 14)) >> 15).astype(np.int16)


def _round_div_away(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    q = (np.abs(a) + d // 2) // d
    return np.where(a < 0, -q, q)


def speech_gate_net_s8(feat, net: dict, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The int8 gate network of speech.h on q15 features [T, 40] with weights `net` (the dict of
    edgelearn.kernels.speech.gate_net_unpack). Returns (logits int32 [S], gates uint8 [S]); block B > 1: every
    segment of each run of B segments (from segment 0; the last run may be shorter) gets (sum of the run's logits
    > 0)."""
    feat = np.asarray(feat, np.int64)
    T, F = feat.shape[0], int(net["F"])
    S = -(-T // F)
    seg = np.arange(T) // F
    sums = np.zeros((S, feat.shape[1]), np.int64)
    np.add.at(sums, seg, feat)
    cnt = np.bincount(seg, minlength=S).astype(np.int64)[:, None]
    p = _round_div_away(sums, cnt)
    sh = int(net["in_shift"])
    a = np.clip(((p - np.asarray(net["in_offset"], np.int64)) * np.asarray(net["in_mult"], np.int64)
                 + (1 << (sh - 1))) >> sh, -128, 127)
    layers = net["layers"]
    for li, L in enumerate(layers):
        W = np.asarray(L["W"], np.int64)  # [cout, k, cin]
        k = W.shape[1]
        pad = np.zeros((S + k - 1, a.shape[1]), np.int64)
        pad[k // 2: k // 2 + S] = a
        acc = np.asarray(L["bias"], np.int64)[None, :].repeat(S, 0)
        for j in range(k):
            acc = acc + pad[j: j + S] @ W[:, j, :].T
        if li == len(layers) - 1:
            logits = acc[:, 0].astype(np.int32)
            sums = np.add.reduceat(logits.astype(np.int64), np.arange(0, S, block))
            return logits, np.repeat(sums > 0, block)[:S].astype(np.uint8)
        shift = np.asarray(L["shift"], np.int64)
        v = (acc * np.asarray(L["mult"], np.int64) + (np.int64(1) << (shift - 1))) >> shift
        a = np.clip(v, 0 if L["relu"] else -128, 127)
    raise ValueError("net: no layers")
