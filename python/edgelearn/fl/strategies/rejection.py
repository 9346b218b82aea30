"""Reject replies the server must not aggregate: non-finite values, or a norm above `max_norm` or above
`factor` x the median norm of the round's finite replies. Rejections are counted per round and in total."""

from __future__ import annotations

import numpy as np

from .aggregate import l2
from .base import StrategyWrapper


class Rejection(StrategyWrapper):
    def __init__(self, inner, factor: float = 100.0, max_norm: float | None = None):
        super().__init__(inner)
        if not factor > 1:
            raise ValueError(f"reject.factor: must be > 1, got {factor}")
        self.factor, self.max_norm = float(factor), max_norm
        self.rejected = 0
        self.rejected_total = 0

    def filter(self, rnd, updates):
        updates = self.inner.filter(rnd, updates)
        norms_all = [l2(u.vector) for u in updates]  # NaN/inf anywhere (or overflow) -> a non-finite norm
        finite = [u for u, n in zip(updates, norms_all) if np.isfinite(n)]
        norms = [n for n in norms_all if np.isfinite(n)]
        limit = self.factor * float(np.median(norms)) if norms else 0.0
        if self.max_norm is not None:
            limit = min(limit, float(self.max_norm)) if norms else float(self.max_norm)
        keep = [u for u, n in zip(finite, norms) if n <= limit or n == 0.0]
        self.rejected = len(updates) - len(keep)
        self.rejected_total += self.rejected
        return keep

    def own_metrics(self):
        out, self.rejected = {"rejected": self.rejected, "rejected_total": self.rejected_total}, 0
        return out

    def own_state(self):
        return {"rejected_total": self.rejected_total}

    def load_own_state(self, state):
        self.rejected_total = int(state["rejected_total"])
