"""Split a training set over federated clients: IID or Dirichlet label skew (non-IID).

A `Partition` stores all shards as one index array plus offsets, so 100,000 clients cost two arrays, and
`shard(i)` is a view. Both partitioners are deterministic in (labels, num_clients, seed).

Dirichlet (Hsu et al. 2019, as in FedML/FwdLLM): for each class c, proportions p_c ~ Dir(alpha * 1_N) over the N
clients, and the examples of class c are dealt out in those proportions. Small alpha -> each client sees few
classes; alpha -> inf -> IID label mix. Clients may end up empty when N is large relative to the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Partition:
    indices: np.ndarray  # int64 [n]: example indices, shard after shard
    offsets: np.ndarray  # int64 [N + 1]: shard i is indices[offsets[i]:offsets[i+1]]

    @property
    def num_clients(self) -> int:
        return len(self.offsets) - 1

    def shard(self, i: int) -> np.ndarray:
        return self.indices[self.offsets[i]:self.offsets[i + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def label_counts(self, labels, num_classes: int | None = None) -> np.ndarray:
        """[N, C] examples of each class on each client."""
        labels = np.asarray(labels)
        C = int(num_classes or labels.max() + 1)
        owner = np.repeat(np.arange(self.num_clients), self.sizes())
        out = np.zeros((self.num_clients, C), dtype=np.int64)
        np.add.at(out, (owner, labels[self.indices]), 1)
        return out

    @classmethod
    def from_owner(cls, owner: np.ndarray, num_clients: int) -> "Partition":
        order = np.argsort(owner, kind="stable")
        offsets = np.zeros(num_clients + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=num_clients), out=offsets[1:])
        return cls(order.astype(np.int64), offsets)


def _check(n: int, num_clients: int) -> None:
    if int(num_clients) < 1:
        raise ValueError(f"num_clients: must be >= 1, got {num_clients}")
    if n < 1:
        raise ValueError("labels: need at least one example")


def iid_partition(n_or_labels, num_clients: int, seed: int = 0) -> Partition:
    """Shuffle and deal the examples round-robin: shard sizes differ by at most one."""
    n = int(n_or_labels) if np.isscalar(n_or_labels) else len(n_or_labels)
    _check(n, num_clients)
    rng = np.random.Generator(np.random.Philox(seed))
    perm = rng.permutation(n)
    owner = np.empty(n, dtype=np.int64)
    owner[perm] = np.arange(n) % num_clients
    return Partition.from_owner(owner, int(num_clients))


def dirichlet_partition(labels, num_clients: int, alpha: float, seed: int = 0) -> Partition:
    """Label-skewed shards: class c's examples dealt to clients in proportions ~ Dir(alpha)."""
    labels = np.asarray(labels)
    _check(len(labels), num_clients)
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha: must be a finite number > 0, got {alpha}")
    rng = np.random.Generator(np.random.Philox(seed))
    owner = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        p = rng.dirichlet(np.full(num_clients, float(alpha)))
        cuts = (np.cumsum(p)[:-1] * len(idx)).astype(np.int64)
        owner[idx] = np.searchsorted(cuts, np.arange(len(idx)), side="right")
    return Partition.from_owner(owner, int(num_clients))


def partition(labels, num_clients: int, kind: str = "iid", alpha: float = 1.0, seed: int = 0) -> Partition:
    if kind == "iid":
        return iid_partition(labels, num_clients, seed)
    if kind == "dirichlet":
        return dirichlet_partition(labels, num_clients, alpha, seed)
    raise ValueError(f"partition.kind: expected 'iid' or 'dirichlet', got {kind!r}")
