"""The `edgelearn` command: benchmarks, forward-gradient fine-tuning, machine facts.

Exit codes: 0 ok, 1 failed (an error, or a benchmark goal not met), 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from pathlib import Path

# Benchmark modules of each kernel family; each has run(quick) -> edgelearn.bench.Report.
BENCH_FAMILIES: dict[str, list[str]] = {
    "rng": ["edgelearn.bench.rng"],
    "zo": ["edgelearn.bench.zo_kernels", "edgelearn.bench.zo_train"],
    "quant": ["edgelearn.bench.quant"],
    "speech": ["edgelearn.bench.speech"],
    "fl": ["edgelearn.bench.fl"],
    "firmware_sim": ["firmware_sim.bench"],
}

# Command groups defined beside their packages; they import heavy dependencies only when run.
SUBCOMMAND_MODULES = ["firmware_sim.cli", "edgelearn.fl.cli", "edgelearn.speech.cli", "edgelearn.adapters.cli"]

EXAMPLES_BENCH = """examples:
  edgelearn bench                         all families, full sizes
  edgelearn bench --family zo --quick     zo kernels and training step, quick sizes
  edgelearn bench --family zo --json runs/bench_zo.json
"""

EXAMPLES_FINETUNE = """examples:
  edgelearn finetune                      forward-gradient fine-tuning of MiniLM + LoRA on AG News
  edgelearn finetune --steps 50 --json runs/ft.json --plot runs/ft.png
  EDGELEARN_SHARED=/data/shared edgelearn finetune --lora-layers 4 5
"""


class UsageError(Exception):
    """Bad command-line usage: exit code 2."""


def environment() -> dict:
    """Facts about this machine and build that a benchmark result depends on."""
    import numpy as np

    import edgelearn

    env = {
        "edgelearn": edgelearn.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": edgelearn.get_num_threads(),
        "simd": edgelearn.simd_level(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _write_json(path: str, obj: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2) + "\n")
    print(f"wrote {p}")


def _format_row(row: dict) -> str:
    parts = []
    for k, v in row.items():
        if k == "family":
            continue
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return "  " + "  ".join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    families = [args.family] if args.family else list(BENCH_FAMILIES)
    for f in families:
        if f not in BENCH_FAMILIES:
            raise UsageError(f"--family: unknown family {f!r}; known: {', '.join(BENCH_FAMILIES)}")
    results, claims = [], []
    for family in families:
        for modname in BENCH_FAMILIES[family]:
            print(f"== {modname} ({'quick' if args.quick else 'full'})", flush=True)
            report = importlib.import_module(modname).run(quick=args.quick)
            for row in report.results:
                print(_format_row(row))
            results += report.results
            claims += [c.to_json() for c in report.claims]
    print("\nclaims:")
    for c in claims:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['value']:.4g} (target {c['target']})")
    if args.json:
        _write_json(args.json, {"environment": environment(), "results": results, "claims": claims})
    failed = [c for c in claims if not c["ok"]]
    print(f"{len(claims) - len(failed)}/{len(claims)} goals met")
    return 1 if failed else 0


def cmd_finetune(args: argparse.Namespace) -> int:
    try:
        from edgelearn.zo.finetune import finetune
    except ImportError as e:
        raise ImportError(f"{e}; fine-tuning needs the torch extra: pip install torch==2.13.0 && pip install 'edgelearn[torch]'") from e
    given = dict(steps=args.steps, batch=args.batch, max_len=args.max_len, K=args.K, seed=args.seed,
                 eval_size=args.eval_size, lr=args.lr, eps=args.eps, lora_layers=args.lora_layers,
                 mode=args.mode, schedule=args.schedule, lora_scale=args.lora_scale)
    kwargs = {k: v for k, v in given.items() if v is not None}
    kwargs["progress"] = not args.no_progress
    out = finetune(**kwargs)
    summary = {k: out[k] for k in out if k != "history"}
    print(json.dumps(summary, indent=2, default=str))
    if args.json:
        _write_json(args.json, {"environment": environment(), **out})
    if args.plot:
        _plot_finetune(out, args.plot)
    return 0


def _plot_finetune(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = out["history"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    loss = [(h["step"], h["loss"]) for h in hist if h.get("loss") is not None]
    acc = [(h["step"], h["acc"]) for h in hist if h.get("acc") is not None]
    if loss:
        a1.plot(*zip(*loss))
    a1.set(xlabel="step", ylabel="training loss (running mean)", title="forward-gradient fine-tuning")
    if acc:
        a2.plot(*zip(*acc), marker="o")
    a2.set(xlabel="step", ylabel="held-out accuracy", title="AG News, MiniLM + LoRA")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def cmd_info(args: argparse.Namespace) -> int:
    from edgelearn.shared import shared_dir

    info = environment()
    info["shared"] = str(shared_dir()) if shared_dir() else None
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="edgelearn", description="Learning on edge devices: kernels, "
                                "forward-gradient fine-tuning, cost estimates.", formatter_class=fmt,
                                epilog="run 'edgelearn COMMAND --help' for examples")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="kernel vs reference vs outside baseline, with the issues' goals as claims",
                       epilog=EXAMPLES_BENCH, formatter_class=fmt)
    b.add_argument("--family", help=f"one of: {', '.join(BENCH_FAMILIES)} (default: all)")
    b.add_argument("--quick", action="store_true", help="smaller repetitions (same shapes where goals name them)")
    b.add_argument("--json", metavar="PATH", help="write {environment, results, claims} here")
    b.set_defaults(fn=cmd_bench)

    f = sub.add_parser("finetune", help="forward-gradient fine-tuning of MiniLM + LoRA on AG News (the main job)",
                       epilog=EXAMPLES_FINETUNE, formatter_class=fmt)
    f.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    f.add_argument("--batch", type=int, default=8)
    f.add_argument("--max-len", type=int, default=64, help="tokens per example")
    f.add_argument("-K", type=int, default=16, help="perturbation seeds per step (central: 2K forwards)")
    f.add_argument("--lr", type=float, default=None)
    f.add_argument("--eps", type=float, default=None)
    f.add_argument("--lora-layers", type=int, nargs="+", default=None, help="encoder layers that get LoRA")
    f.add_argument("--mode", choices=["central", "forward"], default=None,
                   help="central: (L+ - L-)/2eps per seed (2K streams); forward: (L_k - L_0)/eps (K+1 streams)")
    f.add_argument("--schedule", choices=["constant", "cosine", "linear"], default=None, help="learning-rate schedule")
    f.add_argument("--lora-scale", type=float, default=None, help="perturbation scale of LoRA tensors relative to the head")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--eval-size", type=int, default=None, help="held-out examples to evaluate on")
    f.add_argument("--no-progress", action="store_true")
    f.add_argument("--json", metavar="PATH", help="write the history and results here")
    f.add_argument("--plot", metavar="PNG", help="plot loss and accuracy against steps")
    f.set_defaults(fn=cmd_finetune)

    for modname in SUBCOMMAND_MODULES:  # each adds its command group with register(sub, fmt)
        importlib.import_module(modname).register(sub, fmt)

    i = sub.add_parser("info", help="version, SIMD level, threads, where the shared data is")
    i.set_defaults(fn=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "finetune":
        for name in ("steps", "batch", "max_len", "K", "eval_size"):
            value = getattr(args, name)
            if value is not None and value < 1:
                parser.error(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    try:
        return args.fn(args)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"edgelearn: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"edgelearn: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgelearn: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
