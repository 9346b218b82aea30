"""Update clipping: every reply's vector is scaled down to L2 norm <= max_norm before aggregation (the clipping
of DP-FedAvg, without the noise)."""

from __future__ import annotations

import numpy as np

from .aggregate import l2
from .base import StrategyWrapper


class Clipping(StrategyWrapper):
    def __init__(self, inner, max_norm: float):
        super().__init__(inner)
        if not max_norm > 0:
            raise ValueError(f"clip.max_norm: must be > 0, got {max_norm}")
        self.max_norm = float(max_norm)
        self.clipped = 0

    def filter(self, rnd, updates):
        updates = self.inner.filter(rnd, updates)
        self.clipped = 0
        for u in updates:
            n = l2(u.vector)
            if n > self.max_norm:
                u.vector = (u.vector * np.float32(self.max_norm / n)).astype(np.float32)
                self.clipped += 1
        return updates

    def own_metrics(self):
        return {"clipped": self.clipped}
