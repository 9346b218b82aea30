"""Per-op work: cost class, MACs, and bytes of weights and activations each op touches.

Cost classes: conv1x1, conv (k x k), depthwise, fc, elementwise, pool (pooling, softmax, other reductions)
and move (reshape, quantize, concatenation and other data movement).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from firmware_sim.graph import Graph, Op

CLASSES = ("conv1x1", "conv", "depthwise", "fc", "elementwise", "pool", "move")

_ELEMENTWISE = {"ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "LEAKY_RELU",
                "LOGISTIC", "TANH", "HARD_SWISH", "GELU", "PRELU", "ABS", "NEG", "RSQRT", "SQRT", "EXP", "LOG"}
_POOL = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "SOFTMAX", "LOG_SOFTMAX", "MEAN", "SUM", "REDUCE_MAX",
         "REDUCE_MIN", "REDUCE_PROD", "L2_NORMALIZATION", "ARG_MAX", "ARG_MIN", "LAYER_NORM"}


@dataclass
class OpWork:
    index: int
    op: str
    cls: str
    macs: int              # multiply-accumulates (for pool/elementwise: element operations)
    weight_bytes: int      # constant operand bytes read (weights, biases)
    act_in_bytes: int      # non-constant input bytes read
    act_out_bytes: int     # output bytes written
    out_channels: int = 1
    out_pixels: int = 1    # output rows x columns (1 for fc)
    in_channels: int = 1   # input channels of conv/depthwise/fc (the GEMM inner-loop length per kernel tap)
    taps: int = 1          # kernel positions kh x kw (1 for 1x1 conv and fc)
    out_h: int = 1         # output rows and columns (NHWC outputs; 1 otherwise)
    out_w: int = 1
    weight_coded_bytes: float = 0.0   # weights after lossless coding (entropy of the int8 values, Vela-style
                                      # per-channel bias/scale words); = weight_bytes when the data is unknown

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_in_bytes + self.act_out_bytes


BIAS_SCALE_BYTES = 10   # per output channel in an Ethos-U weight stream: 40-bit bias + 32-bit scale + shift


def _coded_bytes(graph: Graph, op: Op, out_channels: int) -> float:
    """Weights of a conv/depthwise/fc op as a lossless codec (Vela's) stores them: ~ entropy bits per value."""
    w = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if w is None or not w.constant:
        return 0.0
    if w.entropy_bits is None:
        return float(w.nbytes) + BIAS_SCALE_BYTES * out_channels
    return w.numel * w.entropy_bits / 8 + BIAS_SCALE_BYTES * out_channels


def op_work(graph: Graph, op: Op) -> OpWork:
    ins = [t for t in graph.op_inputs(op) if t is not None]
    outs = graph.op_outputs(op)
    wb = sum(t.nbytes for t in ins if t.constant)
    ab = sum(t.nbytes for t in ins if not t.constant)
    ob = sum(t.nbytes for t in outs)
    out = outs[0] if outs else None
    oshape = out.shape if out is not None else ()
    out_numel = out.numel if out is not None else 0
    oh, ow = (oshape[1], oshape[2]) if len(oshape) == 4 else (1, 1)
    k = op.op
    if k in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D") and len(op.inputs) > 1:
        w = graph.tensor(op.inputs[1])
        wshape = w.shape if w is not None else ()
        co = oshape[-1] if oshape else 1
        pix = prod(oshape[1:-1]) if len(oshape) >= 3 else 1
        if k == "DEPTHWISE_CONV_2D":
            kk = prod(wshape[1:3]) if len(wshape) == 4 else 1
            cin = graph.tensor(op.inputs[0]).shape[-1] if graph.tensor(op.inputs[0]) is not None else co
            return OpWork(op.index, k, "depthwise", out_numel * kk, wb, ab, ob, co, pix, cin, kk, oh, ow,
                          _coded_bytes(graph, op, co))
        # weights (out, kh, kw, in)
        kk = prod(wshape[1:3]) if len(wshape) == 4 else 1
        cin = wshape[-1] if wshape else 1
        cls = "conv1x1" if kk == 1 else "conv"
        return OpWork(op.index, k, cls, out_numel * kk * cin, wb, ab, ob, co, pix, cin, kk, oh, ow,
                      _coded_bytes(graph, op, co))
    if k in ("FULLY_CONNECTED", "BATCH_MATMUL") and len(op.inputs) > 1:
        w = graph.tensor(op.inputs[1])
        # FC weights are (out, in); BATCH_MATMUL's right operand is (..., K, N), or (..., N, K) with adj_y
        adj = k == "FULLY_CONNECTED" or op.attrs.get("adj_y", False)
        cin = (w.shape[-1] if adj else w.shape[-2]) if w is not None and len(w.shape) >= (1 if adj else 2) else 1
        co = oshape[-1] if oshape else 1
        return OpWork(op.index, k, "fc", out_numel * cin, wb, ab, ob, co, 1, cin, 1, 1, 1, _coded_bytes(graph, op, co))
    if k in _ELEMENTWISE:
        return OpWork(op.index, k, "elementwise", out_numel, wb, ab, ob, out_h=oh, out_w=ow, weight_coded_bytes=wb)
    if k in _POOL:
        n_in = sum(t.numel for t in ins if not t.constant)
        return OpWork(op.index, k, "pool", max(n_in, out_numel), wb, ab, ob, out_h=oh, out_w=ow,
                      weight_coded_bytes=wb)
    return OpWork(op.index, k, "move", out_numel, wb, ab, ob, out_h=oh, out_w=ow, weight_coded_bytes=wb)


def graph_work(graph: Graph) -> list[OpWork]:
    return [op_work(graph, op) for op in graph.ops]
