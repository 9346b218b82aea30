"""Clients whose work is a no-op: each returns a zero delta of the model's size (engine benchmarks)."""

from __future__ import annotations

import numpy as np

from ..client import Update
from .aggregate import apply_delta, weighted_mean
from .base import Strategy


class NoOp(Strategy):
    name = "noop"
    needs_data = False

    def fit(self, task, ctx, global_vec):
        n4 = 4 * task.n
        return Update(ctx.cid, 1, {"vector": np.zeros(task.n, np.float32)}, n4, n4, 0.0, n4)

    def aggregate(self, rnd, global_vec, updates):
        if not updates:
            return global_vec
        return apply_delta(global_vec, weighted_mean([u.vector for u in updates], [u.num_examples for u in updates]))
