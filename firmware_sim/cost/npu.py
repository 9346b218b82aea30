"""Ethos-U NPU and phone-class cost, as Vela estimates an Ethos-U (ethos-u-vela's performance model, simplified).

Per layer: cycles = max(compute + setup, weight stream, activation traffic).

compute (MAC array in micro-blocks, "ublocks", of 2 x 2 output pixels x D output channels, D = MACs/cycle / 16:
8 on an Ethos-U55-128, 16 on a -256; the IFM is consumed 8 channels per step, 2 cycles per step):
    conv, 1x1 conv, FC:  ceil(H/2) ceil(W/2) ceil(Cout/D) x taps x ceil(Cin/8) x 2 cycles
    depthwise:           ceil(H/2) ceil(W/2) ceil(C/D) x taps x 2 x K_DW   (one IFM channel per OFM channel, so
                         the 8-deep dot product is not filled; K_DW calibrated, see below)
    the output stage (scale, activation, write) drains OUT_CYCLES_128 x 128 / MACs elements per cycle; a layer
    takes the larger of MAC array and output stage (they overlap block by block).
    elementwise (ADD, MUL): ELEM_CYCLES_128 x 128 / MACs cycles per output element (two IFM reads);
    pooling: POOL_CYCLES per input element; SOFTMAX: Vela lowers int8 softmax into ~ 25 small NPU ops (max,
    LUT exp, sums, a Newton reciprocal), ~ SOFTMAX_CYCLES in all; RESHAPE: removed by Vela (0 cycles).
weight stream: Vela compresses weights losslessly and DMA-streams them from flash while the layer computes; the
    coded size is ~ the entropy of the int8 values + 10 bytes of bias/scale per output channel
    (`OpWork.weight_coded_bytes`), read at the flash bandwidth of the system config.
activation traffic: IFM + OFM bytes at the SRAM bandwidth.

Constants: first principles from the Ethos-U55 micro-architecture as Vela models it, except K_DW and
LAYER_SETUP_CYCLES, chosen so the totals match Vela 5.2.0 on the four MLPerf Tiny models (docs/firmware_sim.md,
tests/firmware_sim/test_vela.py): those two are calibrated against Vela, not measured hardware.
Ops the NPU does not run fall back to the host core.
"""

from __future__ import annotations

from firmware_sim.cost.cortex_m import OpCost
from firmware_sim.cost.ops import OpWork

NPU_CLASSES = {"conv", "conv1x1", "depthwise", "fc", "elementwise", "pool"}
CYCLES_PER_STEP = 2.0          # one 2 x 2 x D ublock x 8 IFM channels: 2 cycles (= MACs/cycle at full use)
K_DW = 1.8                     # calibrated against Vela's depthwise layers (depthwise steps cost 1.8x a conv step)
OUT_CYCLES_128 = 0.5           # output stage: 2 elements/cycle on a 128-MAC configuration, scales with MACs
ELEM_CYCLES_128 = 1.5          # elementwise: 1.5 cycles per element on a 128-MAC configuration (2 IFM reads)
POOL_CYCLES = 0.67             # pooling: per input element
SOFTMAX_CYCLES = 900.0         # int8 softmax lowered to ~ 25 small NPU ops
LAYER_SETUP_CYCLES = 500.0     # calibrated against Vela: command stream, block fill and drain per layer
HOST_OP_CYCLES = 1000.0        # ops left to the host core: per-op overhead


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def npu_compute(w: OpWork, macs_per_cycle: int) -> float:
    """Compute cycles of one op on the NPU's MAC array and output stage (no setup, no traffic)."""
    d = max(macs_per_cycle // 16, 1)
    scale = 128.0 / macs_per_cycle
    xy = _cdiv(w.out_h, 2) * _cdiv(w.out_w, 2)
    out = w.act_out_bytes * OUT_CYCLES_128 * scale
    if w.cls in ("conv", "conv1x1", "fc"):
        dpu = xy * _cdiv(w.out_channels, d) * w.taps * _cdiv(w.in_channels, 8) * CYCLES_PER_STEP
        return max(dpu, out)
    if w.cls == "depthwise":
        dpu = xy * _cdiv(w.out_channels, d) * w.taps * CYCLES_PER_STEP * K_DW
        return max(dpu, out)
    if w.op == "SOFTMAX":
        return SOFTMAX_CYCLES
    if w.cls == "elementwise":
        return w.act_out_bytes * ELEM_CYCLES_128 * scale
    return w.act_in_bytes * POOL_CYCLES


def npu_cycles(work: list[OpWork], macs_per_cycle: int, weight_bw: float, act_bw: float,
               host_cycles_per_elem: float = 2.0) -> list[OpCost]:
    """Per-op cycles on an Ethos-U-like NPU. weight_bw / act_bw: flash and SRAM bytes per NPU cycle."""
    out = []
    for w in work:
        if w.op in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
            out.append(OpCost(w.index, w.op, w.cls, w.macs, w.bytes, 0.0, 0.0, 0.0, 0.0, "memory", "npu"))
        elif w.cls in NPU_CLASSES:
            compute = npu_compute(w, macs_per_cycle)
            weights = w.weight_coded_bytes / weight_bw
            acts = (w.act_in_bytes + w.act_out_bytes) / act_bw
            traffic = max(weights, acts)
            busy = compute + LAYER_SETUP_CYCLES
            out.append(OpCost(w.index, w.op, w.cls, w.macs, w.bytes, compute, traffic, LAYER_SETUP_CYCLES,
                              max(busy, traffic), "compute" if busy >= traffic else "memory", "npu"))
        else:
            compute = w.macs * host_cycles_per_elem
            out.append(OpCost(w.index, w.op, w.cls, w.macs, w.bytes, compute, 0.0, HOST_OP_CYCLES,
                              compute + HOST_OP_CYCLES, "compute", "host"))
    return out
