"""Calibrate the Cortex-M cost model on the shared MLPerf Tiny v1.2 measurements (and nothing else).

    python -m firmware_sim.cost.calibrate          # fit, print constants, in-sample and leave-one-model-out errors

Fitted: per core (cortex-m7, cortex-m4, cortex-m33) eta and overhead; shared by the cores, the relative class
efficiencies rel.conv1x1, rel.depthwise, rel.fc. All other constants are first principles (constants.toml).
The fit minimises sum(log(predicted / measured)^2) + LAMBDA * sum(log(theta / prior)^2) by Gauss-Newton.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from firmware_sim.cost.cortex_m import core_params, model_cycles
from firmware_sim.cost.ops import graph_work

CALIBRATION = ("calibration", "mlperf_tiny_v1.2_stm32_xcubeai.json")
MODEL_FILES = {"ad": "ad01_int8.tflite", "ic": "pretrainedResnet_quant.tflite", "kws": "kws_ref_model.tflite",
               "vww": "vww_96_int8.tflite"}
BOARDS = {"NUCLEO_H7A3ZI_Q": "stm32h7a3", "NUCLEO_L4R5ZI": "stm32l4r5", "NUCLEO_U575ZI_Q": "stm32u575"}
CORES = ("cortex-m7", "cortex-m4", "cortex-m33")
PRIOR = {"eta": {"cortex-m7": 1.6, "cortex-m4": 0.8, "cortex-m33": 0.8}, "overhead": 1000.0,
         "rel.conv1x1": 1.0, "rel.depthwise": 0.5, "rel.fc": 0.7}
LAMBDA = 0.02


@dataclass
class Point:
    board: str
    target: str
    core: str
    model: str
    latency_ms: float
    energy_uj: float | None
    clock_mhz: float
    work: list
    weight_bw: float
    act_bw: float


def load_points(shared=None) -> list[Point]:
    from edgelearn.shared import require_shared

    from firmware_sim.importers import load
    from firmware_sim.memory.placement import place
    from firmware_sim.targets import load_target

    path = require_shared(*CALIBRATION) if shared is None else shared.joinpath(*CALIBRATION)
    rows = json.loads(path.read_text())
    energy = {(r["system"], r["benchmark"]): r["energy_uj"] for r in rows if r["kind"] == "energy"}
    graphs = {}
    pts = []
    for r in rows:
        if r["kind"] != "performance" or r["system"] not in BOARDS or r["benchmark"] not in MODEL_FILES:
            continue
        b = r["benchmark"]
        if b not in graphs:
            mp = path.parent.parent / "models" / "mlperf_tiny" / MODEL_FILES[b]
            graphs[b] = load(mp)
        t = load_target(BOARDS[r["system"]])
        pl = place(graphs[b], t, "xcubeai")
        pts.append(Point(r["system"], t.name, t.core, b, float(r["latency_ms"]), energy.get((r["system"], b)),
                         t.clock_mhz, graph_work(graphs[b]), pl.weight_bw, pl.act_bw))
    return pts


def _names() -> list[str]:
    return [f"{c}.{f}" for c in CORES for f in ("eta", "overhead")] + ["rel.conv1x1", "rel.depthwise", "rel.fc"]


def _prior(name: str) -> float:
    if name.endswith(".eta"):
        return PRIOR["eta"][name.split(".")[0]]
    if name.endswith(".overhead"):
        return PRIOR["overhead"]
    return PRIOR[name]


def predict_ms(pt: Point, theta: dict) -> float:
    ov = {"eta": theta[f"{pt.core}.eta"], "overhead": theta[f"{pt.core}.overhead"]}
    ov.update({k: v for k, v in theta.items() if k.startswith("rel.")})
    p = core_params(pt.core, "xcubeai", ov)
    cyc = sum(c.cycles for c in model_cycles(pt.work, p, pt.weight_bw, pt.act_bw))
    return cyc / (pt.clock_mhz * 1e3)


def fit(points: list[Point], iters: int = 40) -> dict:
    names = _names()
    x = np.log([_prior(n) for n in names])
    prior = x.copy()
    # parameters of a core that has no point stay at the prior
    have = {p.core for p in points}
    active = np.array([n.split(".")[0] in have or n.split(".")[0] not in CORES for n in names])

    def resid(v):
        th = dict(zip(names, np.exp(v)))
        r = [math.log(predict_ms(p, th) / p.latency_ms) for p in points]
        return np.array(r + list(math.sqrt(LAMBDA) * (v - prior)))

    for _ in range(iters):
        r0 = resid(x)
        J = np.zeros((len(r0), len(x)))
        for j in range(len(x)):
            if not active[j]:
                continue
            dx = np.zeros_like(x)
            dx[j] = 1e-5
            J[:, j] = (resid(x + dx) - r0) / 1e-5
        step, *_ = np.linalg.lstsq(J, -r0, rcond=None)
        step = np.clip(step, -0.5, 0.5)
        x = x + step
        if np.max(np.abs(step)) < 1e-7:
            break
    return dict(zip(names, np.exp(x).tolist()))


def stored_theta() -> dict:
    th = {}
    for c in CORES:
        p = core_params(c, "xcubeai")
        th[f"{c}.eta"], th[f"{c}.overhead"] = p.eta, p.overhead
    p = core_params("cortex-m7", "xcubeai")
    for k in ("conv1x1", "depthwise", "fc"):
        th[f"rel.{k}"] = p.rel[k]
    return th


def errors(points: list[Point], theta: dict | None = None) -> dict:
    """In-sample errors (stored or given constants) and leave-one-model-out errors, per point (signed, %)."""
    theta = theta or stored_theta()
    ins = {(p.target, p.model): 100 * (predict_ms(p, theta) / p.latency_ms - 1) for p in points}
    lomo = {}
    for m in sorted({p.model for p in points}):
        th = fit([p for p in points if p.model != m])
        for p in points:
            if p.model == m:
                lomo[(p.target, p.model)] = 100 * (predict_ms(p, th) / p.latency_ms - 1)
    return {"in_sample": ins, "lomo": lomo}


def main() -> None:
    pts = load_points()
    th = fit(pts)
    print("fitted constants (write into firmware_sim/cost/constants.toml):")
    for k, v in th.items():
        print(f"  {k:24s} {v:10.4g}   (prior {_prior(k):g})")
    err = errors(pts, th)
    print(f"\n{'target':10s} {'model':5s} {'measured ms':>11s} {'in-sample %':>11s} {'LOMO %':>8s}")
    for p in pts:
        k = (p.target, p.model)
        print(f"{p.target:10s} {p.model:5s} {p.latency_ms:11.3f} {err['in_sample'][k]:11.1f} {err['lomo'][k]:8.1f}")


if __name__ == "__main__":
    main()
