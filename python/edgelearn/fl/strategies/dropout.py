"""Client dropout: each sampled client, after downloading the model, fails to reply with probability `rate`
(drawn from the client's own round generator, so the same clients drop whatever the order)."""

from __future__ import annotations

from .base import StrategyWrapper

DROP_TAG = 0xD509


class Dropout(StrategyWrapper):
    def __init__(self, inner, rate: float):
        super().__init__(inner)
        if not 0 <= rate < 1:
            raise ValueError(f"dropout.rate: must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def fit(self, task, ctx, global_vec):
        if ctx.instructions.get("iter", 0) == 0 and ctx.rng(DROP_TAG).random() < self.rate:
            return None
        return self.inner.fit(task, ctx, global_vec)
