"""Targets load; the cost model reproduces its stored calibration; estimates, placement and the CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_sim.targets import list_targets, load_target

ISSUE_TARGETS = {"stm32h7a3", "stm32h743", "stm32h747", "stm32f746", "stm32l4r5", "stm32u575", "nrf52840", "esp32s3",
                 "corstone300-u55-128", "corstone300-u55-256", "phone-soc"}


def test_all_issue_targets_present_with_sources():
    ts = {t.name: t for t in list_targets()}
    assert ISSUE_TARGETS <= set(ts)
    for t in ts.values():
        text = Path(t.path).read_text()
        assert "Source" in text, f"{t.name}: profile cites no source"
        assert t.flash is not None and t.srams
    assert load_target("stm32h747").clock_mhz == 400
    with pytest.raises(ValueError, match="unknown target"):
        load_target("stm32zz")


def test_bad_profile(tmp_path):
    p = tmp_path / "b.toml"
    p.write_text('name = "b"\ncore = "cortex-m4"\n')
    with pytest.raises(ValueError, match="lacks the field"):
        load_target(p)
    p.write_text("name = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_target(p)


def test_calibration_reproduces_constants_and_errors(shared, schema):
    from firmware_sim.cost import calibrate as C

    pts = C.load_points(shared)
    assert len(pts) == 12
    fitted, stored = C.fit(pts), C.stored_theta()
    for k in fitted:
        assert fitted[k] == pytest.approx(stored[k], rel=5e-3), k
    err = C.errors(pts, stored)
    # the issue's goal: every point within 15%, in-sample and leave-one-model-out (calibrated on the other three)
    assert max(abs(v) for v in err["in_sample"].values()) < 15
    assert max(abs(v) for v in err["lomo"].values()) < 15


def test_estimate_contract_and_placement(model_paths, schema, tmp_path):
    from firmware_sim.estimate import estimate
    from firmware_sim.report import write_json

    e = estimate(model_paths["vww"], "stm32h7a3")
    write_json(e, tmp_path / "e.json")
    j = json.loads((tmp_path / "e.json").read_text())
    for k in ("model", "target", "stack", "clock_mhz", "latency_ms", "energy_uj", "arena_bytes", "flash_bytes",
              "fits", "placement", "layers"):
        assert k in j
    assert set(j["layers"][0]) >= {"index", "op", "macs", "bytes", "cycles", "bound"}
    assert j["fits"] and j["placement"]["arena_bank"] == "DTCM"
    assert e.energy_uj == pytest.approx(e.latency_ms * 126.9)
    assert sum(c.cycles for c in e.layers) / 280e3 == pytest.approx(e.latency_ms)
    # a board too small: named overflow
    small = tmp_path / "tiny.toml"
    small.write_text('name="tiny"\ncore="cortex-m4"\nclock_mhz=48\nactive_power_mw=5\n'
                     '[[memory]]\nname="RAM"\nkind="sram"\nsize_kb=32\n'
                     '[[memory]]\nname="FLASH"\nkind="flash"\nsize_kb=128\n')
    e2 = estimate(model_paths["vww"], str(small))
    assert not e2.fits
    assert any("arena" in o and "RAM" in o for o in e2.placement.overflows)
    assert any("flash" in o for o in e2.placement.overflows)


def test_stacks_order_and_measured_override(model_paths, schema):
    from firmware_sim.estimate import estimate

    ms = {s: estimate(model_paths["kws"], "stm32h7a3", s).latency_ms
          for s in ("xcubeai", "tflm-cmsis-nn", "tflm-reference")}
    assert ms["xcubeai"] < ms["tflm-cmsis-nn"] < ms["tflm-reference"]
    e = estimate(model_paths["kws"], "stm32h7a3", measured={0: 1.0})
    assert e.layers[0].cycles == 1.0 and e.layers[0].source == "measured"
    with pytest.raises(ValueError, match="unknown stack"):
        estimate(model_paths["kws"], "stm32h7a3", "tvm")


def test_cli(model_paths, schema, tmp_path, capsys):
    from edgelearn.cli import main

    assert main(["targets"]) == 0
    assert "stm32h7a3" in capsys.readouterr().out
    out = tmp_path / "k.json"
    png = tmp_path / "k.png"
    args = ["estimate", str(model_paths["kws"]), "--target", "stm32u575", "--json", str(out)]
    pytest.importorskip("matplotlib")
    assert main(args + ["--plot", str(png)]) == 0
    assert json.loads(out.read_text())["target"] == "stm32u575" and png.stat().st_size > 1000
    assert main(["estimate", str(tmp_path / "none.tflite"), "--target", "stm32u575"]) == 1
    assert "no such model file" in capsys.readouterr().err


def test_lane_macs_charge_idle_simd_lanes():
    from firmware_sim.cost.cortex_m import core_params, lane_macs
    from firmware_sim.cost.ops import OpWork

    def conv(cin):
        return OpWork(0, "CONV_2D", "conv", 100 * 8 * 9 * cin, 0, 0, 800, 8, 100, cin, 9)

    assert lane_macs(conv(1), 4) == 4 * conv(1).macs          # Cin = 1: 3 of 4 lanes idle
    assert lane_macs(conv(3), 4) == conv(3).macs * 4 / 3
    assert lane_macs(conv(16), 4) == conv(16).macs
    assert core_params("cortex-m4", "tflm-reference").lanes == 1
    assert core_params("cortex-m7").lanes == 4
