"""The .tflite importer reads the five MLPerf Tiny models into the graph IR with the right facts."""

from __future__ import annotations

import pytest

from firmware_sim.importers import load


def test_kws_graph_facts(model_paths, schema):
    g = load(model_paths["kws"])
    assert g.model_bytes == 53936
    assert [o.op for o in g.ops].count("DEPTHWISE_CONV_2D") == 4
    x = g.tensors[g.inputs[0]]
    assert x.shape == (1, 49, 10, 1) and x.dtype == "int8" and x.nbytes == 490 and not x.constant
    conv = g.ops[0]
    assert conv.op == "CONV_2D"
    assert conv.attrs["stride_w"] == 2 and conv.attrs["padding"] == "SAME"
    assert conv.attrs["fused_activation_function"] == "RELU"
    w = g.tensors[conv.inputs[1]]
    assert w.constant and w.quant.per_channel and len(w.quant.scale) == w.shape[0]
    dw = g.ops[1]
    assert dw.attrs["depth_multiplier"] == 1 and dw.attrs["dilation_h_factor"] == 1


@pytest.mark.parametrize("name, n_ops, weight_bytes", [
    ("kws", 13, 24376), ("vww", 31, 219072), ("ic", 16, 78752), ("ad", 10, 270880), ("str_ww", 11, 49420)])
def test_all_models(model_paths, schema, name, n_ops, weight_bytes):
    g = load(model_paths[name])
    assert len(g.ops) == n_ops
    assert g.weight_bytes == weight_bytes
    assert g.weight_bytes < g.model_bytes
    for op in g.ops:                        # every op input/output is a valid tensor
        for i in op.inputs + op.outputs:
            assert -1 <= i < len(g.tensors)


def test_not_a_model(tmp_path, schema):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a .tflite model"):
        load(p)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="unsupported model file"):
        load(tmp_path / "model.onnx")
