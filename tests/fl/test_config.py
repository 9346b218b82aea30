"""Bad configs stop before any work with a one-line error naming the field; the `fl run` command."""

import json
import time

import pytest

from edgelearn.fl.cli import main
from edgelearn.fl.config import load_config
from fl_tiny import tiny_toml

GOOD = 'name = "fedavg"\nlr = 0.05\nbatch = 16'


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("edit, field", [
    (lambda t: t.replace('name = "fedavg"', 'name = "fedprox"'), "strategy.name"),
    (lambda t: t.replace('text = ["title", "body"]', 'text = ["title", "summary"]'), "data.text"),
    (lambda t: t.replace('label = "label"', 'label = "topic"'), "data.label"),
    (lambda t: t.replace("alpha = 1.0", "alpha = 0.0"), "partition.alpha"),
    (lambda t: t.replace("alpha = 1.0", "alpha = -2.0"), "partition.alpha"),
    (lambda t: t.replace("clients_per_round = 5", "clients_per_round = 21"), "run.clients_per_round"),
    (lambda t: t.replace("batch = 16", "batch = 16\nmomentum = 0.9"), "momentum"),
    (lambda t: t.replace('kind = "dirichlet"', 'kind = "zipf"'), "partition.kind"),
    (lambda t: t.replace('kind = "tiny"', 'kind = "gpt2"'), "model.kind"),
])
def test_bad_config_fails_fast_naming_the_field(tmp_path, corpus, edit, field):
    p = _write(tmp_path, edit(tiny_toml(corpus, GOOD)))
    t = time.perf_counter()
    with pytest.raises(ValueError) as e:
        load_config(p)
    assert field in str(e.value) and "\n" not in str(e.value)
    assert time.perf_counter() - t < 2


def test_missing_data_file(tmp_path, corpus):
    with pytest.raises(ValueError, match="data.path"):
        load_config(_write(tmp_path, tiny_toml(corpus, GOOD).replace(corpus, "/nope/x.csv")))


def test_cli_bad_config_exit_1_one_line(tmp_path, corpus, capsys):
    p = _write(tmp_path, tiny_toml(corpus, GOOD).replace("alpha = 1.0", "alpha = 0"))
    assert main(["fl", "run", str(p)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "partition.alpha" in err[0]


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fl", "run", "--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_cli_run_writes_json_lines_summary_and_plot(tmp_path, corpus, capsys):
    claims = '\n[[claims]]\nname = "learns"\nvalue = "fedavg.accuracy_best - fedavg.accuracy_initial"\ntarget = ">= 0.05"\n'
    p = _write(tmp_path, tiny_toml(corpus, GOOD + "\nlocal_steps = 2", rounds=6) + claims)
    out = tmp_path / "o.jsonl"
    assert main(["fl", "run", str(p), "--json", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    rounds = [x for x in lines if not x.get("summary")]
    assert [r["round"] for r in rounds] == list(range(7))
    for key in ("round", "accuracy", "loss", "sim_time_s", "bytes_up", "bytes_down", "clients", "peak_client_mem_bytes"):
        assert key in rounds[-1]
    s = lines[-1]
    assert s["summary"] is True and s["claims"][0]["ok"] and "fedavg" in s["variants"]
    assert (tmp_path / "o.png").is_file()
