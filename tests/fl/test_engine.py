"""Engine: sampling, device clock, memory feasibility, determinism across threads, resume equivalence."""

import numpy as np
import pytest

from edgelearn.data.partition import Partition
from edgelearn.fl import Device, DevicePool, Engine
from edgelearn.fl.config import build_engine
from edgelearn.fl.strategies import FedAvg, FwdLLM, NoOp
from edgelearn.fl.task import VectorTask
from fl_tiny import tiny_config

FWD = 'name = "fwdllm"\nlr = 1.0\nK = 8\nbatch = 16\ncandidate_ratio = 2.0\nmin_K = 4\nmax_K = 16\nvar_threshold = 5.0'
AVG = 'name = "fedavg"\nlr = 0.05\nbatch = 16\nlocal_steps = 2'


def _empty(pop):
    return Partition(np.zeros(0, np.int64), np.zeros(pop + 1, np.int64))


def test_sampling_without_replacement_deterministic_and_spread():
    eng = Engine(VectorTask(8), NoOp(), _empty(100_000), DevicePool(), seed=5, rounds=1, clients_per_round=1000)
    a = eng.sample(1)
    assert len(np.unique(a)) == 1000 and a.min() >= 0 and a.max() < 100_000
    assert np.array_equal(a, eng.sample(1)) and not np.array_equal(a, eng.sample(2))
    small = Engine(VectorTask(8), NoOp(), _empty(20), DevicePool(), seed=0, rounds=1, clients_per_round=5)
    hits = np.concatenate([small.sample(r) for r in range(1, 401)])
    assert np.bincount(hits, minlength=20).min() > 60  # every client is sampled about 100 times


def test_more_clients_per_round_than_clients_is_refused():
    with pytest.raises(ValueError, match="clients_per_round"):
        Engine(VectorTask(8), NoOp(), _empty(10), DevicePool(), rounds=1, clients_per_round=11)


def test_device_clock_is_the_slowest_clients_compute_plus_communication():
    fast = {"name": "fast", "share": 0.5, "speed": 1.0, "mem_mb": 64, "up_mbps": 8.0, "down_mbps": 80.0}
    slow = {"name": "slow", "share": 0.5, "speed": 0.1, "mem_mb": 64, "up_mbps": 1.0, "down_mbps": 8.0}
    pool = DevicePool([fast, slow])
    d = pool.devices[1]
    assert d.macs_per_s == pytest.approx(pool.devices[0].macs_per_s / 10)
    assert d.comm_s(1e6, 1e6) == pytest.approx(8.0 + 1.0)
    n = 25_000  # 100 KB up and down per client, no compute
    eng = Engine(VectorTask(n), NoOp(), _empty(50), pool, seed=0, rounds=3, clients_per_round=10)
    s = eng.run()
    per_round = []
    for r in range(1, 4):
        devs = [pool.device(int(c)) for c in eng.sample(r)]
        per_round.append(max(dv.comm_s(4 * n, 4 * n) for dv in devs))
    assert s["sim_time_s"] == pytest.approx(sum(per_round))
    assert per_round[0] == pytest.approx(8 * 4 * n / 1e6 + 8 * 4 * n / 8e6)  # a slow client was sampled


@pytest.fixture(scope="module")
def tiny(corpus, tmp_path_factory):
    return tiny_config(corpus, tmp_path_factory.mktemp("cfg"), FWD, rounds=3)


@pytest.fixture(scope="module")
def tiny_cfg(tiny):
    return tiny[0]


@pytest.fixture(scope="module")
def tiny_task(tiny):
    return tiny[1]


def test_memory_feasibility_backprop_vs_perturbed_inference(tiny_task):
    fwd, avg = FwdLLM(batch=16, K=8, min_K=4), FedAvg(batch=16)
    inf, bp = tiny_task.mem_inference(16, fwd.chunk_streams), tiny_task.mem_backprop(16, "adam")
    assert inf < bp
    mid = Device("mid", 1e9, (inf + bp) // 2, 1e6, 1e6)
    assert fwd.feasible(tiny_task, mid) and not avg.feasible(tiny_task, mid)
    tiers = [{"name": "big", "share": 0.5, "speed": 1.0, "mem_mb": 2 * bp / 2**20, "up_mbps": 10, "down_mbps": 10},
             {"name": "small", "share": 0.5, "speed": 0.5, "mem_mb": (inf + bp) / 2 / 2**20, "up_mbps": 10,
              "down_mbps": 10}]
    cfg = dict(tiny_cfg_dict(tiny_task))
    runs = {}
    for name, strat in (("fwdllm", FWD), ("fedavg", AVG)):
        c = {**cfg, "strategy": _strategy_dict(strat), "devices": {"tiers": tiers}}
        tiny_task.set_vector(np.zeros(tiny_task.n, np.float32) + tiny_task.get_vector())
        runs[name] = build_engine(c, tiny_task).run()
    assert runs["fwdllm"]["infeasible_total"] == 0
    assert runs["fedavg"]["infeasible_total"] > 0
    assert runs["fedavg"]["client_updates"] + runs["fedavg"]["infeasible_total"] + runs["fedavg"]["empty_total"] \
        == 3 * 5


def tiny_cfg_dict(task):
    return {"run": {"seed": 3, "rounds": 3, "clients_per_round": 5, "eval_every": 2},
            "partition": {"kind": "dirichlet", "alpha": 1.0, "num_clients": 20}}


def _strategy_dict(text):
    import tomllib

    return tomllib.loads(text)


def _run(tiny_cfg, tiny_task, threads=None, **kw):
    import torch

    init = kw.pop("init")
    tiny_task.set_vector(init)
    n = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        eng = build_engine(tiny_cfg.variants[0].cfg, tiny_task, **kw)
        return eng, eng.run(resume=kw.get("checkpoint_path") is not None and kw.pop("resume", False))
    finally:
        torch.set_num_threads(n)


def test_same_seed_same_model_bit_for_bit_whatever_the_threads(tiny_cfg, tiny_task):
    init = tiny_task.get_vector()
    e1, s1 = _run(tiny_cfg, tiny_task, threads=1, init=init)
    e2, s2 = _run(tiny_cfg, tiny_task, threads=2, init=init)
    assert s1["model_sha1"] == s2["model_sha1"] and np.array_equal(e1.vec, e2.vec)
    assert [h.get("accuracy") for h in e1.history] == [h.get("accuracy") for h in e2.history]
    assert not np.array_equal(e1.vec, init)
    tiny_task.set_vector(init)


def test_resume_gives_exactly_the_uninterrupted_model(tiny_cfg, tiny_task, tmp_path):
    init = tiny_task.get_vector()
    cfg = {**tiny_cfg.variants[0].cfg, "run": {**tiny_cfg.variants[0].cfg["run"], "checkpoint_every": 1}}
    tiny_task.set_vector(init)
    full = build_engine(cfg, tiny_task).run()
    ck = tmp_path / "run.ckpt"
    tiny_task.set_vector(init)
    build_engine(cfg, tiny_task, checkpoint_path=ck).run(stop_after=2)  # "killed" after round 2's checkpoint
    tiny_task.set_vector(np.full(tiny_task.n, 7.0, np.float32))  # the process's memory is gone
    eng = build_engine(cfg, tiny_task, checkpoint_path=ck)
    resumed = eng.run(resume=True)
    assert resumed["model_sha1"] == full["model_sha1"]
    assert [h["round"] for h in eng.history] == [0, 1, 2, 3]
    assert resumed["sim_time_s"] == pytest.approx(full["sim_time_s"])
    tiny_task.set_vector(init)


def test_fedavg_backprop_is_thread_invariant_too(tiny_cfg, tiny_task):
    import torch

    init = tiny_task.get_vector()
    cfg = {**tiny_cfg.variants[0].cfg, "strategy": _strategy_dict(AVG),
           "run": {**tiny_cfg.variants[0].cfg["run"], "rounds": 2}}
    shas = []
    n = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        tiny_task.set_vector(init)
        shas.append(build_engine(cfg, tiny_task).run()["model_sha1"])
    torch.set_num_threads(n)
    tiny_task.set_vector(init)
    assert shas[0] == shas[1]


def test_fwdllm_forward_mode_runs(tiny_cfg, tiny_task):
    init = tiny_task.get_vector()
    cfg = {**tiny_cfg.variants[0].cfg, "strategy": {**_strategy_dict(FWD), "mode": "forward"},
           "run": {**tiny_cfg.variants[0].cfg["run"], "rounds": 1}}
    tiny_task.set_vector(init)
    eng = build_engine(cfg, tiny_task)
    eng.run()
    assert np.all(np.isfinite(eng.vec)) and not np.array_equal(eng.vec, init)
    tiny_task.set_vector(init)
