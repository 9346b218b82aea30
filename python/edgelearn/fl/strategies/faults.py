"""Fault injection (for tests and fault experiments): a fraction of replies come back with NaN or huge values
in every float array of their payload, as a broken or malicious client would send."""

from __future__ import annotations

import numpy as np

from .base import StrategyWrapper

FAULT_TAG = 0xFA17


class FaultInjection(StrategyWrapper):
    def __init__(self, inner, rate: float, huge: float = 1e12):
        super().__init__(inner)
        if not 0 <= rate < 1:
            raise ValueError(f"faults.rate: must be in [0, 1), got {rate}")
        self.rate, self.huge = float(rate), float(huge)
        self.injected = 0

    def fit(self, task, ctx, global_vec):
        up = self.inner.fit(task, ctx, global_vec)
        r = ctx.rng(FAULT_TAG + ctx.instructions.get("iter", 0))
        if up is not None and r.random() < self.rate:
            nan = r.random() < 0.5
            for k, v in up.payload.items():
                if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                    up.payload[k] = np.full_like(v, np.nan) if nan else v * np.float32(self.huge) + np.float32(self.huge)
            up.metrics["faulty"] = True
            self.injected += 1
        return up

    def own_metrics(self):
        return {"faults_injected_total": self.injected}

    def own_state(self):
        return {"injected": self.injected}

    def load_own_state(self, state):
        self.injected = int(state["injected"])
