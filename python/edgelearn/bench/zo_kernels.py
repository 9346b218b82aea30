"""Benchmark of the zo kernels at MiniLM shapes: native vs NumPy reference vs OpenBLAS sgemm vs plain torch.

zo_perturbed_linear_f32: d = 384, o in {384, 1536}, n = 512 rows, rank r = 8, K = 16 seeds in central mode
(P = 32 streams), shared input (S = 1) and one input per stream (S = P). Baselines, all in this process:
  - the NumPy reference (float64; timed once, it is slow),
  - one NumPy/OpenBLAS sgemm of the stacked size [P*n, d] @ [d, o] into a preallocated output: the frozen
    product alone, the floor of S = P,
  - the best plain-torch version found: frozen product once (S = 1) or batched (S = P), perturbed adapters
    stacked for all streams with noise from torch.randn inside the timed region, one baddbmm for the low-rank term.
zo_replay_seeds_f32: 1M parameters, K = 16 seeds, against the NumPy reference, a NumPy-vectorised version
(noise from rng_fill_f32, float64 accumulation in NumPy) and torch (per-seed torch.Generator + randn).
zo_attention_packed_f32: one MiniLM layer's attention under 17 streams against its NumPy twin and torch's
scaled_dot_product_attention (see _bench_attention).
Every comparison checks that the results agree.
"""

from __future__ import annotations

import time

import numpy as np

from .. import _kernels, get_num_threads
from ..kernels import reference as ref
from ..kernels import registry
from ..kernels.rng import rng_fill_f32
from ..kernels.zo import zo_perturbed_linear_f32, zo_replay_seeds_f32
from . import Report, best_interleaved, best_time

N, D, R, K = 512, 384, 8, 16
P = 2 * K
EPS, SCALE, LAYER = 1e-2, 2.0, 3


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _within(got: np.ndarray, want: np.ndarray, tol: registry.Tolerance) -> bool:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return bool(np.all(np.abs(got - want) <= tol.atol + tol.rtol * np.abs(want)))


def _torch_linear(torch, x, W, b, A, B, S: int, out):
    """The best plain-torch version: returns fn(noise=None) -> y; noise (ZA [K,r,d], ZB [K,o,r]) replaces randn."""
    tx, tW, tb, tA, tB = (torch.from_numpy(t) for t in (x, W, b, A, B))
    o = W.shape[0]
    sig = (EPS * torch.tensor([1.0, -1.0] * K, dtype=torch.float32)).view(P, 1, 1)
    tout = torch.from_numpy(out)

    def run(noise=None):
        if noise is None:
            ZA, ZB = torch.randn(K, R, D), torch.randn(K, o, R)
        else:
            ZA, ZB = (torch.from_numpy(z) for z in noise)
        Ap = tA + sig * ZA.repeat_interleave(2, 0)  # [P, r, d]
        BpT = (tB + sig * ZB.repeat_interleave(2, 0)).transpose(1, 2)  # [P, r, o]
        if S == 1:
            base = torch.addmm(tb, tx[0], tW.T)  # frozen product once
            u = torch.matmul(tx[0], Ap.transpose(1, 2))  # [P, n, r]
            return torch.baddbmm(base.expand(P, N, o), u, BpT, alpha=SCALE, out=tout)
        torch.matmul(tx, tW.T, out=tout)
        u = torch.bmm(tx, Ap.transpose(1, 2))
        return tout.baddbmm_(u, BpT, alpha=SCALE).add_(tb)

    return run


def _bench_linear(report: Report, rng: np.random.Generator, o: int, S: int, quick: bool, torch) -> None:
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x, W, b = f(S, N, D), f(o, D) / np.float32(np.sqrt(D)), f(o)
    A, B = f(R, D) / np.float32(np.sqrt(D)), f(o, R)
    seeds = rng.integers(0, 2**64, size=K, dtype=np.uint64)
    args = (x, W, b, A, B, SCALE, seeds, EPS, LAYER, "central", "gaussian")
    out = np.empty((P, N, o), np.float32)
    repeat, min_time = (3, 0.05) if quick else (7, 0.2)

    native = lambda: zo_perturbed_linear_f32(*args, out=out)  # noqa: E731
    native()
    y = out.copy()
    t0 = time.perf_counter()
    want = ref.zo_perturbed_linear_f32(*args[:-2], "central", ref.GAUSSIAN)
    t_ref = time.perf_counter() - t0
    tol = registry.ENTRIES["zo_perturbed_linear_f32"].tol
    agree_ref = _within(y, want, tol)

    xs = x.reshape(P * N, D) if S == P else np.ascontiguousarray(np.broadcast_to(x, (P, N, D))).reshape(P * N, D)
    WT, ys = W.T, np.empty((P * N, o), np.float32)
    fns = {"native": native, "sgemm": lambda: np.matmul(xs, WT, out=ys)}
    if torch is not None:
        tout = np.empty((P, N, o), np.float32)
        run = _torch_linear(torch, x, W, b, A, B, S, tout)
        fns["torch"] = run
    best = best_interleaved(fns, repeat, min_time)
    t_native, t_sgemm = best["native"], best["sgemm"]

    row = dict(kernel="zo_perturbed_linear_f32", o=o, S=S, n=N, d=D, r=R, K=K, P=P, threads=get_num_threads(),
               native_ms=t_native * 1e3, reference_ms=t_ref * 1e3, sgemm_ms=t_sgemm * 1e3,
               native_vs_reference_ok=agree_ref, max_abs_err=float(np.max(np.abs(y - want))))
    report.claim(f"zo_perturbed_linear_f32 time / stacked sgemm time (o={o}, S={'P' if S > 1 else 1})",
                 t_native / t_sgemm, "<= 1.3")
    report.claim(f"zo_perturbed_linear_f32 reference time / native time (o={o}, S={'P' if S > 1 else 1})",
                 t_ref / t_native if agree_ref else 0.0, ">= 5")
    if torch is not None:
        t_torch = best["torch"]
        noise = (np.stack([ref.zo_noise(int(s), LAYER, 0, (R, D)) for s in seeds]),
                 np.stack([ref.zo_noise(int(s), LAYER, 1, (o, R)) for s in seeds]))
        run(noise)
        agree_torch = _within(tout, y, registry.Tolerance(rtol=1e-4, atol=1e-4))
        row.update(torch_ms=t_torch * 1e3, torch_same_noise_ok=agree_torch)
        report.claim(f"zo_perturbed_linear_f32 torch time / native time (o={o}, S={'P' if S > 1 else 1})",
                     t_torch / t_native if agree_torch else 0.0, ">= 1")
    report.add(**row)


def _bench_replay(report: Report, rng: np.random.Generator, quick: bool, torch) -> None:
    numel = 1 << 20
    param = rng.standard_normal(numel).astype(np.float32)
    seeds = rng.integers(0, 2**64, size=K, dtype=np.uint64)
    coefs = rng.standard_normal(K).astype(np.float32)
    repeat, min_time = (3, 0.05) if quick else (7, 0.2)

    work = param.copy()
    got = param.copy()
    zo_replay_seeds_f32(got, seeds, coefs, LAYER, 0)
    want = param.copy()
    t_ref = _once(lambda: ref.zo_replay_seeds_f32(want, seeds, coefs, LAYER, 0, ref.GAUSSIAN))
    ulp = int(np.max(np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32))))
    agree_ref = ulp <= registry.ENTRIES["zo_replay_seeds_f32"].tol.ulp

    def numpy_vectorised(p):  # the same noise from the native fill, accumulated by NumPy in float64
        acc = np.zeros(numel, np.float64)
        for s, c in zip(seeds, coefs):
            acc += np.float64(c) * rng_fill_f32(int(s), 2 * LAYER, numel).astype(np.float64)
        p[:] = (p.astype(np.float64) + acc).astype(np.float32)

    fns = {"native": lambda: zo_replay_seeds_f32(work, seeds, coefs, LAYER, 0),
           "numpy": lambda: numpy_vectorised(work)}
    if torch is not None:
        tp = torch.from_numpy(work)

        def torch_replay():  # its own generator per seed: same cost structure, different (torch) noise
            acc = torch.zeros(numel, dtype=torch.float64)
            for s, c in zip(seeds, coefs):
                g = torch.Generator().manual_seed(int(s) & 0x7FFFFFFFFFFFFFFF)
                acc += float(c) * torch.randn(numel, generator=g).double()
            tp.copy_((tp.double() + acc).float())

        fns["torch"] = torch_replay
    best = best_interleaved(fns, repeat, min_time)
    t_native, t_np = best["native"], best["numpy"]
    check = param.copy()
    numpy_vectorised(check)
    row = dict(kernel="zo_replay_seeds_f32", numel=numel, K=K, threads=get_num_threads(),
               native_ms=t_native * 1e3, reference_ms=t_ref * 1e3, numpy_vectorised_ms=t_np * 1e3,
               max_ulp_vs_reference=ulp, numpy_vectorised_same=bool(np.array_equal(check, got)))
    report.claim("zo_replay_seeds_f32 reference time / native time (1M, K=16)",
                 t_ref / t_native if agree_ref else 0.0, ">= 5")
    report.claim("zo_replay_seeds_f32 numpy-vectorised time / native time (1M, K=16)", t_np / t_native, ">= 1")
    if torch is not None:
        t_torch = best["torch"]
        row.update(torch_ms=t_torch * 1e3)
        report.claim("zo_replay_seeds_f32 torch time / native time (1M, K=16)", t_torch / t_native, ">= 1")
    report.add(**row)


def _bench_attention(report: Report, quick: bool, torch) -> None:
    """zo_attention_packed_f32 at one MiniLM layer under 17 streams (8 sequences of 25-64 tokens, 12 heads) against
    its NumPy twin (timed once) and torch: scaled_dot_product_attention over the padded [S*B, H, T, dh] view with
    the key mask, including the scatter of the packed rows into it and the gather back (what the model did before
    this kernel), and the same without scatter/gather (attention alone on data already padded)."""
    e = registry.ENTRIES["zo_attention_packed_f32"]
    q, k, v, lengths, heads, scale = e.make(np.random.default_rng(7), "bench").args
    S, N, d = q.shape
    B, T, dh = lengths.size, int(lengths.max()), d // heads
    got = e.native(q, k, v, lengths, heads, scale)
    t_ref = _once(lambda: ref.zo_attention_packed_f32(q[:1], k[:1], v[:1], lengths, heads, scale)) * S
    ok_ref = _within(got[:1], ref.zo_attention_packed_f32(q[:1], k[:1], v[:1], lengths, heads, scale), e.tol)
    fns = {"native": lambda: e.native(q, k, v, lengths, heads, scale)}
    row = dict(kernel="zo_attention_packed_f32", S=S, B=B, N=N, d=d, heads=heads, threads=get_num_threads())
    if torch is not None:
        F = torch.nn.functional
        mask = torch.zeros(B, T, dtype=torch.bool)
        for b, L in enumerate(lengths):
            mask[b, :L] = True
        idx, pad = mask.reshape(-1).nonzero().squeeze(1), (~mask).reshape(-1).nonzero().squeeze(1)
        key_mask = mask.view(B, 1, 1, T).repeat(S, 1, 1, 1)
        qt, kt, vt = (torch.from_numpy(t) for t in (q, k, v))

        def padded(t):
            buf = t.new_empty(S, B * T, d)
            buf[:, pad] = 0.0
            buf[:, idx] = t
            return buf.view(S * B, T, heads, dh).transpose(1, 2)

        qp, kp, vp = padded(qt), padded(kt), padded(vt)

        def torch_packed():
            ctx = F.scaled_dot_product_attention(padded(qt), padded(kt), padded(vt), attn_mask=key_mask)
            return ctx.transpose(1, 2).reshape(S, B * T, d)[:, idx]

        fns["torch_packed"] = torch_packed
        fns["torch_sdpa_only"] = lambda: F.scaled_dot_product_attention(qp, kp, vp, attn_mask=key_mask)
        row["agrees_with_torch"] = _within(got, torch_packed().numpy(), registry.Tolerance(rtol=1e-4, atol=1e-4))
    best = best_interleaved(fns, 3 if quick else 7, 0.05 if quick else 0.2)
    row.update(native_ms=best["native"] * 1e3, reference_ms=t_ref * 1e3, within_tolerance=ok_ref)
    report.claim("zo_attention_packed_f32 reference time / native time (17 streams, 8 x 25-64 tokens)",
                 t_ref / best["native"] if ok_ref else 0.0, ">= 5")
    if torch is not None:
        row.update(torch_packed_ms=best["torch_packed"] * 1e3, torch_sdpa_only_ms=best["torch_sdpa_only"] * 1e3)
        report.claim("zo_attention_packed_f32 speed-up over torch sdpa with padding scatter/gather (17 streams)",
                     best["torch_packed"] / best["native"] if row["agrees_with_torch"] else 0.0, ">= 1")
    report.add(**row)


def _bench_gaussian(report: Report) -> None:
    """Gaussian fill throughput per SIMD path (informative row; values are identical across paths)."""
    count = 1 << 18
    row = dict(kernel="rng_fill_f32", dist="gaussian", count=count)
    try:
        for level in ("scalar", "avx2", "avx512"):
            _kernels._philox_force_level(level)
            if _kernels._philox_level() != level:
                continue
            t = best_time(lambda: _kernels.rng_fill_f32(1, 2, count, 0, 0), 3, 0.05)
            row[f"{level}_ns_per_value"] = t / count * 1e9
    finally:
        _kernels._philox_force_level("")
    report.add(**row)


def run(quick: bool = False) -> Report:
    report = Report("zo")
    try:
        import torch
    except ImportError:  # torch is an extra: its rows and claims are left out
        torch = None
    rng = np.random.default_rng(2024)
    _bench_gaussian(report)
    for o in (384, 1536):
        for S in (1, P):
            _bench_linear(report, rng, o, S, quick, torch)
    _bench_replay(report, rng, quick, torch)
    _bench_attention(report, quick, torch)
    return report
