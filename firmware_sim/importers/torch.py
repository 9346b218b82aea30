"""torch importer: a torch.nn.Module, traced by `torch.export` on example inputs, into the same Graph IR as a .tflite.

    g = load_torch(model, (torch.randn(1, 3, 32, 32),))          # int8 deployment assumed (dtype="int8")
    g = load_torch(model, example, dtype=None)                    # keep the module's own dtypes (float32, ...)

What becomes what (tflite names, so memory planners and cost models read it unchanged):
- conv2d -> CONV_2D, or DEPTHWISE_CONV_2D when groups == in_channels (depth_multiplier = out / in); weights laid
  out as tflite's (out, kh, kw, in) / (1, kh, kw, out); activations NCHW -> NHWC shapes.
- linear -> FULLY_CONNECTED (weights (out, in), any number of leading dims); matmul/bmm -> BATCH_MATMUL;
  scaled_dot_product_attention -> BATCH_MATMUL (Q K^T), SOFTMAX, BATCH_MATMUL (x V).
- relu / relu6 / hardtanh right after a conv or linear are fused into it (as tflite fuses activations); elsewhere
  they are elementwise ops, as are add/sub/mul, gelu, sigmoid, tanh.
- max/avg/adaptive pooling, mean -> MAX_POOL_2D / AVERAGE_POOL_2D / MEAN; softmax -> SOFTMAX; layer_norm ->
  LAYER_NORM (a reduction).
- view, reshape, flatten, squeeze, contiguous, dropout, ...: aliases (no op, no buffer); transpose/permute,
  slice/select, cat: data movement ops.
- anything else: kept as an op named after the aten op, costed as data movement (listed in `graph.source`).
With dtype="int8": activations and weights are int8, conv/linear biases int32, and each weight tensor records the
entropy of its per-channel symmetric int8 quantization (what Vela's lossless codec would compress it to).
"""

from __future__ import annotations

import numpy as np

from firmware_sim.graph import Graph, Op, Tensor, tensor_bytes

ALIASES = {"view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze", "contiguous",
           "dropout", "alias", "detach", "clone", "lift_fresh_copy", "expand", "_to_copy", "to", "type_as",
           "feature_dropout", "identity", "getitem"}
ACTS = {"relu": "RELU", "relu_": "RELU", "relu6": "RELU6", "hardtanh": "RELU6", "hardtanh_": "RELU6"}
ELEMENTWISE = {"add": "ADD", "add_": "ADD", "sub": "SUB", "mul": "MUL", "div": "MUL", "gelu": "GELU",
               "sigmoid": "LOGISTIC", "tanh": "TANH", "hardswish": "HARD_SWISH", "silu": "HARD_SWISH",
               "leaky_relu": "LEAKY_RELU", "neg": "NEG", "abs": "ABS", "exp": "EXP", "rsqrt": "RSQRT",
               "sqrt": "SQRT", "pow": "MUL", "maximum": "MAXIMUM", "minimum": "MINIMUM"}
MOVES = {"transpose": "TRANSPOSE", "permute": "TRANSPOSE", "t": "TRANSPOSE", "slice": "STRIDED_SLICE",
         "select": "GATHER", "cat": "CONCATENATION", "stack": "PACK", "pad": "PAD",
         "constant_pad_nd": "PAD", "split": "SPLIT", "chunk": "SPLIT", "embedding": "GATHER"}
POOLS = {"max_pool2d": "MAX_POOL_2D", "avg_pool2d": "AVERAGE_POOL_2D", "adaptive_avg_pool2d": "AVERAGE_POOL_2D",
         "adaptive_max_pool2d": "MAX_POOL_2D", "mean": "MEAN", "sum": "SUM", "amax": "REDUCE_MAX",
         "softmax": "SOFTMAX", "_softmax": "SOFTMAX", "log_softmax": "LOG_SOFTMAX", "layer_norm": "LAYER_NORM",
         "native_layer_norm": "LAYER_NORM", "batch_norm": "MUL", "_native_batch_norm_legit_no_training": "MUL"}


def _dtype_name(dt) -> str:
    return str(dt).replace("torch.", "")


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else shape


def _entropy_int8(w: np.ndarray) -> float:
    """Entropy (bits/value) of the per-output-channel symmetric int8 quantization of a float weight array."""
    w = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -1)
    scale = np.abs(w).max(axis=1, keepdims=True)
    q = np.round(w / np.where(scale > 0, scale, 1.0) * 127).astype(np.int64) + 128
    p = np.bincount(q.ravel(), minlength=256).astype(np.float64)
    p = p[p > 0] / q.size
    return float(-(p * np.log2(p)).sum())


def load_torch(module, example_inputs=None, dtype: str | None = "int8", name: str | None = None) -> Graph:
    """Graph of `module` traced on `example_inputs` (a tensor or tuple of tensors; default: the module's
    `example_input` attribute). dtype: "int8" (deployment as int8, the default) or None to keep torch's dtypes."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        raise ImportError("importing torch modules needs torch (pip install torch==2.13.0)") from e
    if example_inputs is None:
        example_inputs = getattr(module, "example_input", None)
        if example_inputs is None:
            raise ValueError(f"{type(module).__name__}: give example_inputs (e.g. (torch.randn(1, 3, 32, 32),)) "
                             "so the module can be traced with torch.export")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            ep = torch.export.export(module, tuple(example_inputs))
    except Exception as e:
        raise ValueError(f"{type(module).__name__}: torch.export failed: {str(e).splitlines()[0][:300]}") from e
    finally:
        module.train(was_training)
    return _convert(ep, dtype, name or type(module).__name__)


class _Builder:
    def __init__(self, dtype):
        self.dtype = dtype
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.of: dict[str, int] = {}          # fx node name -> tensor index
        self.producer: dict[int, int] = {}    # tensor index -> op position in self.ops
        self.users: dict[str, int] = {}

    def tensor(self, name, shape, dt, constant=False, entropy=None) -> int:
        if self.dtype is not None and dt.startswith(("float", "bfloat")):
            dt = self.dtype                   # deployment dtype for activations and weights
        i = len(self.tensors)
        self.tensors.append(Tensor(i, name, tuple(int(d) for d in shape), dt, constant=constant,
                                   nbytes=tensor_bytes(tuple(int(d) for d in shape), dt), entropy_bits=entropy))
        return i

    def op(self, kind, inputs, outputs, **attrs) -> Op:
        o = Op(len(self.ops), kind, list(inputs), list(outputs), attrs)
        self.ops.append(o)
        for t in outputs:
            self.producer[t] = o.index
        return o


def _convert(ep, dtype, name) -> Graph:
    sig = ep.graph_signature
    params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
              **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    state = {**ep.state_dict, **getattr(ep, "constants", {})}
    b = _Builder(dtype)
    nodes = list(ep.graph.nodes)
    for n in nodes:
        for a in n.all_input_nodes:
            b.users[a.name] = b.users.get(a.name, 0) + 1
    graph_inputs, graph_outputs, unknown = [], [], set()

    def shape_of(n):
        v = n.meta.get("val")
        return tuple(v.shape) if hasattr(v, "shape") else ()

    def dt_of(n):
        v = n.meta.get("val")
        return _dtype_name(v.dtype) if hasattr(v, "dtype") else "float32"

    def out_tensor(n):
        i = b.tensor(n.name, _nhwc(shape_of(n)), dt_of(n))
        b.of[n.name] = i
        return i

    def param(node, role="weight", layout=None):
        """Constant tensor for a parameter placeholder; role "bias" -> int32 in int8 mode."""
        key = node.name
        if key in b.of and layout is None:
            return b.of[key]
        arr = state.get(params.get(key, ""), None)
        shape = shape_of(node)
        ent = None
        if arr is not None and dtype == "int8" and role == "weight" and arr.numel() > 64:
            ent = _entropy_int8(arr.detach().float().cpu().numpy())
        dt = "int32" if role == "bias" and dtype is not None else dt_of(node)
        i = b.tensor(params.get(key, key), layout(shape) if layout else shape, dt, constant=True, entropy=ent)
        if layout is None:
            b.of[key] = i
        return i

    for n in nodes:
        if n.op == "placeholder":
            if n.name in params:
                continue                       # constants are created where used (layout depends on the op)
            graph_inputs.append(out_tensor(n))
            continue
        if n.op == "output":
            outs = n.args[0] if isinstance(n.args[0], (tuple, list)) else (n.args[0],)
            graph_outputs = [b.of[a.name] for a in outs if hasattr(a, "name") and a.name in b.of]
            continue
        if n.op != "call_function":
            continue
        target = getattr(n.target, "__name__", str(n.target))
        base = target.split(".")[0]
        args = n.args
        ins = [a for a in n.all_input_nodes]

        def src(a):
            if a.name in params:
                return param(a)
            return b.of[a.name]

        if base in ALIASES and ins:
            b.of[n.name] = src(ins[0]) if ins[0].name not in params else param(ins[0])
            continue
        if base in ("conv2d", "convolution"):
            x, w = args[0], args[1]
            bias = args[2] if len(args) > 2 else None
            stride = args[3] if len(args) > 3 else [1, 1]
            padding = args[4] if len(args) > 4 else [0, 0]
            dilation = args[5] if len(args) > 5 else [1, 1]
            gi = 6 if base == "conv2d" else 8
            groups = args[gi] if len(args) > gi else n.kwargs.get("groups", 1)
            cout, cin_g, kh, kw = shape_of(w)
            cin = shape_of(x)[1]
            dw = groups == cin and groups > 1
            if dw:
                wi = param(w, layout=lambda s: (1, s[2], s[3], s[0]))
                kind, attrs = "DEPTHWISE_CONV_2D", {"depth_multiplier": cout // cin}
            else:
                wi = param(w, layout=lambda s: (s[0], s[2], s[3], s[1]))
                kind, attrs = "CONV_2D", {"groups": groups}
            s2 = list(stride) * (2 // len(stride)) if len(stride) == 1 else list(stride)
            d2 = list(dilation) * (2 // len(dilation)) if len(dilation) == 1 else list(dilation)
            p = padding if isinstance(padding, str) else list(padding)
            op_in = [src(x), wi] + ([param(bias, "bias")] if bias is not None else [])
            b.op(kind, op_in, [out_tensor(n)], stride_h=s2[0], stride_w=s2[1], padding=p,
                 dilation_h_factor=d2[0], dilation_w_factor=d2[1], fused_activation_function="NONE", **attrs)
            continue
        if base == "linear":
            x, w = args[0], args[1]
            bias = args[2] if len(args) > 2 else None
            op_in = [src(x), param(w)] + ([param(bias, "bias")] if bias is not None else [])
            b.op("FULLY_CONNECTED", op_in, [out_tensor(n)], fused_activation_function="NONE")
            continue
        if base in ACTS and ins and ins[0].name in b.of:
            t = b.of[ins[0].name]
            pi = b.producer.get(t)
            if pi is not None and b.ops[pi].op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") \
                    and b.users.get(ins[0].name, 0) == 1:
                b.ops[pi].attrs["fused_activation_function"] = ACTS[base]
                b.of[n.name] = t
                continue
            b.op(ACTS[base], [t], [out_tensor(n)])
            continue
        if base in ("matmul", "bmm", "mm"):
            b.op("BATCH_MATMUL", [src(a) for a in ins[:2]], [out_tensor(n)], adj_x=False, adj_y=False)
            continue
        if base in ("scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu"):
            q, k, v = ins[:3]
            qs, ks = _nhwc(shape_of(q)), _nhwc(shape_of(k))
            sshape = (*qs[:-1], ks[-2]) if len(qs) >= 2 else qs
            dt = dt_of(n)
            s = b.tensor(n.name + "/scores", sshape, dt)
            pr = b.tensor(n.name + "/probs", sshape, dt)
            b.op("BATCH_MATMUL", [src(q), src(k)], [s], adj_x=False, adj_y=True)
            b.op("SOFTMAX", [s], [pr], beta=1.0)
            b.op("BATCH_MATMUL", [pr, src(v)], [out_tensor(n)], adj_x=False, adj_y=False)
            continue
        kind = ELEMENTWISE.get(base) or POOLS.get(base) or MOVES.get(base)
        if kind is None:
            unknown.add(target)
            kind = "ATEN:" + base
        op_in = [src(a) for a in ins if a.name in b.of or a.name in params]
        val = n.meta.get("val")
        if isinstance(val, (tuple, list)):     # multi-output ops (split, native_layer_norm): first output only
            v0 = val[0]
            i = b.tensor(n.name, _nhwc(tuple(v0.shape)), _dtype_name(v0.dtype))
            b.of[n.name] = i
            b.op(kind, op_in, [i])
            continue
        b.op(kind, op_in, [out_tensor(n)])
    used = {i for o in b.ops for i in o.inputs} | set(graph_outputs)
    keep = [t for t in b.tensors if t.index in used or any(t.index in o.outputs for o in b.ops)
            or t.index in graph_inputs]
    remap = {t.index: j for j, t in enumerate(keep)}
    for j, t in enumerate(keep):
        t.index = j
    ops = [Op(k, o.op, [remap[i] for i in o.inputs], [remap[i] for i in o.outputs], o.attrs)
           for k, o in enumerate(b.ops)]
    g = Graph(name, keep, ops, [remap[i] for i in graph_inputs if i in remap],
              [remap[i] for i in graph_outputs if i in remap])
    g.model_bytes = g.weight_bytes
    g.source = "torch.export" + (f" (ops costed as data movement: {', '.join(sorted(unknown))})" if unknown else "")
    return g


