"""Federated engine speed: rounds per second with clients whose work is a no-op on a 100 KB adapter.

Goals (issue #4): >= 100 rounds/s at 10 clients per round, >= 1 round/s at 1,000 clients per round. The engine
does all its per-round work (sampling from the population, devices, contexts, decode, rejection, aggregation in
float64, clock, JSON record) and the clients return a zero delta of 25,600 float32 (100 KB).
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


def run(quick: bool = False) -> Report:
    rep = Report("fl")
    for m, pop, rounds in ((10, 10_000, 200 if quick else 1000), (1000, 100_000, 5 if quick else 20)):
        rps, _ = engine_rounds_per_s(m, pop, rounds)
        rep.add(name="engine_noop", clients_per_round=m, population=pop, adapter_bytes=4 * ADAPTER_PARAMS,
                rounds=rounds, rounds_per_s=rps, rounds_per_cpu_s=last_cpu_rate)
        rep.claim(f"engine rounds/s, no-op clients, 100 KB adapter, {m} clients/round", rps,
                  ">= 100" if m == 10 else ">= 1")
    return rep
