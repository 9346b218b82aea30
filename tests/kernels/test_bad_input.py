"""Bad input never crashes: thousands of generated bad calls at the public API and straight at the compiled
kernels (whose C++ checks stand alone); each raises ValueError or TypeError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgelearn import _kernels
from edgelearn.kernels import zo
from edgelearn.kernels.zo import MODES, ZO_DISTS

F32 = np.float32
BAD_DTYPES = [np.float64, np.float16, np.int32, np.uint8, np.complex64]


def _raises_naming(fn, names: set[str]) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    msg = str(info.value)
    assert any(msg.startswith(f"{n}:") or f"{n}:" in msg for n in names), f"{msg!r} names none of {sorted(names)}"


def _noncontig(a: np.ndarray) -> np.ndarray:
    """The same values in a non-C-contiguous array (strided view into a bigger buffer)."""
    buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    view = buf[..., ::2]
    view[...] = a
    return view


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


# ------------------------------------------------------------------------------------------- zo_perturbed_linear_f32
ARGS = ["x", "W", "b", "A", "B", "scale", "seeds", "eps", "layer_id", "mode", "dist", "out"]


def _linear_args(draw) -> dict:
    n, d, o = (draw(st.integers(2, 6)) for _ in range(3))
    r, K = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["central", "forward"]))
    P = zo.num_streams(mode, K)
    S = draw(st.sampled_from([1, P]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    f = lambda *s: rng.standard_normal(s).astype(F32)  # noqa: E731
    return dict(x=f(S, n, d), W=f(o, d), b=f(o), A=f(r, d), B=f(o, r), scale=2.0,
                seeds=rng.integers(0, 2**64, size=K, dtype=np.uint64), eps=1e-2, layer_id=3, mode=mode,
                dist="gaussian", out=np.empty((P, n, o), F32))


def _mutations_linear(a: dict):
    """(argument to replace -> value, names the error may cite, targets) for one valid argument set `a`."""
    x, W, b, A, B = a["x"], a["W"], a["b"], a["A"], a["B"]
    S, n, d = x.shape
    o, r = B.shape
    P = a["out"].shape[0]
    both, pub, ker = ("public", "kernel"), ("public",), ("kernel",)
    m = []
    for name, arr in [("x", x), ("W", W), ("b", b), ("A", A), ("B", B), ("out", a["out"])]:
        m += [({name: np.zeros(arr.shape, dt)}, {name}, both) for dt in BAD_DTYPES]
        m += [({name: _noncontig(arr)}, {name}, both)] if arr.size > 1 else []
        m += [({name: arr.tolist()}, {name}, both),
              ({name: arr[None]}, {name}, both), ({name: arr.reshape(-1)[:0]}, {name}, both)]
        m += [({name: "array"}, {name}, both), ({name: 3.0}, {name}, both)]
    m += [({"x": x[:, :0]}, {"x"}, both), ({"x": x[0]}, {"x"}, both),
          ({"x": np.ascontiguousarray(np.repeat(x[:1], P + 1, axis=0))}, {"x"}, both),
          ({"x": np.zeros((S, n, d + 1), F32)}, {"x", "W"}, both),
          ({"W": np.zeros((o + 1, d), F32)}, {"W", "B"}, both), ({"W": np.zeros((o, d + 1), F32)}, {"W"}, both),
          ({"W": W[:0]}, {"W", "B"}, both),
          ({"b": np.zeros(o + 1, F32)}, {"b"}, both), ({"b": np.zeros((1, o), F32)}, {"b"}, both),
          ({"A": np.zeros((r + 1, d), F32)}, {"A"}, both), ({"A": np.zeros((r, d + 1), F32)}, {"A"}, both),
          ({"B": np.zeros((o, r + 1), F32)}, {"A", "B"}, both), ({"B": np.zeros((o + 1, r), F32)}, {"B", "W"}, both),
          ({"A": A[:0], "B": np.zeros((o, 0), F32)}, {"A", "B"}, both),
          ({"out": np.empty((P + 1, n, o), F32)}, {"out"}, both), ({"out": np.empty((P, n, o + 1), F32)}, {"out"}, both),
          ({"out": _readonly(a["out"])}, {"out"}, both)]
    # out sharing memory with an input (W lives inside out's buffer)
    out_ = np.empty((P, n, o), F32)
    if out_.size >= W.size:
        w_in = out_.reshape(-1)[: W.size].reshape(W.shape)
        w_in[...] = W
        m.append(({"out": out_, "W": w_in}, {"out"}, both))
    for bad in [float("nan"), float("inf"), -float("inf"), 1e39]:
        m += [({"scale": bad}, {"scale"}, both), ({"eps": bad}, {"eps"}, both)]
    for bad in ["2", None, 1 + 1j, True, [1.0], np.array([1.0])]:
        m += [({"scale": bad}, {"scale"}, both), ({"eps": bad}, {"eps"}, both)]
    m += [({"eps": 0.0}, {"eps"}, both), ({"eps": -1e-3}, {"eps"}, both), ({"eps": -0.0}, {"eps"}, both)]
    sd = a["seeds"]
    m += [({"seeds": sd.astype(dt)}, {"seeds"}, both) for dt in (np.int64, np.float64, np.uint32, np.int8)]
    m += [({"seeds": sd[:0]}, {"seeds"}, both), ({"seeds": sd[None]}, {"seeds"}, both),
          ({"seeds": "123"}, {"seeds"}, both), ({"seeds": 7}, {"seeds"}, both), ({"seeds": None}, {"seeds"}, both),
          ({"seeds": [1, -1]}, {"seeds"}, both), ({"seeds": [2**64]}, {"seeds"}, pub), ({"seeds": [1.5]}, {"seeds"}, pub),
          ({"seeds": []}, {"seeds"}, both)] + ([({"seeds": _noncontig(sd)}, {"seeds"}, ker)] if sd.size > 1 else [])
    for bad in [-1, 2**62 + 1, 2**70, 1.5, "3", True, None, np.float32(2.0)]:
        m.append(({"layer_id": bad}, {"layer_id"}, both))
    m += [({"mode": bad}, {"mode"}, pub) for bad in ["sideways", "", "Central", 0, None]]
    m += [({"mode": bad}, {"mode"}, ker) for bad in [2, -1, 2**63, "central", None, 0.0]]
    m += [({"dist": bad}, {"dist"}, pub) for bad in ["uniform", "cauchy", 1, None]]
    m += [({"dist": bad}, {"dist"}, ker) for bad in [2, 5, -1, "gaussian", 1.0]]
    return m


def _call_linear(a: dict, change: dict, target: str):
    """The valid arguments `a` with `change` applied; the kernel takes mode and dist as ints (changes stay raw)."""
    if target == "public":
        k = {**a, **change}
        return zo.zo_perturbed_linear_f32(*(k[n] for n in ARGS))
    k = {**a, "mode": MODES[a["mode"]], "dist": ZO_DISTS[a["dist"]], **change}
    return _kernels.zo_perturbed_linear_f32(*(k[n] for n in ARGS))


def test_linear_bad_calls_raise_naming_the_argument():
    calls = []

    @settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def check(data):
        a = _linear_args(data.draw)
        # the valid call works at both levels (so failures below come from the one bad argument)
        assert _call_linear(a, {}, "public").shape == a["out"].shape
        assert _call_linear(a, {}, "kernel").shape == a["out"].shape
        change, names, targets = data.draw(st.sampled_from(_mutations_linear(a)))
        for target in targets:
            _raises_naming(lambda: _call_linear(a, change, target), names)
            calls.append(target)

    check()
    assert len(calls) >= 1000, len(calls)


def test_linear_sizes_that_overflow():
    # P*n*o overflows int64 (2^22 * 2^21 * 2^21 = 2^64): the checks fire before anything is allocated.
    K, n, o = 2**21, 2**21, 2**21
    seeds = np.arange(K, dtype=np.uint64)
    x, W, A, B = np.ones((1, n, 1), F32), np.ones((o, 1), F32), np.ones((1, 1), F32), np.ones((o, 1), F32)
    _raises_naming(lambda: _kernels.zo_perturbed_linear_f32(x, W, None, A, B, 1.0, seeds, 1e-3, 0, 0, 0, None),
                   {"out"})
    _raises_naming(lambda: zo.zo_perturbed_linear_f32(x, W, None, A, B, 1.0, seeds, 1e-3, 0), {"x", "out"})
    # within int64 but over the 2^40-element output limit
    K, n, o = 2**10, 2**15, 2**16
    x, W, B = np.ones((1, n, 1), F32), np.ones((o, 1), F32), np.ones((o, 1), F32)
    seeds = np.arange(K, dtype=np.uint64)
    _raises_naming(lambda: _kernels.zo_perturbed_linear_f32(x, W, None, A, B, 1.0, seeds, 1e-3, 0, 0, 0, None),
                   {"out"})


def test_replay_sizes_that_overflow_are_unreachable_but_huge_k_is_fine():
    p = np.zeros(10, F32)
    seeds = np.arange(2**16, dtype=np.uint64)
    coefs = np.zeros(2**16, F32)
    _kernels.zo_replay_seeds_f32(p, seeds, coefs, 0, 0, 0)
    assert not p.any()


# ------------------------------------------------------------------------------------------- zo_replay_seeds_f32
RARGS = ["param", "seeds", "coefs", "layer_id", "slot", "dist"]


def _replay_args(draw) -> dict:
    numel, K = draw(st.integers(2, 50)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(param=rng.standard_normal(numel).astype(F32), seeds=rng.integers(0, 2**64, size=K, dtype=np.uint64),
                coefs=rng.standard_normal(K).astype(F32), layer_id=1, slot=0, dist="gaussian")


def _mutations_replay(a: dict):
    both, pub, ker = ("public", "kernel"), ("public",), ("kernel",)
    p, c, sd = a["param"], a["coefs"], a["seeds"]
    m = [({"param": np.zeros(p.shape, dt)}, {"param"}, both) for dt in BAD_DTYPES]
    m += [({"param": _noncontig(p)}, {"param"}, both), ({"param": _readonly(p)}, {"param"}, both),
          ({"param": p[:0]}, {"param"}, both), ({"param": p.tolist()}, {"param"}, both),
          ({"param": None}, {"param"}, both), ({"param": 1.0}, {"param"}, both)]
    m += [({"coefs": np.zeros(c.shape, dt)}, {"coefs"}, both) for dt in BAD_DTYPES]
    m += [({"coefs": np.append(c, F32(1))}, {"coefs"}, both), ({"coefs": c[None]}, {"coefs"}, both),
          ({"coefs": c[:0]}, {"coefs", "seeds"}, both), ({"coefs": c.tolist()}, {"coefs"}, both)]
    for bad in [np.nan, np.inf, -np.inf]:
        cc = c.copy()
        cc[-1] = bad
        m.append(({"coefs": cc}, {"coefs"}, both))
    m += [({"seeds": sd.astype(dt)}, {"seeds"}, both) for dt in (np.int64, np.float64, np.uint32)]
    m += [({"seeds": sd[:0], "coefs": c[:0]}, {"seeds", "coefs"}, both), ({"seeds": sd[None]}, {"seeds"}, both),
          ({"seeds": "1"}, {"seeds"}, both), ({"seeds": None}, {"seeds"}, both)]
    m += [({"seeds": _noncontig(sd)}, {"seeds"}, ker)] if sd.size > 1 else []
    for bad in [-1, 2**62 + 1, 2**64, 0.5, "1", True, None]:
        m.append(({"layer_id": bad}, {"layer_id"}, both))
    for bad in [2, -1, 1.0, "0", False, None]:
        m.append(({"slot": bad}, {"slot"}, both))
    m += [({"dist": bad}, {"dist"}, pub) for bad in ["uniform", "normal", 0, None]]
    m += [({"dist": bad}, {"dist"}, ker) for bad in [2, -1, "gaussian", 0.0]]
    return m


def _call_replay(a: dict, change: dict, target: str):
    if target == "public":
        k = {**a, **change}
        return zo.zo_replay_seeds_f32(*(k[n] for n in RARGS))
    k = {**a, "dist": ZO_DISTS[a["dist"]], **change}
    return _kernels.zo_replay_seeds_f32(*(k[n] for n in RARGS))


def test_replay_bad_calls_raise_naming_the_argument():
    calls = []

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def check(data):
        a = _replay_args(data.draw)
        before = a["param"].copy()
        change, names, targets = data.draw(st.sampled_from(_mutations_replay(a)))
        for target in targets:
            _raises_naming(lambda: _call_replay(a, change, target), names)
            calls.append(target)
        assert np.array_equal(a["param"], before)  # a refused call leaves param untouched

    check()
    assert len(calls) >= 600, len(calls)


# ------------------------------------------------------------------------------------------- rng kernels
@pytest.mark.parametrize(("call", "names"), [
    (lambda: _kernels.rng_fill_f32(1, 2, -1, 0, 0), {"count"}),
    (lambda: _kernels.rng_fill_f32(1, 2, 4, 0, 3), {"dist"}),
    (lambda: _kernels.rng_philox_u32(1, 2, -5, 0), {"count"}),
    (lambda: _kernels._philox_force_level("sse9"), {"level"}),
    (lambda: _kernels._philox_blocks(1, 2, 0, -1), {"nblocks"}),
])
def test_rng_kernel_checks(call, names):
    _raises_naming(call, names)


# ------------------------------------------------------------------------------------------- zo_attention_packed_f32
def _attention_args():
    rng = np.random.default_rng(0)
    lengths = np.array([3, 5, 2], np.int64)
    q, k, v = (rng.standard_normal((2, 10, 8)).astype(F32) for _ in range(3))
    return dict(q=q, k=k, v=v, lengths=lengths, heads=2, scale=0.5)


def _attention_mutations():
    a = _attention_args()
    q, ln = a["q"], a["lengths"]
    nan = q.copy()
    nan[1, 9, 7] = np.nan
    inf = a["v"].copy()
    inf[0, 0, 0] = np.inf
    m = [({"q": q.astype(dt)}, {"q"}) for dt in BAD_DTYPES]
    m += [({"q": _noncontig(q)}, {"q"}), ({"q": q[0]}, {"q"}), ({"q": q.tolist()}, {"q"}), ({"q": None}, {"q"}),
          ({"q": nan}, {"q"}), ({"v": inf}, {"v"}), ({"k": a["k"][:, :9]}, {"k"}), ({"v": a["v"][:, :, :6]}, {"v"}),
          ({"k": np.concatenate([a["k"]] * 2)}, {"q", "k"}), ({"heads": 3}, {"heads"}), ({"heads": 0}, {"heads"}),
          ({"heads": 2.0}, {"heads"}), ({"scale": np.nan}, {"scale"}), ({"scale": "1"}, {"scale"}),
          ({"lengths": ln.astype(np.int32)}, {"lengths"}), ({"lengths": np.array([3, 5, 1], np.int64)}, {"lengths"}),
          ({"lengths": np.array([3, 0, 5, 2], np.int64)}, {"lengths"}), ({"lengths": ln[:0]}, {"lengths"}),
          ({"lengths": np.array([-1, 11], np.int64)}, {"lengths"})]
    return m


@pytest.mark.parametrize("target", ["public", "kernel"])
@pytest.mark.parametrize("i", range(len(_attention_mutations())))
def test_attention_bad_calls_raise_naming_the_argument(target, i):
    change, names = _attention_mutations()[i]
    k = {**_attention_args(), **change}
    if target == "public":
        _raises_naming(lambda: zo.zo_attention_packed_f32(**k), names)
    else:
        _raises_naming(lambda: _kernels.zo_attention_packed_f32(k["q"], k["k"], k["v"], k["lengths"], k["heads"],
                                                                 k["scale"]), names)


def test_attention_out_must_not_overlap_and_gets_written():
    a = _attention_args()
    _raises_naming(lambda: zo.zo_attention_packed_f32(**a, out=a["q"]), {"out"})
    _raises_naming(lambda: _kernels.zo_attention_packed_f32(*a.values(), a["k"]), {"out"})
    out = np.full((2, 10, 8), np.nan, F32)
    assert zo.zo_attention_packed_f32(**a, out=out) is out and np.isfinite(out).all()
