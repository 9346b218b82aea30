"""Ethos-U NPU and phone-class cost, as Vela estimates an Ethos-U: per layer the larger of compute cycles
(MACs / MACs-per-cycle of the configuration, with the int8 utilisation of its MAC array for the layer's shape)
and transfer cycles (weights from flash, activations from SRAM at the profile's bandwidths), plus a per-layer
setup cost. Ops the NPU does not run (softmax, reshape in Vela's CPU fallback) are charged on the host core.
Uncalibrated: first principles only (no shared NPU measurement exists).
"""

from __future__ import annotations

from firmware_sim.cost.cortex_m import OpCost
from firmware_sim.cost.ops import OpWork

NPU_CLASSES = {"conv", "conv1x1", "depthwise", "fc", "elementwise", "pool"}
LAYER_SETUP_CYCLES = 500.0     # command stream + DMA setup per layer (first principles)


def _utilisation(w: OpWork, macs_per_cycle: int) -> float:
    # The MAC array is 8 (or 16) output channels wide x a block of input channels; depthwise and FC layers keep
    # only part of it busy: depthwise computes one input channel per output channel, FC has one output pixel.
    if w.cls == "depthwise":
        return 0.25
    if w.cls == "fc":
        return 0.125
    if w.cls in ("elementwise", "pool"):
        return 1.0 / 8
    return min(1.0, w.out_channels / 16)


def npu_cycles(work: list[OpWork], macs_per_cycle: int, weight_bw: float, act_bw: float,
               host_cycles_per_elem: float = 2.0) -> list[OpCost]:
    out = []
    for w in work:
        if w.cls in NPU_CLASSES:
            compute = w.macs / (macs_per_cycle * _utilisation(w, macs_per_cycle))
            traffic = w.weight_bytes / weight_bw + (w.act_in_bytes + w.act_out_bytes) / act_bw
            cyc = max(compute, traffic) + LAYER_SETUP_CYCLES
            out.append(OpCost(w.index, w.op, w.cls, w.macs, w.bytes, compute, traffic, LAYER_SETUP_CYCLES, cyc,
                              "compute" if compute >= traffic else "memory", "npu"))
        else:
            compute = w.macs * host_cycles_per_elem
            out.append(OpCost(w.index, w.op, w.cls, w.macs, w.bytes, compute, 0.0, 1000.0, compute + 1000.0,
                              "compute", "host"))
    return out
