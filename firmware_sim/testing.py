"""Generated .tflite models for checking the planner against tflite-micro beyond the five MLPerf Tiny models.

`random_model(seed)` writes, through the object API of the shipped flatbuffer schema, an int8 graph of
FULLY_CONNECTED and ADD ops wired as a random DAG (branches, skip connections, several outputs), with sizes
that give the planner ties, gaps and reuse to get right.
"""

from __future__ import annotations

import random

import numpy as np


def random_model(seed: int, n_ops: int | None = None, offline: bool = False) -> bytes:
    """offline=True adds an OfflineMemoryAllocation plan fixing the offsets of some activations."""
    import flatbuffers

    from firmware_sim.importers.tflite import schema

    s = schema()
    rng = random.Random(seed)
    n_ops = n_ops or rng.randint(2, 14)

    m = s.ModelT()
    m.version = 3
    m.description = f"firmware_sim.testing.random_model(seed={seed})"
    m.buffers = [s.BufferT()]       # buffer 0: the empty sentinel
    codes = {}

    def opcode(name):
        if name not in codes:
            oc = s.OperatorCodeT()
            oc.builtinCode = getattr(s.BuiltinOperator, name)
            oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
            oc.version = 1
            codes[name] = len(codes)
            m.operatorCodes = (m.operatorCodes or []) + [oc]
        return codes[name]

    sg = s.SubGraphT()
    sg.tensors, sg.operators = [], []

    def tensor(shape, dtype, data=None, scale=0.05, zp=0):
        t = s.TensorT()
        t.shape = list(shape)
        t.type = dtype
        t.name = f"t{len(sg.tensors)}"
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zp]
        t.quantization = q
        b = s.BufferT()
        if data is not None:
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        m.buffers.append(b)
        t.buffer = len(m.buffers) - 1 if data is not None else 0
        if data is None:
            m.buffers.pop()
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    width = rng.choice([8, 16, 24, 40, 64, 100, 128])
    acts = [tensor([1, width], s.TensorType.INT8)]
    sizes = {acts[0]: width}
    sg.inputs = [acts[0]]
    used = set()
    for _ in range(n_ops):
        same = {}
        for a in acts:
            same.setdefault(sizes[a], []).append(a)
        pairs = [v for v in same.values() if len(v) >= 2]
        op = s.OperatorT()
        if pairs and rng.random() < 0.3:
            x, y = rng.sample(rng.choice(pairs), 2)
            out = tensor([1, sizes[x]], s.TensorType.INT8)
            sizes[out] = sizes[x]
            op.opcodeIndex = opcode("ADD")
            op.inputs, op.outputs = [x, y], [out]
            op.builtinOptionsType = s.BuiltinOptions.AddOptions
            op.builtinOptions = s.AddOptionsT()
        else:
            x = rng.choice(acts[-3:]) if rng.random() < 0.7 else rng.choice(acts)
            n_out = rng.choice([4, 8, 16, 24, 32, 48, 64, 96, 128, 200, 256])
            w = tensor([n_out, sizes[x]], s.TensorType.INT8,
                       np.random.default_rng(seed).integers(-20, 20, (n_out, sizes[x]), dtype=np.int8), 0.01)
            b = tensor([n_out], s.TensorType.INT32, np.zeros(n_out, np.int32), 0.05 * 0.01)
            out = tensor([1, n_out], s.TensorType.INT8)
            sizes[out] = n_out
            op.opcodeIndex = opcode("FULLY_CONNECTED")
            op.inputs, op.outputs = [x, w, b], [out]
            op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
            op.builtinOptions = s.FullyConnectedOptionsT()
        used.update(op.inputs)
        sg.operators.append(op)
        acts.append(out)
    leaves = [a for a in acts[1:] if a not in used]
    sg.outputs = leaves or [acts[-1]]
    m.subgraphs = [sg]
    if offline:
        # fix about half the activations at non-overlapping offsets; the planner fits the rest around them
        offsets, head = [-1] * len(sg.tensors), 0
        for a in acts:
            if rng.random() < 0.5:
                offsets[a] = head
                head += (sizes[a] + 15) // 16 * 16
        words = np.array([1, 0, len(sg.tensors), *offsets], dtype=np.int32)
        buf = s.BufferT()
        buf.data = np.frombuffer(words.tobytes(), dtype=np.uint8)
        m.buffers.append(buf)
        md = s.MetadataT()
        md.name, md.buffer = "OfflineMemoryAllocation", len(m.buffers) - 1
        m.metadata = [md]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
