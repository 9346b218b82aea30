"""The Python API: `estimate(model, target, stack)` -> Estimate, the numbers `edgelearn estimate` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_sim.cost.cortex_m import STACKS, OpCost, core_params, model_cycles
from firmware_sim.cost.npu import npu_cycles
from firmware_sim.cost.ops import graph_work
from firmware_sim.graph import Graph
from firmware_sim.importers import load
from firmware_sim.memory.arena import plan_arena
from firmware_sim.memory.placement import Placement, place, stack_scratch
from firmware_sim.targets import Target, load_target

NPU_STACKS = ("vela",)
MOBILE_STACKS = ("mobile-cpu", "mobile-npu")


@dataclass
class Estimate:
    model: str
    target: str
    stack: str
    clock_mhz: float
    latency_ms: float
    energy_uj: float
    arena_bytes: int
    flash_bytes: int
    fits: bool
    placement: Placement
    layers: list[OpCost]
    planned_arena_bytes: int = 0
    persistent_arena_bytes: int = 0
    calibrated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def cycles(self) -> float:
        return sum(layer.cycles for layer in self.layers)

    def to_json(self) -> dict:
        return {
            "model": self.model, "target": self.target, "stack": self.stack, "clock_mhz": self.clock_mhz,
            "latency_ms": self.latency_ms, "energy_uj": self.energy_uj, "arena_bytes": self.arena_bytes,
            "flash_bytes": self.flash_bytes, "fits": self.fits, "placement": self.placement.to_json(),
            "layers": [{"index": c.index, "op": c.op, "macs": c.macs, "bytes": c.bytes, "cycles": round(c.cycles, 1),
                        "bound": c.bound} for c in self.layers],
            "planned_arena_bytes": self.planned_arena_bytes, "persistent_arena_bytes": self.persistent_arena_bytes,
            "calibrated": self.calibrated, "notes": self.notes,
        }


def default_stack(target: Target) -> str:
    return {"npu": "vela", "mobile": "mobile-npu"}.get(target.kind, "xcubeai")


def estimate(model, target: str | Target, stack: str | None = None,
             measured: dict[int, float] | None = None, example_inputs=None) -> Estimate:
    """Latency, energy, arena, flash and per-layer costs of `model` (.tflite path/bytes, Graph, torch module)
    on `target` (profile name or TOML path). measured: op index -> cycles measured on the device, used instead
    of the formula for those ops. example_inputs: what a torch module is traced on (int8 deployment assumed;
    for other dtypes import first with `firmware_sim.importers.torch.load_torch(..., dtype=None)`)."""
    g: Graph = load(model, **({"example_inputs": example_inputs} if example_inputs is not None else {}))
    t = load_target(target)
    stack = stack or default_stack(t)
    known = STACKS + NPU_STACKS + MOBILE_STACKS
    if stack not in known:
        raise ValueError(f"unknown stack {stack!r}; choose one of {', '.join(known)}")
    notes = []
    scratch_stack = "tflm-cmsis-nn" if stack in NPU_STACKS + MOBILE_STACKS else stack
    plan = plan_arena(g, "greedy", stack_scratch(g, scratch_stack), pointer_bytes=4)
    pl = place(g, t, stack if stack in STACKS else ("vela" if stack == "vela" else "mobile"), plan)
    work = graph_work(g)
    calibrated = False
    clock = t.clock_mhz
    if stack in STACKS:
        if t.kind == "mobile":
            raise ValueError(f"stack {stack!r} is for Cortex-M targets; {t.name} takes mobile-cpu or mobile-npu")
        p = core_params(t.core, stack)
        layers = model_cycles(work, p, pl.weight_bw, pl.act_bw, measured)
        calibrated = p.calibrated
        power = t.active_power_mw
    elif stack == "vela":
        if "npu_macs_per_cycle" not in t.extra or t.kind != "npu":
            raise ValueError(f"stack 'vela' needs an Ethos-U target; {t.name} has no NPU")
        layers = npu_cycles(work, int(t.extra["npu_macs_per_cycle"]), pl.weight_bw, pl.act_bw)
        power = t.active_power_mw
    else:
        if t.kind != "mobile":
            raise ValueError(f"stack {stack!r} is for the phone-class target; {t.name} is {t.kind}")
        if stack == "mobile-npu":
            clock = float(t.extra.get("npu_clock_mhz", clock))
            layers = npu_cycles(work, int(t.extra["npu_macs_per_cycle"]), 1e9, 1e9)
            power = float(t.extra.get("npu_power_mw", t.active_power_mw))
        else:
            cpu = t.extra.get("cpu_macs_per_cycle", 16)
            layers = npu_cycles(work, int(cpu), pl.weight_bw, pl.act_bw)
            power = t.active_power_mw
    if stack == "vela":
        notes.append(f"{t.extra.get('npu', 'ethos-u')}: Vela-style model (within 15% of ethos-u-vela 5.2.0 on the "
                     "MLPerf Tiny models); not calibrated on hardware")
    elif not calibrated:
        notes.append(f"{t.core}/{stack}: constants from first principles, not calibrated on measurements")
    cycles = sum(c.cycles for c in layers)
    latency_ms = cycles / (clock * 1e3)
    return Estimate(g.name, t.name, stack, clock, latency_ms, power * latency_ms, pl.arena_bytes, pl.flash_bytes,
                    pl.fits, pl, layers, plan.planned_bytes, plan.persistent_bytes, calibrated, notes)
