"""edgelearn.adapters on a tiny BERT (fast): int8 backbone file (version, sha256, read-only, corruption refused),
int8 modules against their fp32 reference path, forward-gradient training on the int8 kernels, the adapter bank
(switching apps keeps the backbone, adapters of another backbone refused), bad scales and layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgelearn.adapters import (AdapterBank, AdapterError, AdapterSpec, BackboneError, Int8Backbone, QLinear,
                                export_backbone, read_backbone)
from edgelearn.adapters.backbone import MAGIC
from edgelearn.adapters.train import Prefixes, TrainConfig, evaluate, train_backprop
from edgelearn.data.text import Encoded
from edgelearn.kernels import quant
from edgelearn.zo import Streams, ZOTrainer, perturbing
from edgelearn.zo.bert import BertConfig, BertEncoder

CFG = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=32)


def _batch(n=12, T=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, CFG.vocab_size, (n, T), generator=g)
    lengths = torch.randint(3, T + 1, (n,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    return ids * mask, mask


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)
    enc = BertEncoder(CFG).eval()
    ids, mask = _batch(16)
    sha = export_backbone(enc, ids, mask, d / "tiny.int8", source="test")
    torch.manual_seed(1)
    sha2 = export_backbone(BertEncoder(CFG).eval(), ids, mask, d / "other.int8")
    return d, enc, sha, sha2


def test_backbone_file_roundtrip_readonly_and_close_to_fp32(files):
    d, enc, sha, sha2 = files
    header, tensors = read_backbone(d / "tiny.int8")
    assert header["sha256"] == sha != sha2 and header["version"] == 1
    assert all(not t.flags.writeable for t in tensors.values())
    bb = Int8Backbone(d / "tiny.int8")
    ids, mask = _batch(6, seed=3)
    with torch.inference_mode():
        a, b = enc(ids, mask), bb.encoder(ids, mask)
    m = mask.bool()
    cos = torch.nn.functional.cosine_similarity(a[m], b[m], dim=-1)
    assert float(cos.mean()) > 0.97, float(cos.mean())


@pytest.mark.parametrize("damage", ["payload", "magic", "version", "header", "truncated"])
def test_corrupted_backbone_is_refused_in_one_line(files, tmp_path, damage):
    raw = bytearray((files[0] / "tiny.int8").read_bytes())
    if damage == "payload":
        raw[-100] ^= 0x40
    elif damage == "magic":
        raw[:4] = b"XXXX"
    elif damage == "version":
        raw[4] = 9
    elif damage == "header":
        raw[20] = ord("{")
    else:
        raw = raw[: len(raw) // 2]
    p = tmp_path / "bad.int8"
    p.write_bytes(bytes(raw))
    with pytest.raises(BackboneError) as e:
        Int8Backbone(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_qlinear_int8_path_matches_fp32_reference_path():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(40, 24)
    x = torch.randn(30, 40, generator=g)
    q = QLinear.from_linear(lin, float(x.abs().max()) / 127)
    with torch.no_grad():
        y8 = q(x)
    xr = x.clone().requires_grad_(True)
    yr = q(xr)  # reference path: dequantised weights, fake-quantised input
    torch.testing.assert_close(y8, yr.detach(), rtol=1e-4, atol=1e-4)
    yr.sum().backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scales_and_layout_raise(bad):
    Wq = np.ones((4, 8), np.int8)
    s = np.ones(4, np.float32)
    s[1] = bad
    with pytest.raises(ValueError, match="w_scale"):
        QLinear(quant.qgemm_pack_s8(Wq), s, None, 0.1)
    with pytest.raises(ValueError, match="x_scale"):
        QLinear(quant.qgemm_pack_s8(Wq), np.ones(4, np.float32), None, bad)
    with pytest.raises(TypeError, match="W"):
        QLinear(Wq, np.ones(4, np.float32), None, 0.1)


def test_zo_streams_run_the_int8_kernels_and_train(files, tmp_path):
    d = files[0]
    bank = AdapterBank(Int8Backbone(d / "tiny.int8"), tmp_path)
    model = bank.new_model("a", 3, AdapterSpec(layers=(1, 2), r=4, alpha=8))
    ids, mask = _batch(8, seed=5)
    labels = torch.arange(8) % 3
    # the perturbed forward (streams) agrees with running each stream's perturbed adapter separately: forward
    # mode stream 0 is unperturbed, so it equals the plain forward
    with torch.inference_mode():
        pre = model.prefix(ids, mask)
        L = model.stream_losses(pre, labels, Streams(np.array([1, 2], np.uint64), 1e-3, "forward"))
        plain = torch.nn.functional.cross_entropy(model(ids, mask).double(), labels)
    assert abs(float(L[0]) - float(plain)) < 1e-5
    tr = ZOTrainer(model, lr=1e-2, K=4, mode="forward")
    before = [m.lora_B.clone() for m in model.modules() if hasattr(m, "lora_B")]
    res = tr.step(ids, mask, labels)
    assert np.isfinite(res.loss)
    after = [m.lora_B for m in model.modules() if hasattr(m, "lora_B")]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_bank_switches_apps_keeps_backbone_and_refuses_foreign_adapters(files, tmp_path):
    d = files[0]
    bank = AdapterBank(Int8Backbone(d / "tiny.int8"), tmp_path)
    ids, mask = _batch(8, seed=7)
    enc = Encoded(ids, mask, torch.arange(8) % 2, {})
    spec = AdapterSpec(layers=(2,), r=4, alpha=8)
    outs = {}
    for app, n, method in [("a", 2, "backprop"), ("b", 3, "int8")]:
        model = bank.new_model(app, n, spec, seed=len(app))
        enc.labels = torch.arange(8) % n
        train_backprop(model, Prefixes(model, enc, 4), TrainConfig(steps=3, lr=1e-2), int8_adapters=method == "int8")
        with torch.inference_mode():
            outs[app] = model(ids, mask).clone()
        bank.save(app, list(range(n)), spec)
    layer0 = bank.backbone.encoder.encoder.layer[0].attention.self.query
    for app in ("a", "b", "a"):
        model = bank.activate(app)
        assert model.bert is bank.backbone.encoder  # shared, not reloaded
        assert bank.backbone.encoder.encoder.layer[0].attention.self.query is layer0
        with torch.inference_mode():
            torch.testing.assert_close(model(ids, mask), outs[app])
    assert {a["app"] for a in bank.apps()} == {"a", "b"}
    other = AdapterBank(Int8Backbone(d / "other.int8"), tmp_path)
    with pytest.raises(AdapterError, match="trained for backbone") as e:
        other.activate("a")
    assert "\n" not in str(e.value)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(AdapterError, match="not a readable adapter"):
        bank.activate("junk")


def test_int8_adapter_weights_stay_on_their_grid(files, tmp_path):
    bank = AdapterBank(Int8Backbone(files[0] / "tiny.int8"), tmp_path)
    model = bank.new_model("c", 2, AdapterSpec(layers=(2,), r=4, alpha=8))
    ids, mask = _batch(8, seed=9)
    enc = Encoded(ids, mask, torch.arange(8) % 2, {})
    pres = Prefixes(model, enc, 4)
    acc0 = evaluate(model, pres)
    train_backprop(model, pres, TrainConfig(steps=5, lr=1e-2), int8_adapters=True)
    B = [m.lora_B for m in model.modules() if hasattr(m, "lora_B")][0].detach()
    step = 0.05 / 127
    assert torch.allclose(B / step, torch.round(B / step), atol=1e-3) and float(B.abs().max()) > 0
    assert 0 <= acc0 <= 1


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan")])
def test_backbone_with_bad_scales_is_refused_in_one_line(files, tmp_path, bad):
    from edgelearn.adapters.backbone import write_backbone

    header, tensors = read_backbone(files[0] / "tiny.int8")
    tensors = {k: v.copy() for k, v in tensors.items()}
    key = next(k for k in tensors if k.endswith(".ws"))
    tensors[key][0] = bad
    header = {k: v for k, v in header.items() if k not in ("tensors", "sha256")}
    write_backbone(tmp_path / "bad.int8", tensors, header)  # a valid file (checksum fine) with a bad scale
    with pytest.raises(BackboneError, match="w_scale") as e:
        Int8Backbone(tmp_path / "bad.int8")
    assert "\n" not in str(e.value)


def test_wrong_weight_layout_in_backbone_is_refused(files, tmp_path):
    from edgelearn.adapters.backbone import write_backbone

    header, tensors = read_backbone(files[0] / "tiny.int8")
    tensors = {k: v.copy() for k, v in tensors.items()}
    key = next(k for k in tensors if k.endswith("intermediate.dense.wq"))
    tensors[key] = np.ascontiguousarray(tensors[key].T)  # transposed: [k, n] where [n, k] belongs
    header = {k: v for k, v in header.items() if k not in ("tensors", "sha256")}
    write_backbone(tmp_path / "t.int8", tensors, header)
    with pytest.raises(BackboneError, match="intermediate.dense") as e:
        Int8Backbone(tmp_path / "t.int8")
    assert "\n" not in str(e.value)


def test_backbone_cost_on_phone_and_corstone(files, tmp_path):
    """firmware_sim estimates of the int8 backbone (the traceable mirror has the backbone's own weights)."""
    from edgelearn.adapters.cost import DenseEncoder, backbone_cost
    from edgelearn.cli import main

    d = files[0]
    bb = Int8Backbone(d / "tiny.int8")
    T = 8
    ids = torch.randint(1, CFG.vocab_size, (1, T), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():  # same network as the backbone (dequantised weights, float activations)
        a, b = DenseEncoder(bb)(ids)[0], bb.encoder(ids, torch.ones_like(ids))[0]
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()) > 0.97
    rows = backbone_cost(bb, ("phone-soc", "corstone300-u55-256"), seq_len=T)
    d_, f, L = CFG.hidden_size, CFG.intermediate_size, CFG.num_hidden_layers
    linear_macs = L * T * (4 * d_ * d_ + 2 * d_ * f)
    for r, stack in zip(rows, ("mobile-npu", "vela")):
        assert r["stack"] == stack and r["latency_ms"] > 0 and r["energy_uj"] > 0 and r["arena_bytes"] > 0
        assert linear_macs <= r["macs"] <= 1.2 * linear_macs
        assert r["flash_bytes"] >= L * (4 * d_ * d_ + 2 * d_ * f)  # int8 weights at least
    assert rows[0]["latency_ms"] < rows[1]["latency_ms"]  # a phone NPU outruns an Ethos-U55
    out = tmp_path / "cost.json"
    assert main(["adapters", "cost", str(d / "tiny.int8"), "--target", "phone-soc", "--seq-len", "4",
                 "--json", str(out)]) == 0
    import json

    js = json.loads(out.read_text())
    assert js["estimates"][0]["target"] == "phone-soc" and js["estimates"][0]["seq_len"] == 4
    with pytest.raises(ValueError, match="seq_len"):
        backbone_cost(bb, ("phone-soc",), seq_len=CFG.max_position_embeddings + 1)
