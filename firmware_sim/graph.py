"""Model IR: tensors (shape, dtype, quantization, bytes, constant or not) and ops with their attributes.

Importers (`firmware_sim.importers`) build a `Graph`; the memory planners and cost models only read it.
Execution order is the order of `Graph.ops` (as in a .tflite subgraph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

# Bytes per element of each dtype name (int4 packs two per byte: see Tensor.nbytes).
DTYPE_BYTES = {
    "float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8,
    "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1, "int4": 0.5, "complex64": 8, "complex128": 16,
    "string": 1, "resource": 0, "variant": 0,
}


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per `axis` channel."""

    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    constant: bool = False          # data lives in the model (flash): weights, biases, shape operands
    variable: bool = False          # state kept across invocations (allocated persistently, not planned)
    quant: Quant | None = None
    nbytes: int = 0                 # bytes of the tensor's data
    entropy_bits: float | None = None  # constant 8-bit data: Shannon entropy per element (what a lossless weight
                                       # codec such as Vela's can compress it to), None when unknown

    @property
    def numel(self) -> int:
        return prod(self.shape) if self.shape else 1


@dataclass
class Op:
    index: int
    op: str                          # builtin name, e.g. "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"
    inputs: list[int]                # tensor indices; -1 for an omitted optional input
    outputs: list[int]
    attrs: dict = field(default_factory=dict)   # stride_w, padding, dilation_h_factor, depth_multiplier, ...


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    # Offline memory plan (tflite "OfflineMemoryAllocation" metadata): one offset per tensor, -1 = plan online.
    offline_offsets: list[int] | None = None
    model_bytes: int = 0             # size of the serialized model (what a TFLM build keeps in flash)
    source: str = ""

    def tensor(self, i: int) -> Tensor | None:
        return self.tensors[i] if i >= 0 else None

    def op_inputs(self, op: Op) -> list[Tensor | None]:
        return [self.tensor(i) for i in op.inputs]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]

    @property
    def weight_bytes(self) -> int:
        """Bytes of constant tensor data (weights, biases, constant operands)."""
        return sum(t.nbytes for t in self.tensors if t.constant)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for o in self.ops:
            kinds[o.op] = kinds.get(o.op, 0) + 1
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
        return f"{self.name}: {len(self.tensors)} tensors, {len(self.ops)} ops ({ops}), {self.weight_bytes} weight bytes"


def tensor_bytes(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes of a dense tensor (int4 rounds up to whole bytes)."""
    per = DTYPE_BYTES.get(dtype)
    if per is None:
        raise ValueError(f"unknown dtype {dtype!r}")
    n = prod(shape) if shape else 1
    return (n + 1) // 2 if per == 0.5 else int(n * per)
