"""`fl run` configs: TOML -> validated settings -> engines, JSON lines, claims, plot.

Sections (see configs/fl_*.toml): [run] seed, rounds, clients_per_round, eval_every, checkpoint_every, out_dir;
[data] path, label, text, delimiter, test_size, train_size, max_len; [partition] kind (iid|dirichlet), alpha,
num_clients; [model] kind (minilm|tiny|vector), lora_layers, r, lora_scale, n (vector); [devices] profile, tiers;
[strategy] name + the strategy's settings; [wrappers] dropout, faults, reject, clip;
[variants.NAME] tables merged over the base (run side by side on the same split; none = one run);
[[claims]] name, value (an expression of VARIANT.SUMMARY_KEY terms), target (">= 0.8").

Everything is checked before any work: unknown strategy or setting, missing file or column, alpha <= 0, more
clients per round than clients... raise one-line ValueErrors naming the field.
"""

from __future__ import annotations

import copy
import csv
import inspect
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..data.partition import Partition, partition
from .devices import DevicePool
from .engine import Engine
from .strategies import STRATEGIES, wrap

SECTIONS = {"run", "data", "partition", "model", "devices", "strategy", "wrappers", "variants", "claims", "title"}
RUN_KEYS = {"seed", "rounds", "clients_per_round", "eval_every", "checkpoint_every", "out_dir", "progress"}
DATA_KEYS = {"path", "label", "text", "delimiter", "test_size", "train_size", "max_len", "limit"}
MODEL_KEYS = {"kind", "lora_layers", "r", "lora_scale", "n"}
WRAPPER_KEYS = {"dropout", "faults", "reject", "clip"}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


@dataclass
class Variant:
    name: str
    cfg: dict


@dataclass
class Config:
    path: Path
    raw: dict
    variants: list[Variant]
    claims: list[dict] = field(default_factory=list)

    @property
    def run(self) -> dict:
        return self.raw.get("run", {})


def _unknown(section: str, d: dict, allowed: set) -> None:
    bad = sorted(set(d) - allowed)
    if bad:
        raise ValueError(f"{section}.{bad[0]}: unknown setting (known: {', '.join(sorted(allowed))})")


def resolve_data_path(p: str, base: Path) -> Path:
    """Absolute, relative to the working directory, to the config's folder, or under the shared folder."""
    from ..shared import shared_dir

    cands = [Path(p), base / p]
    root = shared_dir()
    if root is not None:
        cands.append(root / p)
    for c in cands:
        if c.is_file():
            return c
    raise ValueError(f"data.path: {p!r} not found (tried the working directory, {base}, and the shared folder "
                     f"{root or '(not found: set EDGELEARN_SHARED)'})")


def _check_variant(name: str, c: dict, base: Path) -> None:
    for s in c:
        if s not in SECTIONS:
            raise ValueError(f"{s}: unknown section (known: {', '.join(sorted(SECTIONS))})")
    run = c.get("run", {})
    _unknown("run", run, RUN_KEYS)
    model = c.get("model", {})
    _unknown("model", model, MODEL_KEYS)
    kind = model.get("kind", "minilm")
    if kind not in ("minilm", "tiny", "vector"):
        raise ValueError(f"model.kind: expected 'minilm', 'tiny' or 'vector', got {kind!r}")
    part = c.get("partition", {})
    _unknown("partition", part, {"kind", "alpha", "num_clients"})
    pk = part.get("kind", "iid")
    if pk not in ("iid", "dirichlet"):
        raise ValueError(f"partition.kind: expected 'iid' or 'dirichlet', got {pk!r}")
    alpha = part.get("alpha", 1.0)
    if pk == "dirichlet" and not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"partition.alpha: must be > 0, got {alpha}")
    n = part.get("num_clients", 10)
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"partition.num_clients: must be an integer >= 1, got {n}")
    m = run.get("clients_per_round", 10)
    if not (isinstance(m, int) and 1 <= m <= n):
        raise ValueError(f"run.clients_per_round: must be an integer in [1, partition.num_clients = {n}], got {m}")
    if not (isinstance(run.get("rounds", 10), int) and run.get("rounds", 10) >= 1):
        raise ValueError(f"run.rounds: must be an integer >= 1, got {run.get('rounds')}")
    st = dict(c.get("strategy", {}))
    sname = st.pop("name", None)
    if sname not in STRATEGIES:
        raise ValueError(f"strategy.name: unknown strategy {sname!r} (known: {', '.join(STRATEGIES)})")
    params = set(inspect.signature(STRATEGIES[sname].__init__).parameters) - {"self"}
    _unknown(f"strategy ({sname})", st, params)
    STRATEGIES[sname](**st)  # the strategy's own range checks
    w = c.get("wrappers", {})
    _unknown("wrappers", w, WRAPPER_KEYS)
    for k in ("dropout", "faults"):
        if not 0 <= w.get(k, 0) < 1:
            raise ValueError(f"wrappers.{k}: must be in [0, 1), got {w[k]}")
    DevicePool(c.get("devices", {}).get("tiers"), c.get("devices", {}).get("profile", "phone-soc"))
    if kind == "vector":
        return
    d = c.get("data", {})
    _unknown("data", d, DATA_KEYS)
    for k in ("path", "label", "text"):
        if k not in d:
            raise ValueError(f"data.{k}: missing")
    path = resolve_data_path(d["path"], base)
    delim = d.get("delimiter") or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f, delimiter=delim), [])
    cols = [d["label"]] + ([d["text"]] if isinstance(d["text"], str) else list(d["text"]))
    for col in cols:
        if col not in header:
            which = "data.label" if col == d["label"] else "data.text"
            raise ValueError(f"{which}: column {col!r} not in {path.name} (columns: {', '.join(header)})")


def load_config(path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    base = {k: v for k, v in raw.items() if k not in ("variants", "claims", "title")}
    vs = raw.get("variants") or {}
    def over(v):  # a variant's [strategy] with a name replaces the base strategy table instead of merging into it
        b = copy.deepcopy(base)
        if isinstance(v.get("strategy"), dict) and "name" in v["strategy"]:
            b.pop("strategy", None)
        return _merge(b, v)

    variants = [Variant(n, over(v)) for n, v in vs.items()] or \
        [Variant(base.get("strategy", {}).get("name", "run"), base)]
    for v in variants:
        try:
            _check_variant(v.name, v.cfg, path.parent)
        except ValueError as e:
            raise ValueError(f"{e}" + (f" [variant {v.name}]" if vs else "")) from None
    claims = raw.get("claims", [])
    for i, c in enumerate(claims):
        for k in ("name", "value", "target"):
            if k not in c:
                raise ValueError(f"claims[{i}].{k}: missing")
        op = c["target"].split()
        if len(op) != 2 or op[0] not in ("<=", ">="):
            raise ValueError(f"claims[{i}].target: expected like '>= 0.8' or '<= 2', got {c['target']!r}")
        for term in re.findall(r"[A-Za-z_][\w-]*\.[A-Za-z_]\w*", c["value"]):
            if term.split(".")[0] not in [v.name for v in variants]:
                raise ValueError(f"claims[{i}].value: {term!r} names no variant (variants: "
                                 f"{', '.join(v.name for v in variants)})")
    return Config(path, raw, variants, claims)


# -- building ------------------------------------------------------------------------------------------------------
def build_task(cfg: dict, base: Path):
    from ..data import load_text_csv, stratified_split
    from .task import TextTask, VectorTask

    seed = cfg.get("run", {}).get("seed", 0)
    model = cfg.get("model", {})
    if model.get("kind", "minilm") == "vector":
        return VectorTask(int(model.get("n", 25600)), seed)
    d = cfg["data"]
    ds = load_text_csv(resolve_data_path(d["path"], base), d["label"], d["text"], d.get("delimiter"),
                       limit=d.get("limit"))
    train_idx, test_idx = stratified_split(ds.labels, d.get("test_size", 0.2), seed=seed)
    if d.get("train_size"):
        train_idx = train_idx[:int(d["train_size"])]
    lora = model.get("lora_layers", [4, 5])
    return TextTask(ds, train_idx, test_idx, model.get("kind", "minilm"), int(d.get("max_len", 64)),
                    lora if lora != "all" else None, int(model.get("r", 8)), float(model.get("lora_scale", 1.0)),
                    seed)


def build_partition(cfg: dict, task) -> Partition:
    import numpy as np

    p = cfg.get("partition", {})
    n = int(p.get("num_clients", 10))
    seed = cfg.get("run", {}).get("seed", 0)
    if len(task.train_labels) == 0:
        return Partition(np.zeros(0, np.int64), np.zeros(n + 1, np.int64))
    return partition(task.train_labels, n, p.get("kind", "iid"), float(p.get("alpha", 1.0)), seed)


def build_strategy(cfg: dict):
    st = dict(cfg["strategy"])
    s = STRATEGIES[st.pop("name")](**st)
    w = cfg.get("wrappers", {})
    return wrap(s, w.get("dropout", 0.0), w.get("faults", 0.0), w.get("reject"), w.get("clip"))


def build_engine(cfg: dict, task, *, log=None, progress=False, variant=None, checkpoint_path=None) -> Engine:
    run = cfg.get("run", {})
    dev = cfg.get("devices", {})
    return Engine(task, build_strategy(cfg), build_partition(cfg, task),
                  DevicePool(dev.get("tiers"), dev.get("profile", "phone-soc"), run.get("seed", 0)),
                  seed=run.get("seed", 0), rounds=run.get("rounds", 10),
                  clients_per_round=run.get("clients_per_round", 10), eval_every=run.get("eval_every", 1),
                  checkpoint_every=run.get("checkpoint_every", 0), checkpoint_path=checkpoint_path, log=log,
                  progress=progress, variant=variant)


def evaluate_claims(claims: list[dict], summaries: dict[str, dict]) -> list[dict]:
    out = []
    for c in claims:
        expr = c["value"]

        def sub(m):
            v, k = m.group(0).split(".", 1)
            val = summaries[v].get(k)
            if not isinstance(val, (int, float)) or val is None:
                raise ValueError(f"claim {c['name']!r}: {m.group(0)} is not a number ({val!r})")
            return repr(float(val))

        num = re.sub(r"[A-Za-z_][\w-]*\.[A-Za-z_]\w*", sub, expr)
        if not re.fullmatch(r"[\d\s.eE+\-*/()]+", num):
            raise ValueError(f"claim {c['name']!r}: value {expr!r} is not arithmetic of VARIANT.KEY terms")
        value = float(eval(num, {"__builtins__": {}}, {}))  # digits and operators only (checked above)
        op, bound = c["target"].split()
        ok = value >= float(bound) if op == ">=" else value <= float(bound)
        out.append({"name": c["name"], "value": value, "target": c["target"], "ok": bool(ok)})
    return out


class JsonLines:
    """A log callback: each record as one JSON line (flushed, so a killed run keeps what it wrote) and to echo."""

    def __init__(self, path=None, echo=None, mode: str = "w"):
        self.fh = open(path, mode) if path else None
        self.echo = echo

    def __call__(self, rec: dict) -> None:
        if self.fh:
            self.fh.write(json.dumps(rec) + "\n")
            self.fh.flush()
        if self.echo:
            self.echo(rec)

    def write_raw(self, line: str) -> None:
        if self.fh:
            self.fh.write(line)

    def close(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None


def _run_variant(v: Variant, base: Path, log, progress: bool, resume: bool, outd: Path, tasks: dict):
    key = json.dumps([v.cfg.get("data"), v.cfg.get("model"), v.cfg.get("run", {}).get("seed", 0)], sort_keys=True)
    if key not in tasks:
        task = build_task(v.cfg, base)
        tasks[key] = (task, task.get_vector())
    task, init = tasks[key]
    task.set_vector(init)
    every = v.cfg.get("run", {}).get("checkpoint_every", 0)
    eng = build_engine(v.cfg, task, log=log, progress=progress, variant=v.name,
                       checkpoint_path=outd / f"{v.name}.ckpt" if every else None)
    return eng.run(resume=resume), eng.history


def _variant_worker(path: str, name: str, part: str, resume: bool, outd: str, threads: int, echo: bool):
    """One variant in its own process (run_config with jobs > 1): JSON lines to `part`."""
    import torch

    from .. import set_num_threads

    set_num_threads(threads)
    torch.set_num_threads(threads)
    cfg = load_config(path)
    v = next(x for x in cfg.variants if x.name == name)

    def show(rec):
        if echo and rec.get("accuracy") is not None:
            print(f"[{name}] round {rec['round']:4d}  acc {rec['accuracy']:.4f}  sim {rec['sim_time_s']:.1f}s",
                  flush=True)

    log = JsonLines(part, show)
    try:
        return _run_variant(v, cfg.path.parent, log, False, resume, Path(outd), {})
    finally:
        log.close()


def run_config(path, json_path=None, resume: bool = False, progress: bool = False, plot: str | None = None,
               out_dir: str | None = None, echo=None, jobs: int = 1) -> dict:
    """Run every variant of a config; JSON lines to json_path (rewritten from checkpoints on resume), then a
    summary line {"summary": true, "variants": {...}, "claims": [...]}. Returns that summary.

    jobs > 1: variants run side by side in that many processes (threads split between them); their lines are
    written variant after variant once all have finished."""
    cfg = load_config(path)
    t0 = time.perf_counter()
    outd = Path(out_dir or cfg.run.get("out_dir") or (Path(json_path).with_suffix("") if json_path else
                                                       Path("runs") / cfg.path.stem))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    if not jobs >= 1:
        raise ValueError(f"jobs: must be >= 1, got {jobs}")
    log = JsonLines(json_path, echo)
    summaries, histories, tasks = {}, {}, {}
    try:
        if jobs > 1 and len(cfg.variants) > 1:
            import multiprocessing as mp
            import os
            from concurrent.futures import ProcessPoolExecutor

            outd.mkdir(parents=True, exist_ok=True)
            threads = max(1, (os.cpu_count() or 1) // min(jobs, len(cfg.variants)))
            parts = {v.name: str(outd / f"{v.name}.part.jsonl") for v in cfg.variants}
            with ProcessPoolExecutor(min(jobs, len(cfg.variants)), mp_context=mp.get_context("spawn")) as ex:
                futs = {v.name: ex.submit(_variant_worker, str(cfg.path), v.name, parts[v.name], resume, str(outd),
                                          threads, echo is not None) for v in cfg.variants}
                results = {k: f.result() for k, f in futs.items()}
            for v in cfg.variants:
                summaries[v.name], histories[v.name] = results[v.name]
                with open(parts[v.name]) as pf:
                    for line in pf:
                        log.write_raw(line)
        else:
            for v in cfg.variants:
                summaries[v.name], histories[v.name] = _run_variant(v, cfg.path.parent, log, progress, resume, outd,
                                                                    tasks)
        claims = evaluate_claims(cfg.claims, summaries)
        from ..cli import environment

        summary = {"summary": True, "config": str(cfg.path), "wall_s": time.perf_counter() - t0,
                   "variants": summaries, "claims": claims, "environment": environment()}
        log(summary)
    finally:
        log.close()
    png = plot or (str(Path(json_path).with_suffix(".png")) if json_path else None)
    if png:
        try:
            from .plot import plot_histories

            plot_histories(histories, png, title=cfg.raw.get("title", cfg.path.stem))
            summary["plot"] = png
        except ImportError:
            pass
    return summary
