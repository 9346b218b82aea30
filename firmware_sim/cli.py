"""`edgelearn estimate` and `edgelearn targets` (registered into the main CLI by register())."""

from __future__ import annotations

import argparse
import json

EXAMPLES_ESTIMATE = """examples:
  edgelearn estimate ../shared/models/mlperf_tiny/vww_96_int8.tflite --target stm32h7a3
  edgelearn estimate kws_ref_model.tflite --target stm32u575 --stack tflm-cmsis-nn --json runs/kws.json
  edgelearn estimate model.tflite --target corstone300-u55-128 --plot runs/layers.png
  edgelearn estimate model.tflite --target my_board.toml     (a profile of your own)
stacks: xcubeai (default on MCUs), tflm-cmsis-nn, tflm-reference; vela (Ethos-U); mobile-cpu, mobile-npu
"""

EXAMPLES_TARGETS = """examples:
  edgelearn targets
  edgelearn targets --json runs/targets.json
"""


def cmd_estimate(args: argparse.Namespace) -> int:
    from firmware_sim import report
    from firmware_sim.estimate import estimate

    e = estimate(args.model, args.target, args.stack)
    print(report.text(e, layers=not args.no_layers))
    if args.json:
        report.write_json(e, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        report.plot(e, args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from firmware_sim.targets import list_targets

    ts = list_targets()
    rows = []
    for t in ts:
        sram = ", ".join(f"{m.name} {m.size_bytes // 1024}K" for m in t.srams)
        fl = t.flash
        rows.append({"name": t.name, "title": t.title, "kind": t.kind, "core": t.core, "clock_mhz": t.clock_mhz,
                     "active_power_mw": t.active_power_mw, "sram": sram,
                     "flash_kb": fl.size_bytes // 1024 if fl else 0, "path": t.path})
    print(f"{'name':22s} {'core':12s} {'MHz':>6s} {'mW':>7s} {'flash':>8s}  SRAM banks")
    for r in rows:
        print(f"{r['name']:22s} {r['core']:12s} {r['clock_mhz']:>6g} {r['active_power_mw']:>7g} "
              f"{r['flash_kb']:>7}K  {r['sram']}")
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(sub, fmt) -> None:
    e = sub.add_parser("estimate", help="latency, energy, arena and flash of a model on a microcontroller or NPU",
                       epilog=EXAMPLES_ESTIMATE, formatter_class=fmt)
    e.add_argument("model", help=".tflite file")
    e.add_argument("--target", required=True, help="profile name (see `edgelearn targets`) or a .toml path")
    e.add_argument("--stack", default=None, help="inference stack (default: xcubeai on MCUs, vela on Ethos-U)")
    e.add_argument("--json", metavar="PATH", help="write the estimate as JSON (DESIGN.md contract)")
    e.add_argument("--plot", metavar="PNG", help="bar chart of per-layer time")
    e.add_argument("--no-layers", action="store_true", help="totals only, no per-layer table")
    e.set_defaults(fn=cmd_estimate)

    t = sub.add_parser("targets", help="list the device profiles", epilog=EXAMPLES_TARGETS, formatter_class=fmt)
    t.add_argument("--json", metavar="PATH", help="write the profiles' summary as JSON")
    t.set_defaults(fn=cmd_targets)
