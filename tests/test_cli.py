"""The edgelearn command: usage errors, help, and the bench JSON contract of DESIGN.md."""

from __future__ import annotations

import json
import sys
import types

import pytest

from edgelearn import cli
from edgelearn.bench import Report


def test_help_has_examples(capsys):
    for cmd in (["bench", "--help"], ["finetune", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli.main(cmd)
        assert e.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_bad_usage_exits_2(capsys):
    assert cli.main(["bench", "--family", "no-such-family"]) == 2
    assert "unknown family" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["finetune", "--steps", "0"])
    assert e.value.code == 2


def _fake_bench(claim_value: float):
    mod = types.ModuleType("edgelearn_fake_bench")

    def run(quick: bool) -> Report:
        r = Report("fake")
        r.add(kernel="k", seconds=0.5, quick=quick)
        r.claim("k speedup", claim_value, ">= 2")
        return r

    mod.run = run
    return mod


@pytest.mark.parametrize("value,code", [(3.0, 0), (1.0, 1)])
def test_bench_json_contract(tmp_path, monkeypatch, value, code):
    monkeypatch.setitem(sys.modules, "edgelearn_fake_bench", _fake_bench(value))
    monkeypatch.setattr(cli, "BENCH_FAMILIES", {"fake": ["edgelearn_fake_bench"]})
    out = tmp_path / "b.json"
    assert cli.main(["bench", "--family", "fake", "--quick", "--json", str(out)]) == code
    data = json.loads(out.read_text())
    assert set(data) == {"environment", "results", "claims"}
    assert data["results"][0]["quick"] is True
    assert data["claims"] == [{"name": "k speedup", "value": value, "target": ">= 2", "ok": value >= 2}]
    assert data["environment"]["simd"] in {"avx512", "avx2", "scalar"}


def test_claim_targets():
    from edgelearn.bench import Claim

    assert Claim("a", 1.3, "<= 1.3").ok and not Claim("a", 1.31, "<= 1.3").ok
    assert Claim("b", 5, ">= 5").ok and not Claim("b", 4.9, ">= 5").ok


def test_every_command_group_is_registered():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"bench", "finetune", "estimate", "targets", "fl", "speech", "adapters", "info"} <= set(sub.choices)
