"""Cortex-M int8 inference cost: per-op cycles for the stacks `xcubeai` (default), `tflm-cmsis-nn`, `tflm-reference`.

Per op (cost classes of `cost.ops`):

    compute = lane MACs / (eta * rel[class])            MAC-bound part (GEMM inner loops)
            + im2col elements * c_copy                  k x k convolutions only: the patch copy / int16 widening
            + output elements * c_out                   requantize, clamp and store each output
            (elementwise: elements * c_elem, pool/softmax: input elements * c_pool, move: bytes * c_move)
    traffic = weight bytes / BW(bank holding weights) + activation bytes / BW(bank holding the arena)
    cycles  = max(compute, traffic) + overhead

lane MACs: the inner loops are vectorised over channels, `lanes` int8 values per step (Cortex-M4/M7/M33: one
32-bit word = 4 int8, widened by 2 SXTB16 into 2 SMLAD of 2 MACs each). A layer with C channels on the vectorised
axis (input channels of conv, 1x1 conv and FC; the channels of depthwise) runs ceil(C / lanes) full steps, so it
pays for ceil(C / lanes) * lanes MACs per C: a first layer with Cin = 1 (DS-CNN's 10x4 conv on MFCCs) wastes 3 of
4 lanes, an RGB layer (Cin = 3) 1 of 4. This, not the cost classes, is why DS-CNN runs ~1.35x slower per MAC than
MobileNet on every board (docs/firmware_sim.md).

eta (MAC/cycle of a k x k convolution) and overhead (cycles per op) are per core and stack; rel[class] is shared by
all cores of a stack (it is a property of the kernel algorithm: data reuse of the class); c_out, c_copy, c_elem,
c_pool and c_move are per core from instruction counts. `constants.toml` holds every number and where it came from;
`calibrate.py` fits the calibrated ones on the shared MLPerf Tiny measurements only.

Per-op costs that come from measurement rather than formula (later: counted instruction by instruction on a
Cortex-M7) plug in through `measured={op_index: cycles}`: they replace the formula for those ops.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from firmware_sim.cost.ops import OpWork

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONSTANTS = Path(__file__).with_name("constants.toml")
STACKS = ("xcubeai", "tflm-cmsis-nn", "tflm-reference")


@lru_cache(maxsize=1)
def constants() -> dict:
    return tomllib.loads(CONSTANTS.read_text())


@dataclass
class CoreParams:
    eta: float            # MAC/cycle of a k x k convolution
    overhead: float       # cycles per op
    rel: dict             # class -> efficiency relative to eta
    c_out: float
    c_copy: float
    c_elem: float
    c_pool: float
    c_move: float
    calibrated: bool
    lanes: int = 4        # int8 channels per SIMD step of the inner loops


def core_params(core: str, stack: str = "xcubeai", override: dict | None = None) -> CoreParams:
    """Constants of `core` under `stack` (override: a dict of fields to replace, used by the calibration)."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}; choose one of {', '.join(STACKS)}")
    c = constants()
    cores = c["cores"]
    if core not in cores:
        raise ValueError(f"no Cortex-M cost constants for core {core!r}; known: {', '.join(cores)}")
    k = dict(cores[core])
    rel = dict(c["stacks"]["xcubeai"]["rel"])
    s = c["stacks"][stack]
    eta = k["eta"] * s.get("eta_scale", 1.0)
    overhead = k["overhead"] + s.get("overhead_add", 0.0)
    rel.update(s.get("rel", {}))
    if "cycles_per_mac" in s:          # reference kernels: plain C loops, rate set per core from instruction counts
        eta = 1.0 / s["cycles_per_mac"][core if core in s["cycles_per_mac"] else "default"]
    p = CoreParams(eta, overhead, rel, k["c_out"] * s.get("c_out_scale", 1.0), k["c_copy"], k["c_elem"],
                   k["c_pool"], k["c_move"], bool(k.get("calibrated", False)) and stack == "xcubeai",
                   int(s.get("lanes", k.get("lanes", 4))))
    for f, v in (override or {}).items():
        if f.startswith("rel."):
            p.rel[f[4:]] = v
        else:
            setattr(p, f, v)
    return p


@dataclass
class OpCost:
    index: int
    op: str
    cls: str
    macs: int
    bytes: int
    compute_cycles: float
    traffic_cycles: float
    overhead_cycles: float
    cycles: float
    bound: str            # "compute" or "memory"
    source: str = "model"


def lane_macs(w: OpWork, lanes: int) -> float:
    """MACs the SIMD inner loop executes, counting the idle lanes of a partial last step over the channels."""
    c = max(w.in_channels, 1)
    return w.macs * (-(-c // lanes) * lanes) / c


def op_cycles(w: OpWork, p: CoreParams, weight_bw: float, act_bw: float) -> OpCost:
    if w.cls in ("conv", "conv1x1", "depthwise", "fc"):
        out_elems = w.act_out_bytes  # int8 outputs: one byte per element
        compute = lane_macs(w, p.lanes) / (p.eta * p.rel.get(w.cls, 1.0)) + out_elems * p.c_out
        if w.cls == "conv":
            # im2col: every MAC row of the GEMM is one patch element copied once per output pixel
            patch = w.macs // max(w.out_channels, 1)
            compute += patch * p.c_copy
    elif w.cls == "elementwise":
        compute = w.macs * p.c_elem
    elif w.cls == "pool":
        compute = w.macs * p.c_pool
    else:
        compute = w.act_out_bytes * p.c_move
    traffic = w.weight_bytes / weight_bw + (w.act_in_bytes + w.act_out_bytes) / act_bw
    cycles = max(compute, traffic) + p.overhead
    return OpCost(w.index, w.op, w.cls, w.macs, w.bytes, compute, traffic, p.overhead, cycles,
                  "compute" if compute >= traffic else "memory")


def model_cycles(work: list[OpWork], p: CoreParams, weight_bw: float, act_bw: float,
                 measured: dict[int, float] | None = None) -> list[OpCost]:
    out = []
    for w in work:
        if measured and w.index in measured:
            cyc = float(measured[w.index])
            out.append(OpCost(w.index, w.op, w.cls, w.macs, w.bytes, cyc, 0.0, 0.0, cyc, "compute", "measured"))
        else:
            out.append(op_cycles(w, p, weight_bw, act_bw))
    return out
