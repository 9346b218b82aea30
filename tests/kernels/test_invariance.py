"""Invariances of the zo kernels: thread count, shared vs per-stream input, and properties of the perturbations."""

from __future__ import annotations

import numpy as np
import pytest

import edgelearn
from edgelearn.kernels import num_streams, zo_noise, zo_perturbed_linear_f32, zo_replay_seeds_f32
from edgelearn.kernels import registry

from .checks import run_case


@pytest.fixture
def threads():
    """set_num_threads for the test, restored afterwards."""
    before = edgelearn.get_num_threads()
    yield edgelearn.set_num_threads
    edgelearn.set_num_threads(before)


def _layer(rng, n, d, o, r, K, S_streams=None, mode="central", bias=True):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    P = num_streams(mode, K)
    S = 1 if S_streams is None else P
    root = np.float32(np.sqrt(d))
    return dict(x=f(S, n, d), W=f(o, d) / root, b=f(o) if bias else None, A=f(r, d) / root, B=f(o, r),
                scale=2.0, seeds=rng.integers(0, 2**64, size=K, dtype=np.uint64), eps=1e-2, layer_id=5,
                mode=mode)


def _call(kw, **over):
    kw = {**kw, **over}
    return zo_perturbed_linear_f32(kw["x"], kw["W"], kw["b"], kw["A"], kw["B"], kw["scale"], kw["seeds"], kw["eps"],
                                   kw["layer_id"], kw["mode"], kw.get("dist", "gaussian"))


SHAPES = [(1, 5, 3, 1, 1), (37, 70, 130, 4, 3), (256, 96, 200, 8, 5)]  # n, d, o, r, K


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_stream", [False, True])
@pytest.mark.parametrize("mode", ["central", "forward"])
def test_linear_bitwise_independent_of_threads(threads, shape, per_stream, mode):
    kw = _layer(np.random.default_rng(1), *shape, S_streams=per_stream or None, mode=mode)
    threads(1)
    one = _call(kw)
    threads(2)
    two = _call(kw)
    threads(3)  # more threads than cores: other task splits
    three = _call(kw)
    assert np.array_equal(one.view(np.uint32), two.view(np.uint32))
    assert np.array_equal(one.view(np.uint32), three.view(np.uint32))


@pytest.mark.parametrize("name", ["zo_replay_seeds_f32", "rng_fill_f32", "rng_philox_u32", "zo_attention_packed_f32"])
def test_registry_kernels_bitwise_independent_of_threads(threads, name):
    e = registry.ENTRIES[name]
    case = e.make(np.random.default_rng(3), "bench")  # large enough to be split over threads
    threads(1)
    one = run_case(e.native, case)
    threads(2)
    two = run_case(e.native, case)
    assert np.array_equal(one.view(np.uint32), two.view(np.uint32))


@pytest.mark.parametrize("shape", [(40, 24, 50, 3, 2), (33, 64, 17, 8, 4), (16, 384, 64, 8, 2)])
@pytest.mark.parametrize("mode", ["central", "forward"])
def test_per_stream_input_equal_to_shared_input(shape, mode):
    rng = np.random.default_rng(2)
    kw = _layer(rng, *shape, mode=mode)
    P = num_streams(mode, shape[4])
    shared = _call(kw)
    stacked = _call(kw, x=np.ascontiguousarray(np.repeat(kw["x"], P, axis=0)))
    # The low-rank term is computed identically; x W^T comes from an n-row and a P*n-row sgemm, which OpenBLAS may
    # sum in different orders (small-matrix vs blocked kernels): equal up to float32 rounding of that product.
    np.testing.assert_allclose(stacked, shared, rtol=1e-5, atol=1e-5)


def _unperturbed(kw):
    x, W, A, B = (kw[k].astype(np.float64) for k in ("x", "W", "A", "B"))
    y = x[0] @ W.T + kw["scale"] * (x[0] @ A.T) @ B.T
    return y + kw["b"].astype(np.float64) if kw["b"] is not None else y


@pytest.mark.parametrize("bias", [True, False])
def test_forward_stream_zero_is_the_unperturbed_layer(bias):
    kw = _layer(np.random.default_rng(5), 30, 40, 50, 4, 3, mode="forward", bias=bias)
    y = _call(kw)
    np.testing.assert_allclose(y[0], _unperturbed(kw), rtol=1e-5, atol=1e-5)
    # and stream k+1 is seed k with sigma = +1: the same as central stream 2k
    yc = _call(kw, mode="central")
    np.testing.assert_allclose(y[1:], yc[0::2], rtol=1e-6, atol=1e-6)


def test_central_pairs_average_to_unperturbed_up_to_eps_squared():
    kw = _layer(np.random.default_rng(6), 20, 32, 24, 4, 3)
    base = _unperturbed(kw)
    gaps = []
    for eps in (0.2, 0.1):
        y = _call(kw, eps=eps).astype(np.float64)
        gaps.append(np.abs((y[0::2] + y[1::2]) / 2 - base).max())
    # avg - base = s eps^2 (x Z_A^T) Z_B^T: halving eps divides the gap by 4
    assert 3.5 < gaps[0] / gaps[1] < 4.5, gaps
    # and the pair difference is the exact directional derivative: (y+ - y-) / 2 eps
    eps = 0.1
    y = _call(kw, eps=eps).astype(np.float64)
    x, A, B = (kw[k].astype(np.float64) for k in ("x", "A", "B"))
    for k, seed in enumerate(kw["seeds"]):
        ZA = zo_noise(int(seed), kw["layer_id"], 0, A.shape).astype(np.float64)
        ZB = zo_noise(int(seed), kw["layer_id"], 1, B.shape).astype(np.float64)
        deriv = kw["scale"] * ((x[0] @ ZA.T) @ B.T + (x[0] @ A.T) @ ZB.T)
        np.testing.assert_allclose((y[2 * k] - y[2 * k + 1]) / (2 * eps), deriv, rtol=1e-3, atol=2e-3)


def test_output_buffer_is_used_and_returned():
    kw = _layer(np.random.default_rng(8), 9, 10, 11, 2, 2)
    out = np.full((4, 9, 11), np.nan, np.float32)
    y = zo_perturbed_linear_f32(kw["x"], kw["W"], kw["b"], kw["A"], kw["B"], 2.0, kw["seeds"], 1e-2, 5, out=out)
    assert y is out and np.array_equal(out, _call(kw))


def test_replay_accepts_torch_and_any_shape():
    torch = pytest.importorskip("torch")
    p = torch.randn(7, 5, 3)
    want = p.numpy().copy()
    seeds, coefs = np.array([1, 2, 3], np.uint64), np.array([0.5, -1.0, 2.0], np.float32)
    out = zo_replay_seeds_f32(p, seeds, coefs, 4, 1)
    assert out is p
    registry.ENTRIES["zo_replay_seeds_f32"].reference(want, seeds, coefs, 4, 1)
    assert np.array_equal(p.numpy(), want)


def test_replay_rademacher_and_aliasing_coefs():
    rng = np.random.default_rng(9)
    buf = rng.standard_normal(1000).astype(np.float32)
    seeds = np.array([11, 12], np.uint64)
    want = buf.copy()
    registry.ENTRIES["zo_replay_seeds_f32"].reference(want, seeds, want[:2].copy(), 0, 0, "rademacher")
    zo_replay_seeds_f32(buf, seeds, buf[:2], 0, 0, "rademacher")  # coefs alias param: read before any write
    assert np.array_equal(buf, want)
