"""Federated engine speed: rounds per second with clients whose work is a no-op on a 100 KB adapter.

Goals (issue #4): >= 100 rounds/s at 10 clients per round, >= 1 round/s at 1,000 clients per round. The engine
does all its per-round work (sampling from the population, devices, contexts, decode, rejection, aggregation in
float64, clock, JSON record) and the clients return a zero delta of 25,600 float32 (100 KB).

Beside it, the same workload through Flower's simulation runtime (edgelearn.fl.flower on Ray, one SuperNode per
client of a round, 1 CPU per ClientApp actor): rounds/s after the first round (which starts the actors), reported,
not claimed. Skipped with a note when flwr is not installed.
"""

from __future__ import annotations

import time

from . import Report

ADAPTER_PARAMS = 25_600  # 100 KB of float32


def engine_rounds_per_s(clients_per_round: int, population: int, rounds: int, seed: int = 0) -> tuple[float, str]:
    """(rounds per wall second, model hash); `last_cpu_rate` keeps rounds per CPU second of this process (the
    engine's cost without other processes' load on a shared machine)."""
    from ..data.partition import Partition
    from ..fl import DevicePool, Engine
    from ..fl.strategies import NoOp, wrap
    from ..fl.task import VectorTask
    import numpy as np

    task = VectorTask(ADAPTER_PARAMS)
    part = Partition(np.zeros(0, np.int64), np.zeros(population + 1, np.int64))
    eng = Engine(task, wrap(NoOp(), reject=True), part, DevicePool(seed=seed), seed=seed, rounds=rounds,
                 clients_per_round=clients_per_round, eval_every=10**9)
    t0, c0 = time.perf_counter(), time.process_time()
    s = eng.run()
    global last_cpu_rate
    last_cpu_rate = rounds / max(1e-9, time.process_time() - c0)
    return rounds / (time.perf_counter() - t0), s["model_sha1"]


last_cpu_rate = float("nan")

NOOP_TOML = """[run]
seed = {seed}
rounds = {rounds}
clients_per_round = {m}
eval_every = 1000000000

[model]
kind = "vector"
n = {n}

[partition]
num_clients = {population}

[strategy]
name = "noop"

[wrappers]
reject = true
"""


def flower_rounds_per_s(clients_per_round: int, population: int, rounds: int, seed: int = 0) -> dict:
    """The engine's no-op workload with its clients on Flower's simulation runtime. Returns rounds per wall second
    over rounds 2.. (round 1 starts the Ray actors), the first round's and the whole run's seconds, the model hash
    and the Flower messages sent."""
    import logging
    import tempfile
    from pathlib import Path

    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from ..fl.flower import make_client_app, run_on_grid

    if rounds < 2:
        raise ValueError(f"rounds: at least 2 (the first starts the actors), got {rounds}")
    out: dict = {}
    lg = logging.getLogger("flwr")
    level = lg.level
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "noop.toml"
        cfg.write_text(NOOP_TOML.format(seed=seed, rounds=rounds, m=clients_per_round, n=ADAPTER_PARAMS,
                                        population=population))
        app = ServerApp()

        @app.main()
        def main(grid, context):
            out["engine"], out["summary"] = run_on_grid(grid, cfg)

        t0 = time.perf_counter()
        lg.setLevel(logging.ERROR)
        try:
            run_simulation(app, make_client_app(str(cfg)), num_supernodes=clients_per_round,
                           backend_config={"client_resources": {"num_cpus": 1}})
        finally:
            lg.setLevel(level)
        total = time.perf_counter() - t0
    if "engine" not in out:
        raise RuntimeError("flower: the ServerApp did not finish (see the log above)")
    walls = [h["wall_s"] for h in out["engine"].history[1:]]  # history[0] is the evaluation before round 1
    return {"rounds_per_s": (len(walls) - 1) / sum(walls[1:]), "first_round_s": walls[0], "total_s": total,
            "model_sha1": out["summary"]["model_sha1"], "messages": out["engine"].transport.messages}


def run(quick: bool = False) -> Report:
    rep = Report("fl")
    for m, pop, rounds in ((10, 10_000, 200 if quick else 1000), (1000, 100_000, 5 if quick else 20)):
        rps, _ = engine_rounds_per_s(m, pop, rounds)
        rep.add(name="engine_noop", clients_per_round=m, population=pop, adapter_bytes=4 * ADAPTER_PARAMS,
                rounds=rounds, rounds_per_s=rps, rounds_per_cpu_s=last_cpu_rate)
        rep.claim(f"engine rounds/s, no-op clients, 100 KB adapter, {m} clients/round", rps,
                  ">= 100" if m == 10 else ">= 1")
    try:
        import flwr  # noqa: F401
    except ImportError:
        rep.add(name="flower_sim_noop", skipped="flwr not installed: pip install 'edgelearn[flower]'")
        return rep
    for m, pop, rounds in ((10, 10_000, 6 if quick else 20), (1000, 100_000, 3)):
        if quick and m == 1000:
            rep.add(name="flower_sim_noop", clients_per_round=m,
                    skipped="quick: about a minute per round through Flower's simulation runtime on 2 cores")
            continue
        f = flower_rounds_per_s(m, pop, rounds)
        _, sha = engine_rounds_per_s(m, pop, rounds)
        rep.add(name="flower_sim_noop", clients_per_round=m, population=pop, adapter_bytes=4 * ADAPTER_PARAMS,
                rounds=rounds, supernodes=m, same_model_as_engine=f["model_sha1"] == sha, **f)
    return rep
