"""Benchmark of firmware_sim (family "firmware_sim"): the issue's goals measured in this run.

- arena: greedy plan == tflite-micro's recorded planned arena on the five MLPerf Tiny models
- latency: in-sample and leave-one-model-out errors per calibration board (goal <= 15%)
- Ethos-U55-128/-256: total cycles vs ethos-u-vela run on the same models (goal within 15%; skipped without vela)
- speed: one estimate of any of the models in < 0.2 s
"""

from __future__ import annotations

import time

from edgelearn.bench import Report

MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite", "str_ww": "str_ww_ref_model.tflite"}


def run(quick: bool) -> Report:
    from edgelearn.shared import require_shared

    from firmware_sim.cost import calibrate as C
    from firmware_sim.estimate import estimate
    from firmware_sim.importers import load
    from firmware_sim.memory import plan_arena
    from firmware_sim.memory.recording import record_tflm_arena

    rep = Report("firmware_sim")
    folder = require_shared("models", "mlperf_tiny")
    exact = 0
    for k, f in MODELS.items():
        data = (folder / f).read_bytes()
        g = load(data)
        ours = plan_arena(g).planned_bytes
        rec = record_tflm_arena(data)
        exact += ours == rec["head"]
        rep.add(kind="arena", model=k, greedy=ours, linear=plan_arena(g, "linear").planned_bytes,
                tflm_head=rec["head"], persistent_model_64bit=plan_arena(g, pointer_bytes=8).persistent_bytes,
                tflm_tail=rec["tail"])
    rep.claim("arena byte-exact vs tflite-micro (models of 5)", exact, ">= 5")

    pts = C.load_points()
    err = C.errors(pts)
    for board in sorted({p.target for p in pts}):
        ins = [abs(v) for (t, _), v in err["in_sample"].items() if t == board]
        lomo = [abs(v) for (t, _), v in err["lomo"].items() if t == board]
        for p in pts:
            if p.target == board:
                rep.add(kind="latency", target=board, model=p.model, measured_ms=p.latency_ms,
                        in_sample_pct=round(err["in_sample"][(board, p.model)], 1),
                        lomo_pct=round(err["lomo"][(board, p.model)], 1))
        rep.claim(f"latency in-sample max |error| % {board}", max(ins), "<= 15")
        rep.claim(f"latency leave-one-model-out max |error| % {board}", max(lomo), "<= 15")

    from firmware_sim.cost.vela_ref import run_vela, vela_command

    if vela_command() is not None:
        for target in ("corstone300-u55-128", "corstone300-u55-256"):
            errs = []
            for k in ("ad", "ic", "kws", "vww"):
                ref = run_vela(folder / MODELS[k], target)
                ours = estimate(folder / MODELS[k], target).cycles
                errs.append(abs(100 * (ours / ref.total_cycles - 1)))
                rep.add(kind="vela", target=target, model=k, vela_cycles=ref.total_cycles, our_cycles=round(ours),
                        error_pct=round(100 * (ours / ref.total_cycles - 1), 1))
            rep.claim(f"total cycles vs Vela max |error| % {target}", max(errs), "<= 15")

    worst = 0.0
    for k, f in MODELS.items():
        n = 3 if quick else 10
        best = float("inf")
        for _ in range(n):
            t0 = time.perf_counter()
            estimate(folder / f, "stm32h7a3")
            best = min(best, time.perf_counter() - t0)
        rep.add(kind="speed", model=k, estimate_s=best)
        worst = max(worst, best)
    rep.claim("estimate time, slowest model (s)", worst, "<= 0.2")
    return rep
