"""Flower deployment (edgelearn.fl.flower): short federations through Flower's simulation runtime end with the
in-process engine's global model, bit for bit. One simulation (one Ray start) runs all of them."""

import importlib
import sys

import numpy as np
import pytest

from fl_tiny import tiny_toml

FWD = ('name = "fwdllm"\nlr = 1.0\nK_head = 32\nhead_lr = 2.0\nK = 8\nbatch = 16\ncandidate_ratio = 2.0\n'
       'min_K = 4\nmax_K = 16\n'
       'var_threshold = 5.0\n\n[wrappers]\ndropout = 0.2\nfaults = 0.2\nreject = true')
AVG = 'name = "fedavg"\nlr = 0.05\nbatch = 16\nlocal_steps = 2'
NOOP = """
[run]
seed = 1
rounds = 3
clients_per_round = 10
eval_every = 1000

[model]
kind = "vector"
n = 2560

[partition]
num_clients = 100

[strategy]
name = "noop"

[wrappers]
reject = true
"""


def _in_process(path):
    from edgelearn.fl.config import build_engine, build_task, load_config

    v = load_config(path).variants[0]
    eng = build_engine(v.cfg, build_task(v.cfg, path.parent))
    eng.run()
    return eng.vec, eng


@pytest.fixture(scope="module")
def federations(corpus, tmp_path_factory):
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from edgelearn.fl.flower import make_client_app, run_on_grid

    d = tmp_path_factory.mktemp("flower")
    paths = {"noop": d / "noop.toml", "fwdllm": d / "fwd.toml", "fedavg": d / "avg.toml"}
    paths["noop"].write_text(NOOP)
    paths["fwdllm"].write_text(tiny_toml(corpus, FWD, rounds=3))
    paths["fedavg"].write_text(tiny_toml(corpus, AVG, rounds=2))
    stranger = d / "stranger.toml"  # a config the SuperNodes were not given
    stranger.write_text(NOOP.replace("seed = 1", "seed = 2"))
    out = {}
    app = ServerApp()

    @app.main()
    def main(grid, context):
        for name, p in paths.items():
            out[name] = run_on_grid(grid, p)
        try:
            run_on_grid(grid, stranger)
        except RuntimeError as e:
            out["stranger"] = str(e)

    run_simulation(app, make_client_app([str(p) for p in paths.values()]), num_supernodes=2,
                   backend_config={"client_resources": {"num_cpus": 1}})
    return paths, out


@pytest.mark.parametrize("name", ["noop", "fwdllm", "fedavg"])
def test_flower_simulation_equals_in_process_engine(federations, name):
    paths, out = federations
    assert name in out, "the ServerApp did not finish this federation"
    eng, summary = out[name]
    vec, ref = _in_process(paths[name])
    assert np.array_equal(eng.vec, vec)  # bit-exact: arrays travel as .npy, clients are keyed by id
    s = ref.summary()
    for k in ("rounds", "client_updates", "dropped_total", "rejected_total", "faults_injected_total",
              "bytes_up_total", "bytes_down_total", "model_sha1"):
        assert summary[k] == s[k], k
    assert summary["sim_time_s"] == pytest.approx(s["sim_time_s"], rel=1e-12)
    assert eng.transport.messages >= summary["client_updates"]
    if name == "fwdllm":  # the wrappers ran where they belong: faults on clients, rejection on the server
        assert summary["faults_injected_total"] >= 1 and summary["dropped_total"] >= 1


def test_a_client_with_another_config_fails_the_run_with_a_clear_error(federations):
    _, out = federations
    msg = out.get("stranger", "")
    assert msg.startswith("flower: the ClientApp failed for client ") and "\n" not in msg, msg
    assert "config: the server's config differs from this SuperNode's" in msg, msg


def test_update_encoding_round_trips():
    pytest.importorskip("flwr")
    from edgelearn.fl import Update
    from edgelearn.fl.flower import _records, _tree, decode_update, encode_update

    up = Update(7, 12, {"seeds": np.array([1, 2**63 + 5], np.uint64), "g": np.array([0.5, np.nan], np.float32),
                        "s2": np.float64(0.25)}, 28, 400, 1e9, 1234, {"loss": 0.5, "K": 2, "faulty": True})
    cid, back = decode_update(encode_update(up, 7))
    assert cid == 7 and back.payload["seeds"].dtype == np.uint64
    assert np.array_equal(back.payload["seeds"], up.payload["seeds"])
    assert np.array_equal(back.payload["g"], up.payload["g"], equal_nan=True) and back.payload["s2"] == 0.25
    assert back.metrics == up.metrics and (back.bytes_up, back.macs, back.mem_bytes) == (28, 1e9, 1234)
    assert decode_update(encode_update(None, 3)) == (3, None)
    state = {"inner": {"inner": {"K": 8, "prev_grad": None}, "own": {}}, "own": {"rejected_total": 3},
             "g": np.arange(3, dtype=np.float32)}
    back = _tree(*_records(state))
    assert back["inner"] == state["inner"] and back["own"] == state["own"]
    assert np.array_equal(back["g"], state["g"])


def test_without_flower_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "edgelearn.fl.flower", raising=False)
    monkeypatch.setitem(sys.modules, "flwr.app", None)  # as if flwr were not installed
    with pytest.raises(ImportError, match=r"pip install 'edgelearn\[flower\]'"):
        importlib.import_module("edgelearn.fl.flower")
    import edgelearn.fl  # the rest of the federated engine does not need Flower

    assert edgelearn.fl.Engine is not None
