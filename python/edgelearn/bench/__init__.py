"""Benchmarks: kernel vs NumPy reference vs the strongest outside baseline, in one process, as ratios.

Each family module (``edgelearn.bench.<family>``) has ``run(quick: bool) -> Report``. The runner
(``edgelearn bench``) prints them and writes DESIGN.md's JSON contract: environment, results, claims.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass
class Claim:
    """A goal of an issue, measured in this run. target is like "<= 1.3" or ">= 5"."""

    name: str
    value: float
    target: str

    @property
    def ok(self) -> bool:
        op, bound = self.target.split()
        return self.value <= float(bound) if op == "<=" else self.value >= float(bound)

    def to_json(self) -> dict:
        return {"name": self.name, "value": float(self.value), "target": self.target, "ok": bool(self.ok)}


@dataclass
class Report:
    family: str
    results: list[dict] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def add(self, **row) -> dict:
        row.setdefault("family", self.family)
        self.results.append(row)
        return row

    def claim(self, name: str, value: float, target: str) -> Claim:
        c = Claim(name, float(value), target)
        self.claims.append(c)
        return c


def best_time(fn: Callable[[], object], repeat: int = 5, min_time: float = 0.2) -> float:
    """Best wall time of one call of fn over `repeat` rounds (each round loops until min_time): seconds."""
    return best_interleaved({"fn": fn}, repeat, min_time)["fn"]


def best_interleaved(fns: dict, rounds: int, min_time: float) -> dict:
    """Best time of one call of each fn, the fns taking turns round by round (a shared, noisy machine then
    slows them alike instead of whichever happened to run during a busy spell)."""
    for fn in fns.values():
        fn()  # warm up
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                dt = time.perf_counter() - t0
                if dt >= min_time:
                    break
            best[k] = min(best[k], dt / n)
    return best


__all__ = ["Claim", "Report", "best_time", "best_interleaved", "asdict"]
