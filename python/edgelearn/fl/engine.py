"""The in-process federated engine: a server, a population of virtual clients, rounds.

    engine = Engine(task, strategy, partition, DevicePool(...), seed=0, rounds=50, clients_per_round=10)
    summary = engine.run()                    # JSON-able records go to `log` as they happen

A round r:
  1. sample clients_per_round ids out of the population without replacement (generator keyed by (seed, r));
     only these are materialised (ClientContext: shard view + device), so 100,000 registered clients cost
     the partition's two arrays;
  2. drop those whose device cannot run the strategy (memory: `infeasible`) or who have no data (`empty`);
  3. strategy.configure, then fit for each client in id order (None = dropped out), decode, filter (rejection,
     clipping), refine (more work in the same round, e.g. FwdLLM's variance control), aggregate;
  4. simulated clock: each fit call costs its device compute (MACs / MAC/s) + download + upload; the round
     takes, per pass of fits, the slowest client's time (dropped clients are not waited for: the server's
     deadline is the replies it got);
  5. evaluate every eval_every rounds and at the last; checkpoint every checkpoint_every rounds.

Transport: how a pass of fits reaches the clients. `InProcess` (the default) calls strategy.fit here, client by
client; `edgelearn.fl.flower.FlowerTransport` sends each fit to a Flower SuperNode as a Message. Everything else
(sampling, configure, decode, filter, refine, merge, aggregate, clock, evaluation) stays in this one round loop.

Determinism: every random choice comes from a generator keyed by (seed, round, client, purpose), clients run in
id order on one model instance and aggregation accumulates in float64 in id order, so the global model is
bit-identical for a seed, whatever the number of threads, and a resumed run equals an uninterrupted one
(the checkpoint holds the global vector, the strategy state, the clock and the history).
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .client import ClientContext, rng
from .devices import DevicePool

SAMPLE_TAG = 0x5A31


class InProcess:
    """The default transport: each client's fit runs in this process, one after another, in id order."""

    def fit(self, engine: "Engine", contexts: list[ClientContext]) -> list:
        return [engine.strategy.fit(engine.task, ctx, engine.vec) for ctx in contexts]


class Engine:
    def __init__(self, task, strategy, partition, devices: DevicePool, *, seed: int = 0, rounds: int = 10,
                 clients_per_round: int = 10, eval_every: int = 1, checkpoint_every: int = 0,
                 checkpoint_path: str | Path | None = None, log: Callable[[dict], None] | None = None,
                 progress: bool = False, variant: str | None = None, max_refine: int = 8, transport=None):
        n = partition.num_clients
        if not 1 <= clients_per_round <= n:
            raise ValueError(f"run.clients_per_round: must be in [1, {n}] (the number of clients), "
                             f"got {clients_per_round}")
        if rounds < 1:
            raise ValueError(f"run.rounds: must be >= 1, got {rounds}")
        self.task, self.strategy, self.partition, self.devices = task, strategy, partition, devices
        self.seed, self.rounds, self.m = int(seed), int(rounds), int(clients_per_round)
        self.eval_every, self.checkpoint_every = max(1, int(eval_every)), int(checkpoint_every)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.log = log or (lambda rec: None)
        self.progress, self.variant, self.max_refine = progress, variant, int(max_refine)
        self.transport = transport or InProcess()
        self.vec = task.get_vector()
        self.round = 0
        self.sim_time = 0.0
        self.totals = {"bytes_up": 0, "bytes_down": 0, "dropped": 0, "infeasible": 0, "empty": 0, "clients": 0}
        self.history: list[dict] = []
        self.t0 = time.perf_counter()

    # -- state ---------------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"round": self.round, "vec": self.vec.copy(), "strategy": self.strategy.state_dict(),
                "sim_time": self.sim_time, "totals": dict(self.totals), "history": list(self.history),
                "seed": self.seed}

    def load(self, st: dict) -> None:
        if st["seed"] != self.seed:
            raise ValueError(f"checkpoint: made with seed {st['seed']}, this run has seed {self.seed}")
        self.round, self.vec, self.sim_time = st["round"], st["vec"], st["sim_time"]
        self.totals, self.history = dict(st["totals"]), list(st["history"])
        self.strategy.load_state_dict(st["strategy"])

    def save_checkpoint(self) -> None:
        p = self.checkpoint_path
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self.state(), f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)  # atomic: a kill leaves the old or the new checkpoint, never half of one

    # -- rounds --------------------------------------------------------------------------------------------------
    def sample(self, rnd: int) -> np.ndarray:
        return np.sort(rng(self.seed, rnd, SAMPLE_TAG).choice(self.partition.num_clients, self.m, replace=False))

    def _fit_pass(self, contexts, by_cid_instr=None):
        """Run fit for contexts; returns (replies, dropped, slowest time of the pass)."""
        replies, dropped, slowest, bytes_down = [], 0, 0.0, 0
        if by_cid_instr is not None:
            for ctx in contexts:
                ctx.instructions = by_cid_instr[ctx.cid]
        for ctx, up in zip(contexts, self.transport.fit(self, contexts)):
            if up is None:
                dropped += 1
                bytes_down += 4 * self.task.n
                continue
            t = ctx.device.compute_s(up.macs) + ctx.device.comm_s(up.bytes_up, up.bytes_down)
            slowest = max(slowest, t)
            replies.append(self.strategy.decode(self.task, up))
        return replies, dropped, slowest, bytes_down

    def run_round(self, rnd: int) -> dict:
        t_wall = time.perf_counter()
        strat = self.strategy
        contexts, infeasible, empty = [], 0, 0
        for cid in self.sample(rnd):
            cid = int(cid)
            shard = self.partition.shard(cid)
            dev = self.devices.device(cid)
            if strat.needs_data and len(shard) == 0:
                empty += 1
            elif not strat.feasible(self.task, dev):
                infeasible += 1
            else:
                contexts.append(ClientContext(cid, rnd, dev, shard, self.seed))
        strat.configure(rnd, contexts)
        replies, dropped, round_time, extra_down = self._fit_pass(contexts)
        replies = strat.filter(rnd, replies)
        by_cid = {u.cid: u for u in replies}
        for _ in range(self.max_refine):
            more = strat.refine(rnd, [by_cid[c] for c in sorted(by_cid)])
            if not more:
                break
            ctxs = [c for c in contexts if c.cid in more]
            new, _d, t, _ = self._fit_pass(ctxs, more)
            round_time += t
            for u in strat.filter(rnd, new):
                by_cid[u.cid] = strat.merge(by_cid[u.cid], u)
        kept = [by_cid[c] for c in sorted(by_cid)]
        self.vec = strat.aggregate(rnd, self.vec, kept)
        bytes_up = sum(u.bytes_up for u in kept)
        bytes_down = sum(u.bytes_down for u in kept) + extra_down
        self.sim_time += round_time
        for k, v in (("bytes_up", bytes_up), ("bytes_down", bytes_down), ("dropped", dropped),
                     ("infeasible", infeasible), ("empty", empty), ("clients", len(kept))):
            self.totals[k] += v
        rec = {"round": rnd, "accuracy": None, "loss": None, "sim_time_s": self.sim_time, "round_time_s": round_time,
               "bytes_up": bytes_up, "bytes_down": bytes_down, "clients": len(kept), "sampled": self.m,
               "dropped": dropped, "infeasible": infeasible, "empty": empty,
               "peak_client_mem_bytes": max((u.mem_bytes for u in kept), default=0),
               "train_loss": float(np.mean([u.metrics["loss"] for u in kept if "loss" in u.metrics]))
               if any("loss" in u.metrics for u in kept) else None}
        rec.update(strat.round_metrics())
        if rnd % self.eval_every == 0 or rnd == self.rounds:
            rec["accuracy"], rec["loss"] = self.evaluate()
        rec["wall_s"] = time.perf_counter() - t_wall
        if self.variant:
            rec = {"variant": self.variant, **rec}
        return rec

    def evaluate(self) -> tuple[float, float]:
        self.task.set_vector(self.vec)
        acc, loss = self.task.evaluate()
        return float(acc), float(loss)

    def run(self, resume: bool = False, stop_after: int | None = None) -> dict:
        """Run to `rounds` (or until round `stop_after`, to simulate a kill in tests); returns the summary."""
        if resume and self.checkpoint_path and self.checkpoint_path.is_file():
            with open(self.checkpoint_path, "rb") as f:
                self.load(pickle.load(f))
            for rec in self.history:
                self.log(rec)
        elif not self.history:
            acc, loss = self.evaluate()
            rec = {"round": 0, "accuracy": acc, "loss": loss, "sim_time_s": 0.0, "bytes_up": 0, "bytes_down": 0,
                   "clients": 0, "peak_client_mem_bytes": 0}
            rec = {"variant": self.variant, **rec} if self.variant else rec
            self.history.append(rec)
            self.log(rec)
        bar = _bar(self.rounds, self.round, self.progress, self.variant)
        t_run, start = time.perf_counter(), self.round
        while self.round < self.rounds:
            rnd = self.round + 1
            rec = self.run_round(rnd)
            self.round = rnd
            self.history.append(rec)
            self.log(rec)
            if bar is not None:
                bar.update(1)
                if rec["accuracy"] is not None:
                    bar.set_postfix(acc=f"{rec['accuracy']:.3f}", sim=f"{self.sim_time:.0f}s")
            if self.checkpoint_path and self.checkpoint_every and (rnd % self.checkpoint_every == 0
                                                                   or rnd == self.rounds):
                self.save_checkpoint()
            if stop_after is not None and rnd >= stop_after:
                break
        if bar is not None:
            bar.close()
        return self.summary(rounds_run=self.round - start, wall=time.perf_counter() - t_run)

    def summary(self, rounds_run: int = 0, wall: float = 0.0) -> dict:
        accs = [h["accuracy"] for h in self.history if h.get("accuracy") is not None]
        mems = [h.get("peak_client_mem_bytes", 0) for h in self.history]
        strat = self.strategy
        rejected = getattr(_find(strat, "Rejection"), "rejected_total", 0)
        injected = getattr(_find(strat, "FaultInjection"), "injected", 0)
        out = {"strategy": strat.describe(), "rounds": self.round, "accuracy_initial": accs[0] if accs else None,
               "accuracy_final": accs[-1] if accs else None, "accuracy_best": max(accs) if accs else None,
               "accuracy_tail": float(np.mean(accs[-3:])) if accs else None,  # mean of the last 3 evaluations
               "sim_time_s": self.sim_time, "bytes_up_total": self.totals["bytes_up"],
               "bytes_down_total": self.totals["bytes_down"],
               "bytes_up_per_client_round": self.totals["bytes_up"] / max(1, self.totals["clients"]),
               "peak_client_mem_bytes": max(mems) if mems else 0, "client_updates": self.totals["clients"],
               "dropped_total": self.totals["dropped"], "infeasible_total": self.totals["infeasible"],
               "empty_total": self.totals["empty"], "rejected_total": rejected,
               "faults_injected_total": injected,
               "wall_s": wall, "rounds_per_s": rounds_run / wall if wall > 0 else None,
               "model_sha1": _sha1(self.vec)}
        return {"variant": self.variant, **out} if self.variant else out


def _find(strategy, cls_name: str):
    s = strategy
    while s is not None:
        if type(s).__name__ == cls_name:
            return s
        s = getattr(s, "inner", None)
    return None


def _sha1(v: np.ndarray) -> str:
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(v, np.float32).tobytes()).hexdigest()


def _bar(total: int, start: int, enabled: bool, desc: str | None):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, initial=start, desc=desc or "rounds", unit="round", leave=True)
