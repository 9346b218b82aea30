"""Tiny end-to-end federated runs (a 2-layer random encoder on a keyword corpus), faults, and one quick MiniLM
run (slow)."""

import json

import numpy as np
import pytest

from edgelearn.fl.config import run_config
from fl_tiny import tiny_toml

FWD = 'name = "fwdllm"\nlr = 1.0\nK = 16\nbatch = 32\nmin_K = 4\nmax_K = 32\ncandidate_ratio = 2.0'
AVG = 'name = "fedavg"\nlr = 0.05\nbatch = 16\nlocal_steps = 2'


def _run(tmp_path, text, name="c"):
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return run_config(p, json_path=tmp_path / f"{name}.jsonl")


def test_fedavg_and_fwdllm_learn_on_a_tiny_model(tmp_path, corpus):
    avg = _run(tmp_path, tiny_toml(corpus, AVG, rounds=12), "avg")["variants"]["fedavg"]
    fwd = _run(tmp_path, tiny_toml(corpus, FWD, rounds=24), "fwd")["variants"]["fwdllm"]
    assert avg["accuracy_final"] > avg["accuracy_initial"] + 0.25
    assert fwd["accuracy_best"] > fwd["accuracy_initial"] + 0.15
    assert fwd["bytes_up_per_client_round"] < 0.1 * avg["bytes_up_per_client_round"] + 1000


def test_faults_run_completes_rejects_and_counts(tmp_path, corpus):
    clean = _run(tmp_path, tiny_toml(corpus, AVG, rounds=12), "clean")["variants"]["fedavg"]
    w = "\n[wrappers]\ndropout = 0.3\nfaults = 0.05\nreject = true\n"
    faulty = _run(tmp_path, tiny_toml(corpus, AVG, rounds=12, extra=w, per_round=10), "faulty")["variants"]["fedavg"]
    lines = [json.loads(x) for x in (tmp_path / "faulty.jsonl").read_text().splitlines()]
    injected = lines[-2]["faults_injected_total"]
    assert faulty["rounds"] == 12 and injected > 0
    assert faulty["rejected_total"] == injected
    assert 0.15 < faulty["dropped_total"] / (12 * 10) < 0.45
    assert faulty["accuracy_final"] > clean["accuracy_final"] - 0.1


def test_fwdllm_variance_control_and_full_uplink(tmp_path, corpus):
    vc = 'name = "fwdllm"\nlr = 1.0\nK = 4\nbatch = 32\nmin_K = 4\nmax_K = 16\nvar_threshold = 1.0'
    _run(tmp_path, tiny_toml(corpus, vc, rounds=2), "vc")
    lines = [json.loads(x) for x in (tmp_path / "vc.jsonl").read_text().splitlines() if '"round": 0' not in x]
    assert any(x.get("var_iters", 0) > 0 for x in lines if not x.get("summary"))
    full = _run(tmp_path, tiny_toml(corpus, FWD + '\nuplink = "full"', rounds=2), "full")["variants"]["fwdllm"]
    seed = _run(tmp_path, tiny_toml(corpus, FWD, rounds=2), "seed")["variants"]["fwdllm"]
    assert seed["bytes_up_total"] < full["bytes_up_total"]


@pytest.mark.slow
def test_quick_minilm_federated_run(tmp_path, shared):
    """FwdLLM and FedAvg on MiniLM + LoRA (last layer) over 20 AG News clients, a few rounds: both run end to end
    on the real model; FedAvg learns within 4 rounds (FwdLLM needs far more rounds: see configs/fl_agnews.toml)."""
    text = f"""
[run]
seed = 0
rounds = 4
clients_per_round = 4
eval_every = 2
[data]
path = "{shared / 'data' / 'ag_news' / 'ag_news_test.csv'}"
label = "label"
text = ["title", "description"]
test_size = 200
train_size = 800
max_len = 24
[partition]
kind = "dirichlet"
alpha = 1.0
num_clients = 20
[model]
kind = "minilm"
lora_layers = [5]
[strategy]
name = "fwdllm"
lr = 0.1
K = 4
min_K = 4
max_K = 8
batch = 8
[variants.fwdllm]
[variants.fedavg]
strategy = {{ name = "fedavg", lr = 0.01, local_steps = 2, batch = 8 }}
"""
    v = _run(tmp_path, text, "minilm")["variants"]
    s, a = v["fwdllm"], v["fedavg"]
    assert s["rounds"] == a["rounds"] == 4 and np.isfinite(s["accuracy_final"])
    assert s["bytes_up_per_client_round"] < 0.01 * a["bytes_up_per_client_round"]
    assert a["accuracy_final"] > a["accuracy_initial"] + 0.1
