"""Federated learning on one engine: in-process by default (engine.Engine), Flower when it must scale.

    from edgelearn.fl import run_config
    summaries = run_config("configs/fl_fwdllm_quick.toml", json_path="runs/fl.jsonl")

Modules: engine (rounds, sampling, clock, checkpoints), strategies/ (FedAvg, FwdLLM, NoOp; wrappers Dropout,
FaultInjection, Rejection, Clipping; pure aggregation functions), client (contexts, updates, keyed generators),
devices (device pool from firmware_sim profiles), task (model state as a vector, cost model), config (TOML ->
engine, validated before any work), cli (`edgelearn fl run`), plot.
"""

from .client import ClientContext, Update, rng
from .devices import Device, DevicePool
from .engine import Engine

__all__ = ["ClientContext", "Update", "rng", "Device", "DevicePool", "Engine", "run_config", "load_config"]


def __getattr__(name):
    if name in ("run_config", "load_config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
