"""The federated engine on Flower (flwr 1.41 Message API): the same round loop, each client's fit on a SuperNode.

    flwr run examples/flower local --stream          # Flower's simulation runtime (Ray); see docs/flower.md
    from flwr.simulation import run_simulation       # or from Python:
    run_simulation(make_server_app("cfg.toml"), make_client_app("cfg.toml"), num_supernodes=2)

ServerApp (`make_server_app`): builds task, partition, devices and strategy from an `edgelearn fl run` config
exactly as the in-process engine does and runs `engine.Engine` with `FlowerTransport` as its transport. Sampling,
configure, decode, filter, refine, merge, aggregate, the simulated clock and evaluation stay on the server; only
`strategy.fit` moves. So the wrappers are where they were: dropout and fault injection act in the client's fit,
rejection and clipping on the server.
ClientApp (`make_client_app`): builds the same task, partition, devices and strategy from the config (once per
process) and answers each "train" message by running `strategy.fit(task, ctx, global_vec)` for the virtual
client id the message names. Message i of a pass goes to SuperNode i mod N, so a few SuperNodes serve any
population (a client's data and randomness come from its id, not from the node that runs it).

Message content (a RecordDict):
    server -> client  "global": ArrayRecord {"vec"}; "ctx": ConfigRecord {cid, round, seed, fingerprint,
                      "i.<key>" instructions}; "state" + "state_arrays": the strategy's state_dict (fit reads the
                      server's cross-round state, e.g. FwdLLM's previous global gradient)
    client -> server  "update": ConfigRecord {cid, dropped, num_examples, bytes_up, bytes_down, macs, mem_bytes,
                      weight, "m.<key>" metrics}; "payload": ArrayRecord of the payload's arrays (a vector, or the
                      seed uplink's seeds uint64 + g float32) and "payload_scalars" (s2)
Arrays travel as .npy bytes (no pickle), so the global model is bit-identical to the in-process engine's.

Run config keys (`[tool.flwr.app.config]`, or `flwr run --run-config`): config (path of the TOML; relative paths
are tried against the working directory, then the app's folder), variant (a [variants.NAME]; "" = the first),
json (JSON lines out; "" = none), min-nodes (SuperNodes to wait for), timeout (s per pass; 0 = none).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

try:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
except ImportError as e:  # one line that says what to do (the rest of edgelearn works without Flower)
    raise ImportError("edgelearn.fl.flower needs Flower: pip install 'edgelearn[flower]' "
                      f"(flwr[simulation]>=1.41,<1.42) [{e}]") from None

from .client import ClientContext, Update
from .engine import Engine, _find

MESSAGE_TYPE = "train"


# -- encoding --------------------------------------------------------------------------------------------------------
def _scalar(v):
    return v.item() if isinstance(v, np.generic) else v


def flatten(tree: dict, prefix: str = "") -> tuple[dict, dict]:
    """A nested dict of arrays / scalars / None / lists -> (arrays, scalars) with "/"-joined keys; None and empty
    dicts are listed under "~none" and "~empty" of the scalars (Flower records hold neither)."""
    arrays, scalars = {}, {"~none": [], "~empty": []}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if not v:
                scalars["~empty"].append(key)
            a, s = flatten(v, key + "/")
            arrays.update(a)
            scalars["~none"] += s.pop("~none")
            scalars["~empty"] += s.pop("~empty")
            scalars.update(s)
        elif isinstance(v, np.ndarray):
            arrays[key] = v
        elif v is None:
            scalars["~none"].append(key)
        elif isinstance(v, (list, tuple)):
            scalars[key] = [_scalar(x) for x in v]
        else:
            scalars[key] = _scalar(v)
    return arrays, scalars


def unflatten(arrays: dict, scalars: dict) -> dict:
    out: dict = {}

    def put(key, value):
        *path, leaf = key.split("/")
        d = out
        for p in path:
            d = d.setdefault(p, {})
        d[leaf] = value

    for k in scalars.get("~empty", []):
        put(k, {})
    for k in scalars.get("~none", []):
        put(k, None)
    for k, v in scalars.items():
        if not k.startswith("~"):
            put(k, v)
    for k, v in arrays.items():
        put(k, v)
    return out


def _records(tree: dict) -> tuple[ArrayRecord, ConfigRecord]:
    arrays, scalars = flatten(tree)
    scalars = {k: v for k, v in scalars.items() if not (k.startswith("~") and not v)}  # no empty lists
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}), ConfigRecord(scalars)


def _tree(arrays: ArrayRecord, scalars: ConfigRecord) -> dict:
    return unflatten({k: a.numpy() for k, a in arrays.items()}, dict(scalars))


def encode_update(up: Update | None, cid: int) -> RecordDict:
    if up is None:
        return RecordDict({"update": ConfigRecord({"cid": cid, "dropped": True})})
    meta = {"cid": int(up.cid), "dropped": False, "num_examples": int(up.num_examples), "bytes_up": int(up.bytes_up),
            "bytes_down": int(up.bytes_down), "macs": float(up.macs), "mem_bytes": int(up.mem_bytes),
            "weight": float(up.weight)}
    meta.update({f"m.{k}": _scalar(v) for k, v in up.metrics.items() if v is not None})
    arrays, scalars = _records(up.payload)
    return RecordDict({"update": ConfigRecord(meta), "payload": arrays, "payload_scalars": scalars})


def decode_update(rd: RecordDict) -> tuple[int, Update | None]:
    m = rd["update"]
    cid = int(m["cid"])
    if m["dropped"]:
        return cid, None
    payload = _tree(rd["payload"], rd["payload_scalars"])
    metrics = {k[2:]: v for k, v in m.items() if k.startswith("m.")}
    return cid, Update(cid, int(m["num_examples"]), payload, int(m["bytes_up"]), int(m["bytes_down"]),
                       float(m["macs"]), int(m["mem_bytes"]), metrics, None, float(m["weight"]))


# -- config ----------------------------------------------------------------------------------------------------------
def resolve_config(path, base_dir=None) -> Path:
    if not path:
        raise ValueError("config: no config given (set the run config key 'config' to an `edgelearn fl run` "
                         "TOML, e.g. --run-config \"config='configs/x.toml'\")")
    for cand in (Path(path), *([Path(base_dir) / path] if base_dir else [])):
        if cand.is_file():
            return cand.resolve()
    raise FileNotFoundError(f"config: {path!r} not found (tried the working directory"
                            f"{' and ' + str(base_dir) if base_dir else ''})")


def _variant(path: Path, name: str | None):
    from .config import load_config

    cfg = load_config(path)
    if name:
        for v in cfg.variants:
            if v.name == name:
                return cfg, v
        raise ValueError(f"variant: {name!r} not in {path.name} (variants: "
                         f"{', '.join(v.name for v in cfg.variants)})")
    return cfg, cfg.variants[0]


def fingerprint(variant_cfg: dict) -> str:
    """What server and clients must agree on (data, model, partition, devices, strategy, seed)."""
    return hashlib.sha1(json.dumps(variant_cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- server ----------------------------------------------------------------------------------------------------------
class FlowerTransport:
    """Engine transport: a pass of fits = one message per client to the SuperNodes, then wait for the replies.

    A client whose reply does not arrive within `timeout` counts as dropped out; a client whose ClientApp raised
    fails the run (the error names the client and the node)."""

    def __init__(self, grid: Grid, fingerprint: str = "", min_nodes: int = 1, timeout: float | None = None,
                 wait_s: float = 120.0):
        self.grid, self.fp, self.min_nodes = grid, fingerprint, max(1, int(min_nodes))
        self.timeout, self.wait_s = timeout or None, float(wait_s)
        self.messages = 0

    def nodes(self) -> list[int]:
        t0 = time.monotonic()
        while True:
            ids = sorted(self.grid.get_node_ids())
            if len(ids) >= self.min_nodes:
                return ids
            if time.monotonic() - t0 > self.wait_s:
                raise RuntimeError(f"flower: {len(ids)} SuperNode(s) connected after {self.wait_s:.0f} s, "
                                   f"min-nodes is {self.min_nodes}: start more SuperNodes or lower min-nodes")
            time.sleep(0.5)

    def fit(self, engine: Engine, contexts: list[ClientContext]) -> list[Update | None]:
        if not contexts:
            return []
        nodes = self.nodes()
        glob = ArrayRecord({"vec": Array(np.ascontiguousarray(engine.vec, dtype=np.float32))})
        st_arrays, st_scalars = _records(engine.strategy.state_dict())
        msgs = []
        for i, ctx in enumerate(contexts):
            c = {"cid": ctx.cid, "round": ctx.round, "seed": ctx.seed, "fingerprint": self.fp}
            c.update({f"i.{k}": _scalar(v) for k, v in ctx.instructions.items()})
            content = RecordDict({"global": glob, "ctx": ConfigRecord(c), "state": st_scalars,
                                  "state_arrays": st_arrays})
            msgs.append(Message(content, nodes[i % len(nodes)], MESSAGE_TYPE, group_id=str(ctx.round)))
        self.messages += len(msgs)
        got: dict[int, Update | None] = {}
        for rep in self.grid.send_and_receive(msgs, timeout=self.timeout):
            if rep.has_error():
                by_id = {m.metadata.message_id: ctx.cid for m, ctx in zip(msgs, contexts)}
                raise RuntimeError(f"flower: the ClientApp failed for client "
                                   f"{by_id.get(rep.metadata.reply_to_message_id, '?')} on node "
                                   f"{rep.metadata.src_node_id}: {_reason(rep.error.reason)}")
            cid, up = decode_update(rep.content)
            got[cid] = up
        fi = _find(engine.strategy, "FaultInjection")  # the fault happened on the client: count it here too
        if fi is not None:
            fi.injected += sum(1 for u in got.values() if u is not None and u.metrics.get("faulty"))
        return [got.get(ctx.cid) for ctx in contexts]


def _reason(text: str) -> str:
    """The client's own exception message out of Flower's (and Ray's) error report: one line."""
    text = str(text or "").strip()
    if "Message: " in text:
        text = text.rsplit("Message: ", 1)[1].rstrip("'>").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no reason given)"


def run_on_grid(grid: Grid, config, *, variant: str | None = None, json_path: str | None = None,
                min_nodes: int = 1, timeout: float | None = None, base_dir=None, echo=None) -> tuple[Engine, dict]:
    """Run one variant of a config with its clients on the grid's SuperNodes; returns the finished engine
    (engine.vec, engine.history) and its summary."""
    from .config import JsonLines, build_engine, build_task

    path = resolve_config(config, base_dir)
    cfg, v = _variant(path, variant)
    log = JsonLines(json_path, echo)

    try:
        task = build_task(v.cfg, cfg.path.parent)
        eng = build_engine(v.cfg, task, log=log, variant=v.name)
        eng.transport = FlowerTransport(grid, fingerprint(v.cfg), min_nodes, timeout)
        t0 = time.perf_counter()
        s = eng.run()
        log({"summary": True, "config": str(path), "transport": "flower",
             "messages": eng.transport.messages, "wall_s": time.perf_counter() - t0, "variants": {v.name: s}})
    finally:
        log.close()
    return eng, s


def make_server_app(config=None, *, variant: str | None = None, base_dir=None, result: dict | None = None,
                    echo=None) -> ServerApp:
    """A ServerApp running `config` (else the run config's 'config'); when `result` is a dict it receives the
    finished engine's "vec", "history" and "summary" (the server runs in the caller's process in simulation)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        rc = context.run_config
        eng, summary = run_on_grid(grid, config or rc.get("config"),
                                   variant=variant or rc.get("variant") or None, json_path=rc.get("json") or None,
                                   min_nodes=int(rc.get("min-nodes", 1)), timeout=float(rc.get("timeout", 0)) or None,
                                   base_dir=base_dir, echo=echo or (_print if not result else None))
        if result is not None:
            result.update(vec=eng.vec.copy(), history=list(eng.history), summary=summary)

    return app


def _print(rec: dict) -> None:
    keep = ("round", "accuracy", "loss", "clients", "bytes_up", "sim_time_s", "summary")
    print(json.dumps({k: v for k, v in rec.items() if k in keep} if not rec.get("summary") else rec), flush=True)


# -- client ----------------------------------------------------------------------------------------------------------
_CLIENT_SIDES: dict = {}


class ClientSide:
    """What a SuperNode process keeps between messages: the task, the partition, the devices and the strategy
    built from the config, as the server built them."""

    def __init__(self, path: Path, variant: str | None):
        from .config import build_partition, build_strategy, build_task
        from .devices import DevicePool

        cfg, v = _variant(path, variant)
        run, dev = v.cfg.get("run", {}), v.cfg.get("devices", {})
        self.fp = fingerprint(v.cfg)
        self.task = build_task(v.cfg, cfg.path.parent)
        self.partition = build_partition(v.cfg, self.task)
        self.devices = DevicePool(dev.get("tiers"), dev.get("profile", "phone-soc"), run.get("seed", 0))
        self.strategy = build_strategy(v.cfg)

    def handle(self, content: RecordDict) -> RecordDict:
        c = content["ctx"]
        if c["fingerprint"] and c["fingerprint"] != self.fp:
            raise ValueError(f"config: the server's config differs from this SuperNode's (fingerprint "
                             f"{c['fingerprint']} vs {self.fp}): give both the same config and variant")
        cid = int(c["cid"])
        self.strategy.load_state_dict(_tree(content["state_arrays"], content["state"]))
        ctx = ClientContext(cid, int(c["round"]), self.devices.device(cid), self.partition.shard(cid),
                            int(c["seed"]), {k[2:]: v for k, v in c.items() if k.startswith("i.")})
        vec = content["global"]["vec"].numpy()
        return encode_update(self.strategy.fit(self.task, ctx, vec), cid)


def client_side(config, variant: str | None = None, base_dir=None) -> ClientSide:
    path = resolve_config(config, base_dir)
    key = (str(path), variant or "")
    if key not in _CLIENT_SIDES:
        _CLIENT_SIDES[key] = ClientSide(path, variant)
    return _CLIENT_SIDES[key]


def make_client_app(config=None, *, variant: str | None = None, base_dir=None) -> ClientApp:
    """A ClientApp serving any virtual client of `config` (else the node config's, else the run config's
    'config'). `config` may be a list of configs: each message is served by the one whose fingerprint it
    carries (one simulation running several federations, as the tests do)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        paths = config or context.node_config.get("config") or context.run_config.get("config")
        var = variant or context.node_config.get("variant") or context.run_config.get("variant") or None
        sides = [client_side(p, var, base_dir) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
        fp = msg.content["ctx"]["fingerprint"]
        side = next((s for s in sides if s.fp == fp), sides[0])
        return Message(side.handle(msg.content), reply_to=msg)

    return app


# `flwr run` components when the config path is absolute or relative to the working directory
server_app = make_server_app()
client_app = make_client_app()

__all__ = ["FlowerTransport", "run_on_grid", "make_server_app", "make_client_app", "server_app", "client_app",
           "encode_update", "decode_update", "flatten", "unflatten"]
