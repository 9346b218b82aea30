""".tflite importer: reads the flatbuffer through the generated schema module that ships with tflite-micro
(`tflite_micro.tensorflow.lite.micro.python.schema_py_generated`) or ai-edge-litert (`ai_edge_litert.schema_py_generated`).

Every malformed input ends in a `ValueError` naming the problem: a truncated or mutated file must never crash
the caller or make it loop. The generated accessors trust the offsets they read, so before walking a vector the
importer checks that its claimed length fits in the file, and every exception the accessors raise on bad offsets
(struct.error, IndexError, ...) becomes `ValueError("<file>: malformed .tflite: ...")`.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

from firmware_sim.graph import DTYPE_BYTES, Graph, Op, Quant, Tensor, tensor_bytes

MAX_MODEL_BYTES = 1 << 31        # flatbuffers without external buffers cannot exceed 2 GiB
MAX_ELEMENTS = 1 << 40           # a tensor claiming more elements than this is a corrupt shape
OFFLINE_PLAN_METADATA = "OfflineMemoryAllocation"
MAX_RANK = 8                     # tflite kernels handle up to 6 dimensions; more is a corrupt shape


@lru_cache(maxsize=1)
def schema():
    """The generated flatbuffer schema module (tflite-micro's first, then ai-edge-litert's)."""
    errors = []
    for mod in ("tflite_micro.tensorflow.lite.micro.python.schema_py_generated",
                "ai_edge_litert.schema_py_generated",
                "tensorflow.lite.python.schema_py_generated"):
        try:
            import importlib

            return importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - any import failure means: try the next package
            errors.append(f"{mod}: {e}")
    raise ImportError("reading .tflite needs the flatbuffer schema of tflite-micro or ai-edge-litert: "
                      "pip install 'edgelearn[litert]'  (" + "; ".join(errors) + ")")


@lru_cache(maxsize=1)
def _enums():
    s = schema()

    def names(cls):
        return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}

    return names(s.BuiltinOperator), names(s.TensorType), names(s.BuiltinOptions), names(s.Padding), \
        names(s.ActivationFunctionType)


@lru_cache(maxsize=None)
def _option_fields(cls) -> tuple[tuple[str, str], ...]:
    """Scalar fields of a generated options table: (Accessor, snake_name) for methods taking only self."""
    import inspect
    import re

    out = []
    for name, fn in vars(cls).items():
        if name.startswith("_") or not name[:1].isupper() or name in ("Init",) or name.startswith("GetRootAs"):
            continue
        if name.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")) or not callable(fn):
            continue
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if params == ["self"]:
            out.append((name, re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()))
    return tuple(out)


def load_tflite(path: str | Path, subgraph: int = 0) -> Graph:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such model file")
    size = p.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ValueError(f"{p}: {size} bytes is larger than a .tflite flatbuffer can be (2 GiB)")
    return load_tflite_bytes(p.read_bytes(), name=p.stem, source=str(p), subgraph=subgraph)


def load_tflite_bytes(buf: bytes, name: str = "model", source: str = "<bytes>", subgraph: int = 0) -> Graph:
    """Parse a .tflite flatbuffer into a Graph (one subgraph, by default the main one)."""
    if len(buf) < 8:
        raise ValueError(f"{source}: malformed .tflite: {len(buf)} bytes is too short for a flatbuffer")
    if buf[4:8] != b"TFL3":
        raise ValueError(f"{source}: not a .tflite model: file identifier is {bytes(buf[4:8])!r}, expected b'TFL3'")
    try:
        return _parse(buf, name, source, subgraph)
    except ValueError as e:
        msg = str(e)
        msg = msg if len(msg) <= 240 else msg[:237] + "..."
        raise ValueError(msg if msg.startswith(source) else f"{source}: malformed .tflite: {msg}") from None
    except (struct.error, IndexError, KeyError, TypeError, AttributeError, OverflowError, UnicodeDecodeError,
            RecursionError, MemoryError) as e:
        raise ValueError(f"{source}: malformed .tflite: {type(e).__name__}: {e}") from None


def _check_len(n: int, elem_bytes: int, buf_len: int, what: str) -> int:
    if n < 0 or n * elem_bytes > buf_len:
        raise ValueError(f"{what} claims {n} entries, more than the {buf_len}-byte file can hold")
    return n


def _parse(buf: bytes, name: str, source: str, subgraph_index: int) -> Graph:
    s = schema()
    op_names, type_names, option_names, padding_names, act_names = _enums()
    n = len(buf)
    root = struct.unpack_from("<I", buf, 0)[0]
    if root >= n:
        raise ValueError(f"root table offset {root} is past the end of the {n}-byte file")
    model = s.Model.GetRootAs(buf, 0)
    version = model.Version()
    if version != 3:
        raise ValueError(f"schema version {version}, expected 3")

    n_sub = _check_len(model.SubgraphsLength(), 4, n, "subgraphs")
    if n_sub == 0:
        raise ValueError("the model has no subgraph")
    if not 0 <= subgraph_index < n_sub:
        raise ValueError(f"subgraph {subgraph_index} requested, the model has {n_sub}")
    n_codes = _check_len(model.OperatorCodesLength(), 4, n, "operator_codes")
    opcodes = []
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        nm = op_names.get(code)
        if nm is None:
            raise ValueError(f"operator code {i}: unknown builtin code {code}")
        if nm == "CUSTOM":
            cc = oc.CustomCode()
            nm = "CUSTOM:" + (cc.decode("utf-8", "replace") if cc else "?")
        opcodes.append(nm)

    n_buf = _check_len(model.BuffersLength(), 4, n, "buffers")
    buffer_sizes = []
    for i in range(n_buf):
        b = model.Buffers(i)
        size = b.DataLength()
        if size == 0 and hasattr(b, "Size"):
            size = b.Size()   # large models keep data after the flatbuffer (offset/size)
        buffer_sizes.append(size)

    # Offline memory plan, if the model carries one (tflite-micro's OfflineMemoryAllocation metadata).
    offline = None
    total_tensors = 0
    for gi in range(n_sub):
        total_tensors += _check_len(model.Subgraphs(gi).TensorsLength(), 4, n, f"subgraph {gi} tensors")
    for i in range(_check_len(model.MetadataLength(), 4, n, "metadata")):
        md = model.Metadata(i)
        if (md.Name() or b"").decode("utf-8", "replace") != OFFLINE_PLAN_METADATA:
            continue
        bi = md.Buffer()
        if not 0 <= bi < n_buf:
            raise ValueError(f"{OFFLINE_PLAN_METADATA} metadata points at buffer {bi} of {n_buf}")
        data = model.Buffers(bi).DataAsNumpy()
        raw = bytes(data) if not isinstance(data, int) else b""
        words = struct.unpack_from(f"<{len(raw) // 4}i", raw, 0)
        if len(words) < 3 or words[2] != total_tensors or len(words) < 3 + total_tensors:
            raise ValueError(f"{OFFLINE_PLAN_METADATA} metadata: header {words[:3]} does not match "
                             f"{total_tensors} tensors")
        first = sum(model.Subgraphs(g).TensorsLength() for g in range(subgraph_index))
        offline = list(words[3 + first: 3 + first + model.Subgraphs(subgraph_index).TensorsLength()])

    sg = model.Subgraphs(subgraph_index)
    n_t = sg.TensorsLength()
    tensors = []
    for ti in range(n_t):
        t = sg.Tensors(ti)
        nd = _check_len(t.ShapeLength(), 4, n, f"tensor {ti} shape")
        if nd > MAX_RANK:
            raise ValueError(f"tensor {ti} has rank {nd}, more than {MAX_RANK}")
        shape = tuple(int(t.Shape(j)) for j in range(nd))
        if any(d < 0 for d in shape):
            raise ValueError(f"tensor {ti} has a negative dimension in shape {shape}")
        numel = 1
        for d in shape:
            numel *= d
        if numel > MAX_ELEMENTS:
            raise ValueError(f"tensor {ti} shape {shape} has {numel} elements, implausibly many")
        tcode = t.Type()
        dtype = type_names.get(tcode)
        if dtype is None or dtype.lower() not in DTYPE_BYTES:
            raise ValueError(f"tensor {ti} has unknown type code {tcode}")
        dtype = dtype.lower()
        bi = t.Buffer()
        if not 0 <= bi < max(n_buf, 1):
            raise ValueError(f"tensor {ti} points at buffer {bi}, the model has {n_buf}")
        constant = bi > 0 and bi < n_buf and buffer_sizes[bi] > 0
        q = t.Quantization()
        quant = None
        if q is not None:
            ns = _check_len(q.ScaleLength(), 4, n, f"tensor {ti} scales")
            nz = _check_len(q.ZeroPointLength(), 8, n, f"tensor {ti} zero points")
            if ns:
                quant = Quant([float(q.Scale(j)) for j in range(ns)], [int(q.ZeroPoint(j)) for j in range(nz)],
                              int(q.QuantizedDimension()))
        tname = (t.Name() or b"").decode("utf-8", "replace")
        nbytes = tensor_bytes(shape, dtype)
        ent = _entropy_bits(model.Buffers(bi)) if constant and dtype in ("int8", "uint8") and nbytes > 64 else None
        tensors.append(Tensor(ti, tname, shape, dtype, constant=constant, variable=bool(t.IsVariable()),
                              quant=quant, nbytes=nbytes, entropy_bits=ent))

    def index_list(length: int, get, what: str, allow_missing: bool = False) -> list[int]:
        out = []
        for j in range(_check_len(length, 4, n, what)):
            v = int(get(j))
            if not (0 <= v < n_t or (allow_missing and v == -1)):
                raise ValueError(f"{what}: tensor index {v} out of range (the subgraph has {n_t} tensors)")
            out.append(v)
        return out

    ops = []
    for oi in range(_check_len(sg.OperatorsLength(), 4, n, "operators")):
        o = sg.Operators(oi)
        ci = o.OpcodeIndex()
        if not 0 <= ci < len(opcodes):
            raise ValueError(f"operator {oi} uses opcode index {ci}, the model has {len(opcodes)}")
        ins = index_list(o.InputsLength(), o.Inputs, f"operator {oi} inputs", allow_missing=True)
        outs = index_list(o.OutputsLength(), o.Outputs, f"operator {oi} outputs")
        ops.append(Op(oi, opcodes[ci], ins, outs, _options(o, option_names, padding_names, act_names)))

    inputs = index_list(sg.InputsLength(), sg.Inputs, "subgraph inputs")
    outputs = index_list(sg.OutputsLength(), sg.Outputs, "subgraph outputs")
    if offline is not None and len(offline) != n_t:
        raise ValueError(f"offline plan has {len(offline)} offsets for {n_t} tensors")
    return Graph(name, tensors, ops, inputs, outputs, offline_offsets=offline, model_bytes=n, source=source)


def _entropy_bits(buffer) -> float | None:
    """Shannon entropy (bits per byte) of a buffer held inside the flatbuffer; None if the data lives outside."""
    import numpy as np

    data = buffer.DataAsNumpy()
    if isinstance(data, int) or len(data) == 0:
        return None
    p = np.bincount(np.asarray(data, dtype=np.uint8), minlength=256).astype(np.float64)
    p = p[p > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def _options(o, option_names, padding_names, act_names) -> dict:
    """The op's builtin options as a dict of snake_case scalars (padding and activation as names)."""
    kind = option_names.get(o.BuiltinOptionsType())
    if not kind or kind == "NONE":
        return {}
    cls = getattr(schema(), kind, None)
    tab = o.BuiltinOptions()
    if cls is None or tab is None:
        return {}
    obj = cls()
    obj.Init(tab.Bytes, tab.Pos)
    attrs = {}
    for acc, key in _option_fields(cls):
        v = getattr(obj, acc)()
        if isinstance(v, (bool, int, float)):
            attrs[key] = v
    if "padding" in attrs:
        attrs["padding"] = padding_names.get(attrs["padding"], attrs["padding"])
    if "fused_activation_function" in attrs:
        attrs["fused_activation_function"] = act_names.get(attrs["fused_activation_function"],
                                                           attrs["fused_activation_function"])
    return attrs
