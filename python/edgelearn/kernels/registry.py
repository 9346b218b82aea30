"""One entry per compiled kernel: native function, reference twin, input maker, tolerance.

The parity tests (tests/kernels/test_parity.py) run every entry; a meta-test fails when ``edgelearn._kernels``
exports a kernel with no entry. The benchmark runner uses the same input makers. Tolerances live only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import reference as ref
from . import quant, rng, zo
from . import speech


@dataclass(frozen=True)
class Tolerance:
    """exact: bit-exact (integer kernels). Otherwise |native - ref| <= atol + rtol * |ref| elementwise,
    or ulp: at most this many float32 ULPs apart."""

    exact: bool = False
    rtol: float = 0.0
    atol: float = 0.0
    ulp: int | None = None


@dataclass(frozen=True)
class Case:
    """Arguments of one call; `inplace` names the argument index the kernel updates (its result)."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    inplace: int | None = None


@dataclass(frozen=True)
class Entry:
    name: str
    native: Callable
    reference: Callable
    make: Callable[[np.random.Generator, str], Case]  # size: "small" (tests) or "bench" (benchmarks)
    tol: Tolerance
    family: str


def _make_philox(rng_: np.random.Generator, size: str) -> Case:
    count = 1 << 20 if size == "bench" else int(rng_.integers(1, 300))
    return Case((int(rng_.integers(0, 2**64, dtype=np.uint64)), int(rng_.integers(0, 2**40)), count,
                 int(rng_.integers(0, 2**33))))


def _make_fill(dist: str):
    def make(rng_: np.random.Generator, size: str) -> Case:
        c = _make_philox(rng_, size)
        return Case(c.args, {"dist": dist})
    return make


def _make_zo_linear(rng_: np.random.Generator, size: str, shared: bool = True) -> Case:
    if size == "bench":
        n, d, o, r, K = 512, 384, 1536, 8, 16
    else:
        n, d, o = (int(rng_.integers(1, 40)) for _ in range(3))
        r, K = int(rng_.integers(1, 9)), int(rng_.integers(1, 5))
    mode = "central" if size == "bench" or rng_.random() < 0.5 else "forward"
    P = zo.num_streams(mode, K)
    S = 1 if shared else P
    f = lambda *s: rng_.standard_normal(s).astype(np.float32)  # noqa: E731
    b = f(o) if size == "bench" or rng_.random() < 0.7 else None
    seeds = rng_.integers(0, 2**64, size=K, dtype=np.uint64)
    dist = "gaussian" if size == "bench" or rng_.random() < 0.7 else "rademacher"
    root_d = np.float32(np.sqrt(d))  # a float32 scalar: dividing by NumPy's float64 would promote to float64
    return Case((f(S, n, d), f(o, d) / root_d, b, f(r, d) / root_d, f(o, r), 2.0, seeds, 1e-2,
                 int(rng_.integers(0, 100)), mode, dist))


def _make_zo_attention(rng_: np.random.Generator, size: str, whole_blocks: bool = False) -> Case:
    """A batch of packed sequences: S streams, each of q, k, v shared (S = 1) or per stream at random.
    whole_blocks: head size a multiple of 16 (the kernel's in-register transpose path)."""
    if size == "bench":  # a MiniLM layer under 17 streams, 8 sequences of AG News-like lengths
        S, heads, dh, lengths = 17, 12, 32, rng_.integers(25, 65, 8)
    else:
        S, heads = int(rng_.integers(1, 5)), int(rng_.choice([1, 2, 3, 4]))
        dh = 16 * int(rng_.integers(1, 4)) if whole_blocks else int(rng_.integers(1, 40))
        lengths = rng_.integers(1, 40, int(rng_.integers(1, 5)))
    N, d = int(lengths.sum()), heads * dh
    f = lambda s: rng_.standard_normal((s, N, d)).astype(np.float32)  # noqa: E731
    shared = [size != "bench" and rng_.random() < 0.3 for _ in range(3)]
    q, k, v = (f(1 if sh else S) for sh in shared)
    return Case((q, k, v, lengths.astype(np.int64), heads, float(1.0 / np.sqrt(dh))))


def _make_zo_replay(rng_: np.random.Generator, size: str) -> Case:
    numel, K = ((1 << 20), 16) if size == "bench" else (int(rng_.integers(1, 3000)), int(rng_.integers(1, 9)))
    return Case((rng_.standard_normal(numel).astype(np.float32), rng_.integers(0, 2**64, size=K, dtype=np.uint64),
                 rng_.standard_normal(K).astype(np.float32), int(rng_.integers(0, 1000)), int(rng_.integers(0, 2))),
                inplace=0)


def _reference_fill(seed, stream, count, start=0, dist="gaussian"):
    return ref.rng_fill_f32(seed, stream, count, start, rng.DISTS[dist])


def _reference_zo_linear(x, W, b, A, B, scale, seeds, eps, layer_id, mode="central", dist="gaussian", out=None):
    return ref.zo_perturbed_linear_f32(x, W, b, A, B, scale, seeds, eps, layer_id, mode, zo.ZO_DISTS[dist])


def _reference_zo_replay(param, seeds, coefs, layer_id, slot=0, dist="gaussian"):
    return ref.zo_replay_seeds_f32(param, seeds, coefs, layer_id, slot, zo.ZO_DISTS[dist])


def _make_qpack(rng_: np.random.Generator, size: str) -> Case:
    n, k = (1536, 384) if size == "bench" else (int(rng_.integers(1, 70)), int(rng_.integers(1, 150)))
    return Case((rng_.integers(-127, 128, size=(n, k), dtype=np.int8),))


def _pack_layout(W):
    """The packed bytes of qgemm_pack_s8(W), shaped [np/16, kp/4, 16, 4] (compared with the reference layout)."""
    return quant.qgemm_pack_s8(W).data


def _make_qunpack(rng_: np.random.Generator, size: str) -> Case:
    (W,) = _make_qpack(rng_, size).args
    return Case((quant.qgemm_pack_s8(W),))


def _reference_unpack(W):
    return ref.qgemm_unpack_s8(W.data, *W.shape)


def _make_qgemm(rng_: np.random.Generator, size: str, out_dtype: str = "float32", per_token: bool = False) -> Case:
    if size == "bench":
        m, k, n = 512, 384, 1536
    else:
        m, k, n = int(rng_.integers(1, 70)), int(rng_.integers(1, 150)), int(rng_.integers(1, 70))
    x = rng_.integers(-128, 128, size=(m, k), dtype=np.int8)
    W = quant.qgemm_pack_s8(rng_.integers(-127, 128, size=(n, k), dtype=np.int8))
    w_scale = rng_.uniform(1e-3, 2e-2, n).astype(np.float32)
    x_scale = rng_.uniform(0.01, 0.1, m).astype(np.float32) if per_token else 0.05
    bias = rng_.standard_normal(n).astype(np.float32) if size == "bench" or rng_.random() < 0.7 else None
    zx = 0 if size == "bench" else int(rng_.integers(-128, 128)) if rng_.random() < 0.5 else 0
    # an output scale that spreads y over the int8 range (and saturates its tails)
    y_scale = float(0.05 * 1e-2 * np.sqrt(k) * 75 * 73 / 40)
    y_zp = int(rng_.integers(-20, 21)) if size != "bench" else 0
    return Case((x, W, w_scale, x_scale, bias, zx, out_dtype, y_scale, y_zp))


def _make_qlinear(rng_: np.random.Generator, size: str, activation: str | None = None) -> Case:
    if size == "bench":
        m, k, n = 512, 384, 1536
    else:
        m, k, n = int(rng_.integers(1, 70)), int(rng_.integers(1, 150)), int(rng_.integers(1, 70))
    x = rng_.standard_normal((m, k)).astype(np.float32)
    W = quant.qgemm_pack_s8(rng_.integers(-127, 128, size=(n, k), dtype=np.int8))
    w_scale = rng_.uniform(1e-3, 2e-2, n).astype(np.float32)
    bias = rng_.standard_normal(n).astype(np.float32) if size == "bench" or rng_.random() < 0.7 else None
    # a calibrated scale that saturates the largest activations (the clip is part of the definition)
    return Case((x, W, w_scale, float(np.float32(3.0 / 127)), bias), {"activation": activation} if activation else {})


def _make_qadapter(rng_: np.random.Generator, size: str, qas: bool = False) -> Case:
    if size == "bench":
        shapes = [(4096, 4096)]
    else:
        shapes = [tuple(int(d) for d in rng_.integers(1, 60, size=int(rng_.integers(1, 3))))
                  for _ in range(int(rng_.integers(1, 4)))]
    q = [rng_.integers(-127, 128, size=s, dtype=np.int8) for s in shapes]
    scales = [rng_.uniform(1e-3, 2e-2, s[0]).astype(np.float32) for s in shapes]
    # gradients that move a weight by up to a few steps (QAS: in q units, before the s^-2 scaling)
    grads = [(rng_.standard_normal(s) * (1.0 if not qas else 1e-4)).astype(np.float32) for s in shapes]
    streams = None if rng_.random() < 0.5 else rng_.integers(0, 2**64, size=len(q), dtype=np.uint64)
    lr = 1e-2
    return Case((q, scales, grads, lr, int(rng_.integers(0, 2**64, dtype=np.uint64)), streams, qas))


def _qadapter_result(fn):
    """The kernel run on copies of q, its tensors concatenated (q is updated in place)."""
    def run(q, scales, grads, lr, seed, streams=None, qas=False):
        q = [t.copy() for t in q]
        fn(q, scales, grads, lr, seed, streams, qas)
        return np.concatenate([t.reshape(-1) for t in q])
    return run


def _make_qlora(rng_: np.random.Generator, size: str, perturbed: bool = True, shared: bool = True) -> Case:
    if size == "bench":
        m, k, n, r, K = 512, 384, 1536, 8, 16
    else:
        m, k, n = (int(rng_.integers(1, 40)) for _ in range(3))
        r, K = int(rng_.integers(1, 9)), int(rng_.integers(1, 5))
    mode = "central" if size == "bench" or rng_.random() < 0.5 else "forward"
    P = zo.num_streams(mode, K) if perturbed else 1
    f = lambda *s: rng_.standard_normal(s).astype(np.float32)  # noqa: E731
    x = f(1 if shared else P, m, k)
    W = quant.qgemm_pack_s8(rng_.integers(-127, 128, size=(n, k), dtype=np.int8))
    w_scale = (rng_.uniform(0.5, 1.5, n) / (127 * np.sqrt(k))).astype(np.float32)
    bias = f(n) if size == "bench" or rng_.random() < 0.7 else None
    root_k = np.float32(np.sqrt(k))
    seeds = rng_.integers(0, 2**64, size=K, dtype=np.uint64) if perturbed else None
    dist = "gaussian" if size == "bench" or rng_.random() < 0.7 else "rademacher"
    return Case((x, W, w_scale, 4.0 / 127, bias, f(r, k) / root_k, f(n, r), 2.0, seeds, 1e-2,
                 int(rng_.integers(0, 100)), mode, dist))


def _reference_qlora(x, W, w_scale, x_scale, bias, A, B, scale, seeds=None, eps=1e-3, layer_id=0, mode="central",
                     dist="gaussian", out=None):
    return ref.qlinear_lora_s8(x, W, w_scale, x_scale, bias, A, B, scale, seeds, eps, layer_id, mode,
                               zo.ZO_DISTS[dist])


ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("rng_philox_u32", rng.rng_philox_u32, ref.rng_philox_u32, _make_philox, Tolerance(exact=True), "rng"),
        Entry("rng_fill_f32", rng.rng_fill_f32, _reference_fill, _make_fill("gaussian"), Tolerance(ulp=2), "rng"),
        Entry("zo_perturbed_linear_f32", zo.zo_perturbed_linear_f32, _reference_zo_linear, _make_zo_linear,
              Tolerance(rtol=1e-4, atol=1e-4), "zo"),
        Entry("zo_replay_seeds_f32", zo.zo_replay_seeds_f32, _reference_zo_replay, _make_zo_replay,
              Tolerance(ulp=2), "zo"),
        Entry("zo_attention_packed_f32", zo.zo_attention_packed_f32, ref.zo_attention_packed_f32, _make_zo_attention,
              Tolerance(rtol=1e-5, atol=1e-5), "zo"),
        Entry("qgemm_pack_s8", _pack_layout, ref.qgemm_pack_s8, _make_qpack, Tolerance(exact=True), "quant"),
        Entry("qgemm_unpack_s8", quant.qgemm_unpack_s8, _reference_unpack, _make_qunpack, Tolerance(exact=True),
              "quant"),
        Entry("qgemm_s8", quant.qgemm_s8, ref.qgemm_s8, _make_qgemm, Tolerance(exact=True), "quant"),
        Entry("qlinear_s8", quant.qlinear_s8, ref.qlinear_s8, _make_qlinear, Tolerance(exact=True), "quant"),
        Entry("qlinear_lora_s8", quant.qlinear_lora_s8, _reference_qlora, _make_qlora,
              Tolerance(rtol=1e-4, atol=1e-4), "quant"),
        Entry("qadapter_update_s8", _qadapter_result(quant.qadapter_update_s8),
              _qadapter_result(ref.qadapter_update_s8), _make_qadapter, Tolerance(exact=True), "quant"),
    ]
}


# ------------------------------------------------------------------------------------------------ speech
def speech_test_audio(rng_: np.random.Generator, n: int) -> np.ndarray:
    """Speech-like float32 audio in [-1, 1]: a gliding harmonic voice under an envelope, noise, a silent gap."""
    t = np.arange(n) / 16000.0
    f0 = rng_.uniform(90, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng_.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    voice = sum(np.sin(h * phase) / h for h in range(1, 12))
    env = 0.5 * (1 + np.sin(2 * np.pi * rng_.uniform(1, 5) * t + rng_.uniform(0, 6)))
    x = 0.2 * env * voice + rng_.uniform(0.001, 0.05) * rng_.standard_normal(n)
    if n > 2000:
        i = int(rng_.integers(0, n - 1000))
        x[i: i + 1000] = 0.0  # digital silence: the log floor
    return np.clip(x, -1, 1).astype(np.float32)


def _make_logmel_f32(rng_: np.random.Generator, size: str) -> Case:
    n = 160000 if size == "bench" else int(rng_.integers(480, 9000))
    return Case((speech_test_audio(rng_, n),))


def _make_logmel_q15(rng_: np.random.Generator, size: str) -> Case:
    n = 160000 if size == "bench" else int(rng_.integers(480, 9000))
    x = speech.float_to_q15(speech_test_audio(rng_, n) * np.float32(rng_.choice([0.05, 1.0, 4.0])))
    return Case((x,))


def _make_mask(rng_: np.random.Generator, size: str) -> Case:
    if size == "bench":
        n, L, R = 160000, 640, 80
    else:
        n, L = int(rng_.integers(1, 6000)), int(rng_.integers(2, 900))
        R = 2 * int(rng_.integers(1, min(L, 512) // 2 + 1))
    x = rng_.integers(-32768, 32768, size=n, dtype=np.int16)
    gates = (rng_.random(speech.num_segments(n, L) + int(rng_.integers(0, 3))) < 0.6).astype(np.uint8)
    return Case((x, gates, L, R))


def speech_random_gate_net(rng_: np.random.Generator, F: int | None = None, hidden=None, k=None) -> dict:
    """A random valid int8 gate network dict (for tests and benchmarks)."""
    F = int(rng_.integers(1, 5)) if F is None else F
    hidden = [int(h) for h in rng_.integers(1, 65, size=int(rng_.integers(0, 3)))] if hidden is None else hidden
    dims = [speech.N_MELS, *hidden, 1]
    layers = []
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        kk = int(rng_.choice([1, 3, 5, 9])) if k is None else k
        last = i == len(dims) - 2
        layers.append({"W": rng_.integers(-127, 128, size=(cout, kk, cin), dtype=np.int8),
                       "bias": rng_.integers(-50000, 50000, size=cout).astype(np.int32),
                       "mult": rng_.integers(2**30, 2**31 - 1, size=cout).astype(np.int32),
                       "shift": rng_.integers(38, 46, size=cout).astype(np.int32),
                       "relu": bool(not last and rng_.random() < 0.8)})
    return {"F": F, "in_shift": 20, "in_offset": rng_.integers(-14000, 4000, size=40).astype(np.int32),
            "in_mult": rng_.integers(1000, 40000, size=40).astype(np.int32), "layers": layers}


def _make_gate_net(rng_: np.random.Generator, size: str) -> Case:
    if size == "bench":
        net = speech_random_gate_net(rng_, F=2, hidden=[32, 32], k=5)
        T = 199  # 4 s of audio
    else:
        net = speech_random_gate_net(rng_)
        T = int(rng_.integers(1, 120))
    feat = rng_.integers(-14196, 12776, size=(T, 40)).astype(np.int16)
    return Case((feat, speech.gate_net_pack(net)))


def _gate_logits(fn):
    def run(feat, net):
        return fn(feat, net)[0]
    return run


def _reference_gate_net(feat, net):
    return ref.speech_gate_net_s8(feat, speech.gate_net_unpack(net))


ENTRIES.update({
    e.name: e
    for e in [
        Entry("speech_logmel_f32", speech.speech_logmel_f32, ref.speech_logmel_f32, _make_logmel_f32,
              Tolerance(atol=1e-5), "speech"),
        Entry("speech_logmel_q15", speech.speech_logmel_q15, ref.speech_logmel_q15, _make_logmel_q15,
              Tolerance(exact=True), "speech"),
        Entry("speech_mask_segments_s16", speech.speech_mask_segments_s16, ref.speech_mask_segments_s16,
              _make_mask, Tolerance(exact=True), "speech"),
        Entry("speech_gate_net_s8", _gate_logits(speech.speech_gate_net_s8), _gate_logits(_reference_gate_net),
              _make_gate_net, Tolerance(exact=True), "speech"),
    ]
})

# Extra input makers run by the parity tests for an entry (other modes of the same kernel).
VARIANTS: dict[str, list[Callable[[np.random.Generator, str], Case]]] = {
    "rng_fill_f32": [_make_fill("uniform"), _make_fill("rademacher")],
    "zo_perturbed_linear_f32": [lambda g, s: _make_zo_linear(g, s, shared=False)],
    "qgemm_s8": [lambda g, s: _make_qgemm(g, s, "int8"), lambda g, s: _make_qgemm(g, s, "float32", True),
                 lambda g, s: _make_qgemm(g, s, "int8", True)],
    "qadapter_update_s8": [lambda g, s: _make_qadapter(g, s, qas=True)],
    "zo_attention_packed_f32": [lambda g, s: _make_zo_attention(g, s, whole_blocks=True)],
    "qlinear_s8": [lambda g, s: _make_qlinear(g, s, "gelu")],
    "qlinear_lora_s8": [lambda g, s: _make_qlora(g, s, perturbed=False), lambda g, s: _make_qlora(g, s, shared=False)],
}
