"""What a sampled client is given and what it returns.

Clients are virtual: the engine keeps only the partition (example indices per client) and the device pool, and
materialises a `ClientContext` for each client it samples in a round. All of a client's randomness comes from
`rng(seed, round, cid, tag)`, so results do not depend on the order or the thread in which clients run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .devices import Device


def rng(*key: int) -> np.random.Generator:
    """A Philox generator keyed by integers (e.g. seed, round, client id, purpose)."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([int(k) & 0xFFFFFFFFFFFFFFFF for k in key])))


@dataclass
class ClientContext:
    cid: int
    round: int
    device: Device
    shard: np.ndarray  # indices of the client's training examples
    seed: int  # run seed
    instructions: dict = field(default_factory=dict)  # what the strategy asks of this client this round

    def rng(self, tag: int = 0) -> np.random.Generator:
        return rng(self.seed, self.round, self.cid, tag)


@dataclass
class Update:
    """A client's reply. payload is strategy-specific (a delta vector, (seed, g) pairs, ...); `vector` is the
    decoded flat float32 contribution the server aggregates (set by Strategy.decode)."""

    cid: int
    num_examples: int
    payload: Any
    bytes_up: int
    bytes_down: int
    macs: float  # compute done, for the simulated clock
    mem_bytes: int  # peak working memory of the client (from the task's memory model)
    metrics: dict = field(default_factory=dict)
    vector: np.ndarray | None = None
    weight: float = 1.0
