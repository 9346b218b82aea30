"""The tensor arena as tflite-micro builds it: buffer requirements (allocation_info.cc), the plan (greedy or
linear), and a model of the persistent part (op data, tensor structs) for a 32- or 64-bit target.

Buffer requirements, as tflite-micro's AllocationInfoBuilder:
- a tensor is planned when its data is not in the model (no constant buffer), it is not a variable (variables
  are allocated persistently; with an offline plan, a variable that has an offline offset is planned) and it has
  at least one byte;
- lifetimes count "allocation scopes": the subgraph inputs are created (and used) in scope 0; op i runs in scope
  i + 1 and creates its outputs there and uses its inputs there; subgraph outputs live to the last scope;
- scratch buffers that a kernel requests in Prepare live exactly in their op's scope and follow the tensors;
- sizes are rounded up to the arena alignment, 16 bytes (MicroArenaBufferAlignment).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_sim.graph import Graph
from firmware_sim.memory.greedy import GreedyMemoryPlanner
from firmware_sim.memory.linear import LinearMemoryPlanner
from firmware_sim.memory.planner import ONLINE, Buffer, MemoryPlanner

ALIGN = 16  # tflite-micro MicroArenaBufferAlignment()

PLANNERS: dict[str, type[MemoryPlanner]] = {"greedy": GreedyMemoryPlanner, "linear": LinearMemoryPlanner}


def align_up(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class ArenaPlan:
    planner: str
    planned_bytes: int                     # the planned (non-persistent, "head") part of the arena
    persistent_bytes: int                  # modelled persistent ("tail") part on the chosen pointer width
    buffers: list[Buffer] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    scratch_bytes: int = 0                 # largest scratch buffer requested by any op (inside planned_bytes)

    @property
    def total_bytes(self) -> int:
        return self.planned_bytes + self.persistent_bytes

    def peak_at(self) -> list[int]:
        """Live bytes per allocation scope (the lower bound any planner must meet)."""
        last = max((b.last for b in self.buffers), default=-1)
        live = [0] * (last + 1)
        for b in self.buffers:
            for s in range(max(b.first, 0), b.last + 1):
                live[s] += b.size
        return live


def buffer_requirements(graph: Graph, scratch: dict[int, list[int]] | None = None,
                        use_offline_plan: bool = True) -> list[Buffer]:
    """The buffers tflite-micro hands its planner, in its order: tensors by index, then scratch buffers.

    scratch: op index -> sizes of the scratch buffers its kernel requests (depends on the kernel library)."""
    n = len(graph.tensors)
    first = [-1] * n
    last = [-1] * n

    def created(i, scope):
        if first[i] == -1:
            first[i] = scope

    for i in graph.inputs:
        created(i, 0)
        last[i] = 0
    scope = 0
    for op in graph.ops:
        scope += 1
        for i in op.outputs:
            created(i, scope)
        for i in op.inputs:
            if i >= 0:
                last[i] = scope
        for i in op.outputs:
            last[i] = scope
    for i in graph.outputs:
        created(i, scope)
        last[i] = scope

    offline = graph.offline_offsets if use_offline_plan else None
    out = []
    for t in graph.tensors:
        off = offline[t.index] if offline is not None else ONLINE
        needs = not t.constant and not t.variable and t.nbytes != 0
        if t.variable and off != ONLINE:
            needs = True
        if needs:
            out.append(Buffer(align_up(t.nbytes), first[t.index], last[t.index], off, f"tensor {t.index}"))
    for op_index, sizes in sorted((scratch or {}).items()):
        for s in sizes:
            if s > 0:
                out.append(Buffer(align_up(s), op_index + 1, op_index + 1, ONLINE, f"scratch op {op_index}"))
    return out


def plan_arena(graph: Graph, planner: str = "greedy", scratch: dict[int, list[int]] | None = None,
               pointer_bytes: int = 4) -> ArenaPlan:
    """Plan the arena of `graph`; planned_bytes is what tflite-micro reports as the arena head."""
    if planner not in PLANNERS:
        raise ValueError(f"planner {planner!r}: choose one of {', '.join(PLANNERS)}")
    buffers = buffer_requirements(graph, scratch)
    p = PLANNERS[planner]()
    offsets = p.plan(buffers)
    size = p.arena_size(buffers, offsets)
    scratch_max = max((s for v in (scratch or {}).values() for s in v), default=0)
    return ArenaPlan(planner, align_up(size), persistent_bytes(graph, pointer_bytes), buffers, offsets,
                     scratch_max)


# --- persistent part --------------------------------------------------------------------------------------
# Sizes of tflite-micro's persistent allocations (tail of the arena). The struct layouts are those of
# tensorflow/lite/c/common.h and micro kernels' OpData; with pointer_bytes=8 they reproduce the 64-bit host
# build that the tflite-micro Python interpreter records, with 4 a 32-bit Cortex-M build.

def _eval_tensor_bytes(pb: int) -> int:       # TfLiteEvalTensor {void* data; TfLiteIntArray* dims; TfLiteType}
    return align_up(2 * pb + 4, pb)


def _node_bytes(pb: int) -> int:              # NodeAndRegistration {TfLiteNode (6 pointers + int); registration*}
    return align_up(6 * pb + 4, pb) + pb


# OpData struct bytes per kernel family at 8- and 4-byte pointers (fields: quantization multipliers/shifts,
# activation bounds, offsets, padding, pointers to the per-channel arrays). Estimated from the struct
# definitions, then checked against the recording (docs/firmware_sim.md).
_OPDATA = {
    "CONV_2D": (72, 64), "DEPTHWISE_CONV_2D": (72, 64), "FULLY_CONNECTED": (56, 48), "TRANSPOSE_CONV": (72, 64),
    "AVERAGE_POOL_2D": (24, 24), "MAX_POOL_2D": (24, 24), "SOFTMAX": (48, 44), "ADD": (64, 64), "MUL": (40, 40),
}


def persistent_bytes(graph: Graph, pointer_bytes: int = 4) -> int:
    """Modelled persistent (tail) arena bytes: eval tensors, node structs, per-op data, I/O tensor structs."""
    pb = pointer_bytes
    col = 0 if pb == 8 else 1
    total = align_up(_eval_tensor_bytes(pb) * len(graph.tensors), ALIGN)
    total += align_up(_node_bytes(pb) * len(graph.ops), ALIGN)
    # TfLiteTensor structs for the interpreter's input and output accessors (+ their quantization params)
    tflite_tensor = 64 if pb == 8 else 48
    total += align_up(tflite_tensor * (len(graph.inputs) + len(graph.outputs)), ALIGN)
    total += align_up(16 * (len(graph.inputs) + len(graph.outputs)), ALIGN)
    for op in graph.ops:
        s = _OPDATA.get(op.op)
        if s is None:
            continue
        total += align_up(s[col], 4)
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            outs = graph.op_outputs(op)
            ch = outs[0].shape[-1] if outs and outs[0].shape else 1
            w = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
            per_channel = w is not None and w.quant is not None and w.quant.per_channel
            if per_channel or op.op != "FULLY_CONNECTED":
                total += 2 * align_up(4 * ch, 4)   # int32 output multipliers and shifts per channel
    return total
