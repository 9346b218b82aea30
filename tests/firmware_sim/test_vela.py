"""Ethos-U55-128/-256 estimates against Arm's Vela compiler run on the same models (goal: total cycles within 15%)."""

from __future__ import annotations

import pytest

from firmware_sim.cost.vela_ref import vela_command

pytestmark = pytest.mark.skipif(vela_command() is None, reason="ethos-u-vela not installed")


@pytest.mark.parametrize("target", ["corstone300-u55-128", "corstone300-u55-256"])
@pytest.mark.parametrize("model", ["ad", "ic", "kws", "vww"])
def test_total_cycles_within_15pct_of_vela(model_paths, schema, model, target):
    from firmware_sim.cost.vela_ref import run_vela
    from firmware_sim.estimate import estimate

    ref = run_vela(model_paths[model], target)
    est = estimate(model_paths[model], target)
    assert est.stack == "vela"
    assert ref.macs == pytest.approx(sum(c.macs for c in est.layers if c.cls in ("conv", "conv1x1", "depthwise",
                                                                               "fc")), rel=0.01)
    assert est.cycles == pytest.approx(ref.total_cycles, rel=0.15), (est.cycles, ref.total_cycles)


def test_coded_weights_near_vela_encoding(model_paths, schema):
    """The entropy estimate of the coded weight stream is within 10% of Vela's encoder on dense-weight models."""
    from firmware_sim.cost.ops import graph_work
    from firmware_sim.cost.vela_ref import run_vela
    from firmware_sim.importers import load

    for m in ("ad", "ic"):
        ref = run_vela(model_paths[m], "corstone300-u55-128")
        coded = sum(w.weight_coded_bytes for w in graph_work(load(model_paths[m])) if w.cls in ("conv", "conv1x1",
                                                                                               "depthwise", "fc"))
        assert coded == pytest.approx(ref.encoded_weight_bytes, rel=0.10), m
