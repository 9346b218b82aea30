"""`edgelearn fl run CONFIG.toml [--json PATH] [--resume]`: the federated experiments.

Hooked into the main CLI with ``from edgelearn.fl.cli import register; register(sub, fmt)``.
"""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLES = """examples:
  edgelearn fl run configs/fl_fwdllm_quick.toml --json runs/fl_quick.jsonl     FwdLLM vs FedAvg, a few minutes
  edgelearn fl run configs/fl_agnews.toml --json runs/fl_agnews.jsonl --jobs 2 the full AG News experiment
  edgelearn fl run configs/fl_agnews.toml --json runs/fl_agnews.jsonl --resume continue a killed run exactly
  edgelearn fl run configs/fl_faults_quick.toml                                30% dropout + 5% bad updates

output: one JSON object per round and variant (round, accuracy, loss, sim_time_s, bytes_up, bytes_down, clients,
peak_client_mem_bytes, ...), then {"summary": true, "variants": {...}, "claims": [...]}; a plot of accuracy
against rounds and simulated time beside the JSON (PATH.png). Exit code 0 when every claim holds, 1 otherwise.
"""


def cmd_fl_run(args: argparse.Namespace) -> int:
    from .config import run_config

    progress = args.progress or (sys.stderr.isatty() and not args.quiet)

    def echo(rec):
        if rec.get("summary") or progress:
            return
        if rec.get("accuracy") is not None and not args.quiet:
            print(f"[{rec.get('variant', '')}] round {rec['round']:4d}  acc {rec['accuracy']:.4f}  "
                  f"sim {rec['sim_time_s']:.1f}s  up {rec['bytes_up']} B", flush=True)

    summary = run_config(args.config, json_path=args.json, resume=args.resume, progress=progress,
                         plot=args.plot, out_dir=args.out_dir, echo=echo, jobs=args.jobs)
    for name, s in summary["variants"].items():
        acc = s.get("accuracy_final")
        print(f"{name}: accuracy {acc if acc is None else round(acc, 4)}  sim {s['sim_time_s']:.1f}s  "
              f"up {s['bytes_up_total']} B  peak mem {s['peak_client_mem_bytes'] / 2**20:.1f} MiB  "
              f"rejected {s['rejected_total']}  dropped {s['dropped_total']}  infeasible {s['infeasible_total']}")
    for c in summary["claims"]:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['value']:.4g} (target {c['target']})")
    if args.json:
        print(f"wrote {args.json}" + (f" and {summary['plot']}" if summary.get("plot") else ""))
    return 0 if all(c["ok"] for c in summary["claims"]) else 1


def register(sub, fmt=argparse.RawDescriptionHelpFormatter) -> argparse.ArgumentParser:
    """Add the `fl` command group to the main CLI's subparsers."""
    fl = sub.add_parser("fl", help="federated learning: FwdLLM / FedAvg experiments on the in-process engine",
                        epilog=EXAMPLES, formatter_class=fmt)
    flsub = fl.add_subparsers(dest="fl_command", required=True)
    r = flsub.add_parser("run", help="run a federated experiment config (TOML)", epilog=EXAMPLES, formatter_class=fmt)
    r.add_argument("config", help="experiment config (configs/fl_*.toml)")
    r.add_argument("--json", metavar="PATH", help="write JSON lines here (rounds, then a summary with claims)")
    r.add_argument("--resume", action="store_true", help="continue from the checkpoints of a killed run")
    r.add_argument("--plot", metavar="PNG", help="plot path (default: beside --json)")
    r.add_argument("--out-dir", metavar="DIR", help="checkpoint folder (default: run.out_dir or beside --json)")
    r.add_argument("--progress", action="store_true", help="progress bars (the default on a terminal) instead of per-evaluation lines")
    r.add_argument("--quiet", action="store_true", help="only the summary")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run the variants side by side in N processes (threads are split between them)")
    r.set_defaults(fn=cmd_fl_run)
    return fl


def main(argv=None) -> int:
    """Stand-alone entry (python -m edgelearn.fl.cli run ...) until the main CLI hooks `fl` in."""
    p = argparse.ArgumentParser(prog="edgelearn", formatter_class=argparse.RawDescriptionHelpFormatter)
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"edgelearn: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
