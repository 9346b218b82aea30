"""Placement: which memory bank of a target holds the arena (planned + persistent), the scratch buffers and the
weights, and whether the model fits, naming what overflows by how much.

Policy (what a firmware engineer does by hand): the arena is one contiguous block, put in the first SRAM bank
of the profile's list (listed fastest first, e.g. DTCM) that holds it whole; weights and the model stay in
flash; the runtime's code goes to flash too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_sim.graph import Graph
from firmware_sim.memory.arena import ArenaPlan, plan_arena
from firmware_sim.targets import Target

# Flash bytes of the inference runtime's code and tables (order of magnitude, first principles: size of the
# kernels a model of these ops links; uncalibrated).
RUNTIME_CODE_BYTES = {"xcubeai": 30 * 1024, "tflm-cmsis-nn": 80 * 1024, "tflm-reference": 60 * 1024,
                      "vela": 40 * 1024, "mobile": 0}


@dataclass
class Placement:
    arena_bank: str | None
    weights_bank: str | None
    arena_bytes: int
    flash_bytes: int
    weight_bw: float
    act_bw: float
    fits: bool
    overflows: list[str] = field(default_factory=list)
    banks: dict = field(default_factory=dict)     # bank -> {"size", "used", "holds"}

    def verdict(self) -> str:
        if self.fits:
            return f"fits: arena in {self.arena_bank}, weights in {self.weights_bank}"
        return "does not fit: " + "; ".join(self.overflows)

    def to_json(self) -> dict:
        return {"arena_bank": self.arena_bank, "weights_bank": self.weights_bank, "fits": self.fits,
                "overflows": self.overflows, "banks": self.banks, "verdict": self.verdict()}


def stack_scratch(graph: Graph, stack: str) -> dict[int, list[int]]:
    """Scratch buffers the CMSIS-NN kernels request in Prepare (their *_get_buffer_size functions, DSP path):
    k x k conv: 2 im2col columns of int16 (2 * cin * kh * kw * 2 bytes); depthwise other than 3x3: one
    int16 patch (cin * kh * kw * 2); average pool: cin int32 accumulators. Reference kernels request none."""
    if stack == "tflm-reference":
        return {}
    out: dict[int, list[int]] = {}
    for op in graph.ops:
        w = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
        x = graph.tensor(op.inputs[0]) if op.inputs else None
        if op.op == "CONV_2D" and w is not None and len(w.shape) == 4:
            kk = w.shape[1] * w.shape[2]
            if kk > 1:
                out[op.index] = [2 * w.shape[3] * kk * 2]
        elif op.op == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:
            if (w.shape[1], w.shape[2]) != (3, 3) and op.attrs.get("depth_multiplier", 1) == 1:
                out[op.index] = [w.shape[3] * w.shape[1] * w.shape[2] * 2]
        elif op.op == "AVERAGE_POOL_2D" and x is not None and x.shape:
            out[op.index] = [4 * x.shape[-1]]
    return out


def place(graph: Graph, target: Target, stack: str = "xcubeai", plan: ArenaPlan | None = None) -> Placement:
    if plan is None:
        plan = plan_arena(graph, "greedy", stack_scratch(graph, stack), pointer_bytes=4)
    arena = plan.total_bytes
    code = RUNTIME_CODE_BYTES.get(stack, 0)
    model = graph.weight_bytes if stack == "xcubeai" else graph.model_bytes
    flash_bytes = model + code
    overflows = []
    banks = {m.name: {"size": m.size_bytes, "used": 0, "holds": []} for m in target.memories}
    arena_bank = next((m for m in target.srams if m.size_bytes >= arena), None)
    if arena_bank is None:
        big = max(target.srams, key=lambda m: m.size_bytes, default=None)
        room = big.size_bytes if big else 0
        overflows.append(f"arena of {arena} B does not fit in any SRAM bank; the largest, "
                         f"{big.name if big else '-'}, holds {room} B: {arena - room} B over")
    else:
        banks[arena_bank.name]["used"] += arena
        banks[arena_bank.name]["holds"].append("arena")
    flash = target.flash
    if flash is None or flash.size_bytes < flash_bytes:
        room = flash.size_bytes if flash else 0
        overflows.append(f"model + runtime of {flash_bytes} B do not fit in flash ({room} B): "
                         f"{flash_bytes - room} B over")
    if flash is not None:
        banks[flash.name]["used"] += flash_bytes
        banks[flash.name]["holds"] += ["weights", "runtime code"]
    act_mem = arena_bank or (max(target.srams, key=lambda m: m.size_bytes) if target.srams else flash)
    return Placement(arena_bank.name if arena_bank else None, flash.name if flash else None, arena, flash_bytes,
                     flash.bytes_per_cycle if flash else 1.0, act_mem.bytes_per_cycle if act_mem else 1.0,
                     not overflows, overflows, banks)
