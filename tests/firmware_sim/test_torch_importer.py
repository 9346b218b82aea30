"""torch importer: a small CNN and a transformer block traced by torch.export into the Graph IR; estimate() on them."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        y = torch.relu(self.dw(x))
        x = x + y
        x = nn.functional.max_pool2d(torch.relu(self.pw(x)), 2)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def test_small_cnn_graph():
    from firmware_sim.cost.ops import graph_work
    from firmware_sim.importers import load

    g = load(SmallCNN(), example_inputs=(torch.randn(1, 3, 32, 32),))
    kinds = [o.op for o in g.ops]
    assert kinds == ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                     "FULLY_CONNECTED"]
    assert [o.attrs.get("fused_activation_function") for o in g.ops if o.op.endswith("CONV_2D")] == ["RELU"] * 3
    work = {w.op + str(i): w for i, w in enumerate(graph_work(g))}
    conv, dw, pw, fc = work["CONV_2D0"], work["DEPTHWISE_CONV_2D1"], work["CONV_2D3"], work["FULLY_CONNECTED6"]
    assert (conv.cls, conv.macs, conv.out_h, conv.out_w, conv.in_channels) == ("conv", 16 * 16 * 16 * 27, 16, 16, 3)
    assert (dw.cls, dw.macs) == ("depthwise", 16 * 16 * 16 * 9)
    assert (pw.cls, pw.macs) == ("conv1x1", 16 * 16 * 32 * 16)
    assert (fc.cls, fc.macs) == ("fc", 320)
    # int8 deployment: activations and weights int8, biases int32; NHWC shapes as a .tflite
    assert g.tensor(g.inputs[0]).shape == (1, 32, 32, 3) and g.tensor(g.inputs[0]).dtype == "int8"
    w = g.tensor(g.ops[0].inputs[1])
    assert w.shape == (16, 3, 3, 3) and w.constant and w.dtype == "int8" and 0 < w.entropy_bits <= 8
    assert g.tensor(g.ops[0].inputs[2]).dtype == "int32"
    assert g.weight_bytes == (432 + 144 + 512 + 320) + 4 * (16 + 16 + 32 + 10)
    f32 = load(SmallCNN(), example_inputs=(torch.randn(1, 3, 32, 32),), dtype=None)
    assert f32.tensor(f32.inputs[0]).dtype == "float32"
    assert f32.weight_bytes == 4 * (432 + 144 + 512 + 320 + 16 + 16 + 32 + 10)


def test_estimate_on_torch_module():
    from firmware_sim.estimate import estimate

    m = SmallCNN()
    e = estimate(m, "stm32h7a3", example_inputs=(torch.randn(1, 3, 32, 32),))
    assert e.latency_ms > 0 and e.fits and e.arena_bytes > 16 * 16 * 16
    assert e.calibrated and len(e.layers) == 7
    npu = estimate(m, "corstone300-u55-128", example_inputs=(torch.randn(1, 3, 32, 32),))
    assert 0 < npu.latency_ms < e.latency_ms
    with pytest.raises(ValueError, match="example_inputs"):
        estimate(SmallCNN(), "stm32h7a3")


def test_transformer_block():
    from firmware_sim.cost.ops import graph_work
    from firmware_sim.importers import load

    d, L = 32, 16
    block = nn.TransformerEncoderLayer(d, 4, 64, batch_first=True)
    g = load(block, example_inputs=(torch.randn(1, L, d),))
    kinds = [o.op for o in g.ops]
    assert kinds.count("FULLY_CONNECTED") == 4 and kinds.count("BATCH_MATMUL") == 2
    assert "SOFTMAX" in kinds and kinds.count("LAYER_NORM") == 2
    work = graph_work(g)
    fc = sum(w.macs for w in work if w.op == "FULLY_CONNECTED")
    assert fc == L * (3 * d * d + d * d + 2 * d * 64)
    att = sum(w.macs for w in work if w.op == "BATCH_MATMUL")
    assert att == 2 * L * L * d           # Q K^T and attention x V over 4 heads of d/4
    assert "ATEN:" not in " ".join(kinds)
