"""The strategy interface: what the server asks of clients, what a client does, how the server aggregates.

A round in the engine, per strategy call:

    feasible(task, device)      can this client's device run this strategy at all (memory)?
    configure(rnd, contexts)    put per-client instructions in ctx.instructions (e.g. how many perturbations)
    fit(task, ctx, global_vec)  the client's work -> Update (or None: the client dropped out)
    decode(task, update)        server side: payload -> flat float32 vector (update.vector)
    filter(rnd, updates)        wrappers reject or clip here (the base keeps everything)
    refine(rnd, updates)        {cid: instructions}: ask some clients for more work in this round ({} = done)
    merge(old, new)             combine a client's first and extra replies
    aggregate(rnd, vec, ups)    new global vector (pure functions of strategies.aggregate do the arithmetic)

Strategies keep cross-round state (e.g. the previous global gradient) in state_dict() so checkpoints resume
exactly. Cross-cutting concerns (dropout, clipping, rejection, fault injection) are wrappers (StrategyWrapper).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..client import ClientContext, Update


class Strategy(ABC):
    name = "base"
    needs_data = True  # clients without examples cannot take part

    def feasible(self, task, device) -> bool:
        return True

    def configure(self, rnd: int, contexts: list[ClientContext]) -> None:
        pass

    @abstractmethod
    def fit(self, task, ctx: ClientContext, global_vec: np.ndarray) -> Update | None: ...

    def decode(self, task, update: Update) -> Update:
        update.vector = np.asarray(update.payload["vector"], dtype=np.float32)
        return update

    def filter(self, rnd: int, updates: list[Update]) -> list[Update]:
        return updates

    def refine(self, rnd: int, updates: list[Update]) -> dict[int, dict]:
        return {}

    def merge(self, old: Update, new: Update) -> Update:
        raise NotImplementedError(f"{self.name}: refine() asked for more work but merge() is not defined")

    @abstractmethod
    def aggregate(self, rnd: int, global_vec: np.ndarray, updates: list[Update]) -> np.ndarray: ...

    def round_metrics(self) -> dict:
        """Strategy facts of the round just aggregated (added to its JSON line)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def describe(self) -> str:
        return self.name


class StrategyWrapper(Strategy):
    """Delegates everything to `inner`; subclasses override the calls they change."""

    def __init__(self, inner: Strategy):
        self.inner = inner
        self.name = inner.name

    @property
    def needs_data(self):  # type: ignore[override]
        return self.inner.needs_data

    def feasible(self, task, device):
        return self.inner.feasible(task, device)

    def configure(self, rnd, contexts):
        self.inner.configure(rnd, contexts)

    def fit(self, task, ctx, global_vec):
        return self.inner.fit(task, ctx, global_vec)

    def decode(self, task, update):
        return self.inner.decode(task, update)

    def filter(self, rnd, updates):
        return self.inner.filter(rnd, updates)

    def refine(self, rnd, updates):
        return self.inner.refine(rnd, updates)

    def merge(self, old, new):
        return self.inner.merge(old, new)

    def aggregate(self, rnd, global_vec, updates):
        return self.inner.aggregate(rnd, global_vec, updates)

    def round_metrics(self):
        return {**self.inner.round_metrics(), **self.own_metrics()}

    def own_metrics(self) -> dict:
        return {}

    def state_dict(self):
        return {"inner": self.inner.state_dict(), "own": self.own_state()}

    def load_state_dict(self, state):
        self.inner.load_state_dict(state["inner"])
        self.load_own_state(state["own"])

    def own_state(self) -> dict:
        return {}

    def load_own_state(self, state: dict) -> None:
        pass

    def describe(self) -> str:
        return f"{type(self).__name__}({self.inner.describe()})"
