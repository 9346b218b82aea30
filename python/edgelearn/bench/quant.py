"""Benchmark of the quant kernels (issue 5's goals as claims).

qgemm_s8 at transformer shapes (m = 512 tokens, k, n in {384, 1536}; int8 x, packed int8 W, per-channel scales,
bias, float32 out), in interleaved rounds against:
  - NumPy/OpenBLAS fp32 sgemm of the same shape into a preallocated output (throughput in operations/s, 2mnk),
  - torch's dynamic-quantized Linear (torch.ao.quantization.quantize_dynamic on nn.Linear, float32 in and out:
    its time includes quantizing x, which costs O(mk), under 1% of the work here; a row also times ours from
    float32 x, quantized inside the kernel by qlinear_s8 with a calibrated scale).
  Results are checked bit-exact against the NumPy twin. Each shape runs at the default thread count and again with
  every contender on one thread (edgelearn, NumPy's OpenBLAS via threadpoolctl, torch): on a shared 2-core machine a
  busy core stalls every two-thread GEMM at its barrier, and the one-thread ratios stay meaningful.
qadapter_update_s8 on 16M int8 elements (one 4096 x 4096 tensor): bytes counted as the pass moves them (q read
and written, g read: 6 bytes per element), against this machine's bandwidth measured in the same run (the best of
NumPy copyto and torch copy_ over 64 MB, counted as read + write bytes, as STREAM's copy does), against its NumPy
reference (timed on 1M elements and scaled: it is linear and slow) and a NumPy-vectorised version with the same
random words; bit-exact check on 1M elements; stochastic rounding bias measured over the 16M draws.
"""

from __future__ import annotations

import time

import numpy as np

from .. import get_num_threads, set_num_threads
from ..kernels import quant
from ..kernels import reference as ref
from ..kernels.rng import rng_philox_u32
from . import Report, best_interleaved

SHAPES = [(512, 384, 1536), (512, 1536, 384), (512, 384, 384), (512, 1536, 1536)]


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _OneThread:
    """Every contender on one thread (edgelearn's OpenMP + OpenBLAS, NumPy's OpenBLAS, torch) inside the block."""

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        from threadpoolctl import threadpool_limits

        self.before = get_num_threads(), self.torch.get_num_threads() if self.torch else None
        self.limit = threadpool_limits(1)
        set_num_threads(1)
        if self.torch:
            self.torch.set_num_threads(1)

    def __exit__(self, *exc):
        self.limit.restore_original_limits()
        set_num_threads(self.before[0])
        if self.torch:
            self.torch.set_num_threads(self.before[1])


def _bench_qgemm(report: Report, rng: np.random.Generator, m: int, k: int, n: int, quick: bool, torch,
                 one_thread: bool = False) -> None:
    x = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    Wq = rng.integers(-127, 128, size=(n, k), dtype=np.int8)
    W = quant.qgemm_pack_s8(Wq)
    w_scale = rng.uniform(1e-3, 2e-2, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    x_scale = 0.05
    out = np.empty((m, n), np.float32)
    y = quant.qgemm_s8(x, W, w_scale, x_scale, bias)
    exact = bool(np.array_equal(y.view(np.uint32), ref.qgemm_s8(x, W, w_scale, x_scale, bias).view(np.uint32)))

    xf = rng.standard_normal((m, k)).astype(np.float32)
    WfT = rng.standard_normal((k, n)).astype(np.float32)
    yf = np.empty((m, n), np.float32)

    sxf = float(np.float32(np.abs(xf).max() / 127))  # a calibrated per-tensor scale

    def native_from_float():  # what a float caller pays: qlinear_s8 quantizes x inside the kernel
        quant.qlinear_s8(xf, W, w_scale, sxf, bias, out=out)

    fns = {"native": lambda: quant.qgemm_s8(x, W, w_scale, x_scale, bias, out=out),
           "sgemm": lambda: np.matmul(xf, WfT, out=yf), "native_from_float": native_from_float}
    if torch is not None:
        lin = torch.nn.Linear(k, n)
        qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        tx = torch.from_numpy(xf)

        def torch_dynamic():
            with torch.no_grad():
                return qlin(tx)

        fns["torch_dynamic"] = torch_dynamic
    rounds, min_time = (3, 0.05) if quick else (9, 0.2)
    best = best_interleaved(fns, rounds, min_time)
    ops = 2.0 * m * n * k
    row = dict(kernel="qgemm_s8", m=m, k=k, n=n, threads=get_num_threads(), native_ms=best["native"] * 1e3,
               sgemm_ms=best["sgemm"] * 1e3, native_from_float_ms=best["native_from_float"] * 1e3,
               native_gops=ops / best["native"] / 1e9, sgemm_gflops=ops / best["sgemm"] / 1e9,
               bit_exact_vs_reference=exact)
    shape = f"{m}x{k}x{n}" + (", 1 thread" if one_thread else "")
    report.claim(f"qgemm_s8 ops/s / fp32 sgemm ops/s ({shape})", best["sgemm"] / best["native"] if exact else 0.0,
                 ">= 2")
    if torch is not None:
        row["torch_dynamic_ms"] = best["torch_dynamic"] * 1e3
        report.claim(f"qgemm_s8 speed-up over torch dynamic-quantized Linear ({shape})",
                     best["torch_dynamic"] / best["native"] if exact else 0.0, ">= 1")
    report.add(**row)


def _bandwidth(torch, quick: bool) -> tuple[float, dict]:
    """Machine copy bandwidth in bytes/s (read + write bytes of a 64 MB copy; the best of NumPy and torch)."""
    a = np.ones(64 << 20, np.uint8)
    b = np.empty_like(a)
    fns = {"numpy_copyto": lambda: np.copyto(b, a)}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch_copy"] = lambda: tb.copy_(ta)
    best = best_interleaved(fns, 3 if quick else 7, 0.1)
    rates = {k: 2 * a.nbytes / t for k, t in best.items()}
    return max(rates.values()), rates


def _bench_qadapter(report: Report, rng: np.random.Generator, quick: bool, torch) -> None:
    rows = cols = 4096
    numel = rows * cols
    q0 = rng.integers(-127, 128, size=(rows, cols), dtype=np.int8)
    s = rng.uniform(1e-3, 2e-2, rows).astype(np.float32)
    g = rng.standard_normal((rows, cols)).astype(np.float32)
    lr, seed = 3e-3, 20240905

    # bit-exact on the first 1M elements (256 rows), reference timed there and scaled
    sub = 256
    got = quant.qadapter_update_s8([q0[:sub].copy()], [s[:sub]], [g[:sub]], lr, seed)[0]
    want = [q0[:sub].copy()]
    t_ref = _once(lambda: ref.qadapter_update_s8(want, [s[:sub]], [g[:sub]], lr, seed)) * rows / sub
    exact = bool(np.array_equal(got, want[0]))

    work = q0.copy()

    def numpy_vectorised():  # the same arithmetic in NumPy, random words from the native Philox
        words = rng_philox_u32(seed, 0, numel // 2)
        h = np.stack([words & np.uint32(0xFFFF), words >> np.uint32(16)], axis=1).reshape(rows, cols)
        u = (h.astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-16)
        inv = (np.float32(1) / s)[:, None]
        v = work.astype(np.float32) - (np.float32(lr) * g) * inv
        fl = np.floor(v)
        work[...] = np.clip(np.where(u < v - fl, fl + np.float32(1), fl), -127, 127).astype(np.int8)

    bw, rates = _bandwidth(torch, quick)
    fns = {"native": lambda: quant.qadapter_update_s8([work], [s], [g], lr, seed),
           "numpy": numpy_vectorised}
    best = best_interleaved(fns, 3 if quick else 7, 0.1 if quick else 0.3)
    t_native = best["native"]
    moved = 6.0 * numel
    frac = moved / t_native / bw

    # stochastic rounding bias over the 16M draws: E[q'] - v, in steps, on elements that were not clipped
    q = q0.copy()
    quant.qadapter_update_s8([q], [s], [g], lr, seed + 1)
    v = q0.astype(np.float32) - (np.float32(lr) * g) * (np.float32(1) / s)[:, None]
    inside = (v > -127) & (v < 127)
    err = (q.astype(np.float64) - v.astype(np.float64))[inside]
    bias = float(abs(err.mean()))

    report.add(kernel="qadapter_update_s8", numel=numel, threads=get_num_threads(), native_ms=t_native * 1e3,
               reference_ms_scaled=t_ref * 1e3, numpy_vectorised_ms=best["numpy"] * 1e3,
               bytes_moved=moved, achieved_GBps=moved / t_native / 1e9,
               **{f"bandwidth_{k}_GBps": r / 1e9 for k, r in rates.items()},
               bit_exact_vs_reference=exact, sr_draws=int(err.size), sr_mean_error_steps=float(err.mean()),
               sr_error_std_steps=float(err.std()))
    report.claim("qadapter_update_s8 achieved bandwidth / measured copy bandwidth (16M)", frac, ">= 0.7")
    report.claim("qadapter_update_s8 reference time / native time (16M)", t_ref / t_native if exact else 0.0, ">= 5")
    report.claim("qadapter_update_s8 numpy-vectorised time / native time (16M)", best["numpy"] / t_native, ">= 1")
    report.claim("qadapter_update_s8 stochastic rounding |mean error| in steps (16M draws)", bias, "<= 1e-3")


def _bench_pack(report: Report, rng: np.random.Generator, quick: bool, torch) -> None:
    """qgemm_pack_s8 and qgemm_unpack_s8 on a 1536 x 384 weight (one Linear of the MiniLM backbone) against their
    NumPy twins and, as the outside baseline, torch's permute + contiguous of the same blocked layout (zero padding
    skipped: the shape is a multiple of the blocks). Rows only; checked bit-exact."""
    n, k = 1536, 384
    W = rng.integers(-127, 128, (n, k), dtype=np.int8)
    P = quant.qgemm_pack_s8(W)
    ok = bool(np.array_equal(P.data, ref.qgemm_pack_s8(W)) and np.array_equal(quant.qgemm_unpack_s8(P), W))
    D = np.ascontiguousarray(P.data)
    pack = {"native": lambda: quant.qgemm_pack_s8(W), "reference": lambda: ref.qgemm_pack_s8(W)}
    unpack = {"native": lambda: quant.qgemm_unpack_s8(P), "reference": lambda: ref.qgemm_unpack_s8(D, n, k)}
    if torch is not None:
        tW, tD = torch.from_numpy(W), torch.from_numpy(D)
        pack["torch"] = lambda: tW.reshape(n // 16, 16, k // 4, 4).permute(0, 2, 1, 3).contiguous()
        unpack["torch"] = lambda: tD.permute(0, 2, 1, 3).reshape(n, k).contiguous()
    for name, fns in (("qgemm_pack_s8", pack), ("qgemm_unpack_s8", unpack)):
        best = best_interleaved(fns, 3 if quick else 10, 0.05 if quick else 0.2)
        row = {f"{c}_ms": t * 1e3 for c, t in best.items()}
        row.update({f"speedup_vs_{c}": t / best["native"] for c, t in best.items() if c != "native"})
        report.add(kernel=name, n=n, k=k, bit_exact=ok, **row)


def _bench_qlora(report: Report, rng: np.random.Generator, quick: bool) -> None:
    """qlinear_lora_s8 (int8 base + float LoRA, P perturbation streams, shared input) against the float zo kernel on
    the dequantised weights (the same layer in fp32) and its NumPy twin (timed on fewer streams and scaled: linear
    in P). Rows only: the issue's goals for it are the training-step claims of _bench_adapters."""
    from ..kernels import zo

    m, k, n, r, K = 512, 384, 1536, 8, (4 if quick else 16)
    x = rng.standard_normal((1, m, k)).astype(np.float32)
    Wq = rng.integers(-127, 128, (n, k), dtype=np.int8)
    W = quant.qgemm_pack_s8(Wq)
    sw = (rng.uniform(0.5, 1.5, n) / (127 * np.sqrt(k))).astype(np.float32)
    Wf = Wq.astype(np.float32) * sw[:, None]
    b = rng.standard_normal(n).astype(np.float32)
    A = (rng.standard_normal((r, k)) / np.sqrt(k)).astype(np.float32)
    B = rng.standard_normal((n, r)).astype(np.float32)
    seeds = rng.integers(0, 2**63, K, dtype=np.uint64)
    sx = 4.0 / 127
    y = quant.qlinear_lora_s8(x, W, sw, sx, b, A, B, 2.0, seeds, 1e-2, 3)
    y_ref = ref.qlinear_lora_s8(x, W, sw, sx, b, A, B, 2.0, seeds[:1], 1e-2, 3)
    ok = bool(np.allclose(y[:2], y_ref, rtol=1e-4, atol=1e-4))
    t_ref = _once(lambda: ref.qlinear_lora_s8(x, W, sw, sx, b, A, B, 2.0, seeds[:1], 1e-2, 3)) * K
    best = best_interleaved({
        "native": lambda: quant.qlinear_lora_s8(x, W, sw, sx, b, A, B, 2.0, seeds, 1e-2, 3),
        "zo_f32": lambda: zo.zo_perturbed_linear_f32(x, Wf, b, A, B, 2.0, seeds, 1e-2, 3),
    }, 2 if quick else 5, 0.05 if quick else 0.2)
    report.add(kernel="qlinear_lora_s8", m=m, k=k, n=n, r=r, P=2 * K, native_ms=best["native"] * 1e3,
               zo_f32_ms=best["zo_f32"] * 1e3, reference_ms=t_ref * 1e3, within_tolerance=ok,
               speedup_vs_zo_f32=best["zo_f32"] / best["native"], speedup_vs_reference=t_ref / best["native"])


def _bench_adapters(report: Report, quick: bool, torch) -> None:
    """The int8 MiniLM backbone (edgelearn.adapters): its memory against the fp32 encoder, and one forward-gradient
    step (ZOTrainer, forward mode, K seeds, LoRA r=8 on query/value of blocks 4-5 + head, a batch of AG News
    padded to 64 tokens) on the int8 backbone against the same step on the fp32 torch model, at the default thread
    count and on one thread. Steps alternate (best of several each). Accuracy claims need training runs: `edgelearn adapters quick` (minutes)."""
    import tempfile
    from pathlib import Path

    from ..adapters import AdapterBank, AdapterSpec, Int8Backbone, export_minilm
    from ..adapters.train import TrainConfig, app_data, fp32_model
    from ..data import tokenize
    from ..zo import ZOTrainer
    from ..zo.bert import load_minilm_encoder, load_tokenizer

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "minilm.int8"
        export_minilm(path, calibration=32 if quick else 128)
        bb = Int8Backbone(path)
        file_bytes = path.stat().st_size
        fp32 = sum(p.numel() * 4 for p in load_minilm_encoder().parameters())
        report.add(kernel="adapters.backbone", fp32_bytes=fp32, int8_bytes=bb.nbytes, file_bytes=file_bytes)
        report.claim("int8 backbone memory: fp32 bytes / int8 bytes (MiniLM-L6)", fp32 / bb.nbytes, ">= 3.5")
        try:  # on-device cost of one 64-token sequence (firmware_sim, first-principles constants)
            from ..adapters.cost import backbone_cost

            for r in backbone_cost(bb, seq_len=64):
                report.add(kernel="adapters.backbone_cost", target=r["target"], stack=r["stack"], seq_len=64,
                           macs=r["macs"], latency_ms=r["latency_ms"], energy_uj=r["energy_uj"],
                           arena_bytes=r["arena_bytes"], flash_bytes=r["flash_bytes"], fits=r["fits"])
        except (ImportError, ValueError) as e:
            report.add(kernel="adapters.backbone_cost", skipped=str(e))

        spec = AdapterSpec()
        batch, K = 8, (8 if quick else 16)
        enc = tokenize(app_data("ag_news", TrainConfig(train_size=batch, eval_size=8))[0], load_tokenizer(), 64)
        ids, mask, y = enc.input_ids[:batch], enc.attention_mask[:batch], enc.labels[:batch]
        m32 = fp32_model(4, spec)
        m8 = AdapterBank(bb, Path(d) / "bank").new_model("ag_news", 4, spec)
        t32 = ZOTrainer(m32, lr=1e-2, K=K, mode="forward")
        t8 = ZOTrainer(m8, lr=1e-2, K=K, mode="forward")
        steps = {"fp32": lambda: t32.step(ids, mask, y), "int8": lambda: t8.step(ids, mask, y)}
        name = f"forward-gradient step speed-up, int8 backbone over fp32 torch model (K={K}, batch {batch}x64)"
        best = best_interleaved(steps, 3 if quick else 5, 0.0)
        report.add(kernel="adapters.zo_step", batch=batch, max_len=64, K=K, mode="forward", fp32_step_s=best["fp32"],
                   int8_step_s=best["int8"], threads=get_num_threads())
        report.claim(name, best["fp32"] / best["int8"], ">= 2")
        try:  # one thread each: the kernels' own speed, without the barriers a loaded machine stalls
            with _OneThread(torch):
                best = best_interleaved(steps, 3 if quick else 5, 0.0)
                report.add(kernel="adapters.zo_step", batch=batch, max_len=64, K=K, mode="forward",
                           fp32_step_s=best["fp32"], int8_step_s=best["int8"], threads=1)
            report.claim(name[:-1] + ", 1 thread)", best["fp32"] / best["int8"], ">= 2")
        except ImportError:  # threadpoolctl absent
            pass


def _machine_load() -> dict:
    """Load average and Linux autogroup scheduling at the start: on a shared machine with autogroups, a process's
    threads share one group's CPU time, so the default-thread rows measure synchronisation under contention and
    the one-thread rows measure the kernels."""
    import os

    out = {"cpus": os.cpu_count()}
    try:
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            out["sched_autogroup"] = f.read().strip() == "1"
    except OSError:
        pass
    return out


def run(quick: bool = False) -> Report:
    report = Report("quant")
    try:
        import torch
    except ImportError:  # torch is an extra: its rows and claims are left out
        torch = None
    rng = np.random.default_rng(5)
    report.add(kernel="machine", **_machine_load())
    shapes = SHAPES[:3] if quick else SHAPES
    for m, k, n in shapes:
        _bench_qgemm(report, rng, m, k, n, quick, torch)
        try:
            with _OneThread(torch):
                _bench_qgemm(report, rng, m, k, n, quick, torch, one_thread=True)
        except ImportError:  # threadpoolctl absent: NumPy's BLAS cannot be pinned to one thread
            pass
    _bench_qadapter(report, rng, quick, torch)
    _bench_pack(report, rng, quick, torch)
    _bench_qlora(report, rng, quick)
    if torch is not None:
        try:
            _bench_adapters(report, quick, torch)
        except (ImportError, FileNotFoundError) as e:  # the MiniLM package or the shared data is missing
            report.add(kernel="adapters", skipped=str(e))
    return report
