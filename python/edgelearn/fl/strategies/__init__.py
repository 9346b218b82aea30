"""Federated strategies (one class per file) and the wrappers for cross-cutting concerns.

    STRATEGIES: name -> class of the strategies a config can name.
    wrap(strategy, dropout=, faults=, reject=, clip=) applies the wrappers in a fixed order: faults (innermost,
    the client misbehaves), dropout, rejection, clipping (outermost: clip what was accepted).
"""

from __future__ import annotations

from .aggregate import apply_delta, cosine, l2, relative_variance, split_half_variance, weighted_mean
from .base import Strategy, StrategyWrapper
from .clipping import Clipping
from .dropout import Dropout
from .faults import FaultInjection
from .fedavg import FedAvg
from .fwdllm import FwdLLM
from .noop import NoOp
from .rejection import Rejection

STRATEGIES: dict[str, type[Strategy]] = {"fedavg": FedAvg, "fwdllm": FwdLLM, "noop": NoOp}


def wrap(strategy: Strategy, dropout: float = 0.0, faults: float = 0.0, reject: dict | bool | None = None,
         clip: float | None = None) -> Strategy:
    if faults:
        strategy = FaultInjection(strategy, faults)
    if dropout:
        strategy = Dropout(strategy, dropout)
    if reject:
        strategy = Rejection(strategy, **(reject if isinstance(reject, dict) else {}))
    if clip:
        strategy = Clipping(strategy, clip)
    return strategy


__all__ = ["STRATEGIES", "Strategy", "StrategyWrapper", "FedAvg", "FwdLLM", "NoOp", "Dropout", "FaultInjection",
           "Rejection", "Clipping", "wrap", "weighted_mean", "apply_delta", "l2", "cosine", "relative_variance",
           "split_half_variance"]
