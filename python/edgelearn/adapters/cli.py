"""`edgelearn adapters export|train|eval|list|quick`: the int8 backbone and its adapter bank from the command line."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """examples:
  edgelearn adapters export minilm.int8                      # calibrate + quantize MiniLM-L6, print its sha256
  edgelearn adapters train minilm.int8 bank/ --app ag_news --steps 200
  edgelearn adapters train minilm.int8 bank/ --app sst2 --method zo --steps 300
  edgelearn adapters eval minilm.int8 bank/ --app sst2 --json out.json
  edgelearn adapters list minilm.int8 bank/
  edgelearn adapters quick minilm.int8 bank/ --json acc.json  # fp32 vs int8 backbone accuracy, both apps
  edgelearn adapters cost minilm.int8 --target phone-soc corstone300-u55-256 --seq-len 64   # firmware_sim
"""


def _emit(obj, args) -> None:
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(obj, f, indent=1)
    print(json.dumps(obj, indent=1))


def _cfg(args):
    from .train import TrainConfig

    return TrainConfig(steps=args.steps, batch=args.batch, max_len=args.max_len, lr=args.lr,
                       train_size=args.train_size, eval_size=args.eval_size, seed=args.seed)


def _handler(args) -> int:
    from .backbone import BackboneError
    from .bank import AdapterError

    try:
        return _run(args)
    except (BackboneError, AdapterError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(args) -> int:
    from . import AdapterBank, AdapterSpec, Int8Backbone, export_minilm

    if args.action == "export":
        sha = export_minilm(args.backbone, calibration=args.calibration, max_len=args.max_len)
        _emit({"backbone": str(args.backbone), "sha256": sha}, args)
        return 0
    if args.action == "cost":
        from .cost import backbone_cost

        rows = backbone_cost(Int8Backbone(args.backbone), args.target, args.seq_len)
        _emit({"backbone": str(args.backbone), "estimates": rows}, args)
        return 0
    bank = AdapterBank(Int8Backbone(args.backbone), args.bank)
    if args.action == "list":
        _emit({"backbone_sha256": bank.backbone.sha256, "adapters": bank.apps()}, args)
        return 0
    from .train import Prefixes, app_data, evaluate, quick_compare, run_app

    if args.action == "quick":
        out = quick_compare(args.backbone, args.bank, cfg=_cfg(args), log=None if args.quiet else print)
        from ..cli import environment  # the bench JSON contract: environment, results, claims

        _emit({"environment": environment(), **out}, args)
        return 0 if all(c["ok"] for c in out["claims"]) else 1
    if args.action == "train":
        spec = AdapterSpec(layers=tuple(args.layers), r=args.r, alpha=2.0 * args.r)
        n = app_data(args.app, _cfg(args))[1].num_classes
        model = bank.new_model(args.app, n, spec, args.seed)
        res = run_app(model, args.app, _cfg(args), args.method, log=None if args.quiet else print)
        bank.save(args.app, res["classes"], spec, {"acc": res["acc"], "method": args.method, "steps": args.steps})
        _emit(res, args)
        return 0
    # eval
    from ..data import tokenize
    from ..zo.bert import load_tokenizer

    model = bank.activate(args.app)
    ev = tokenize(app_data(args.app, _cfg(args))[1], load_tokenizer(), args.max_len)
    _emit({"app": args.app, "acc": evaluate(model, Prefixes(model, ev, 64)), "eval_size": len(ev),
           "backbone_sha256": bank.backbone.sha256}, args)
    return 0


def register(sub, fmt=argparse.RawDescriptionHelpFormatter) -> None:
    """Add `adapters` with its actions to the `edgelearn` subparsers `sub`."""
    p = sub.add_parser("adapters", help="int8 backbone + per-app adapters (export, train, eval, list, quick, cost)",
                       description="One frozen int8 MiniLM backbone, many apps' LoRA + head adapters.",
                       epilog=EPILOG, formatter_class=fmt)
    acts = p.add_subparsers(dest="action", required=True)
    for name, help_ in [("export", "quantize + calibrate MiniLM-L6 to an int8 backbone file"),
                        ("train", "train one app's adapter on the int8 backbone and save it in the bank"),
                        ("eval", "evaluate an app's adapter from the bank"),
                        ("list", "list the bank's adapters and whether they match the backbone"),
                        ("quick", "the same adapters on fp32 and int8 backbones: accuracy claims"),
                        ("cost", "firmware_sim estimate of the int8 backbone on device profiles")]:
        a = acts.add_parser(name, help=help_, epilog=EPILOG, formatter_class=fmt)
        a.add_argument("backbone", help="int8 backbone file")
        if name == "cost":
            a.add_argument("--target", nargs="+", default=["phone-soc", "corstone300-u55-256"], help="device profiles (edgelearn targets)")
            a.add_argument("--seq-len", type=int, default=64, help="tokens of the one sequence costed")
            a.add_argument("--json", metavar="PATH", help="also write the result as JSON")
            a.set_defaults(fn=_handler)
            continue
        if name != "export":
            a.add_argument("bank", help="adapter folder (<bank>/<app>.pt)")
        if name in ("train", "eval"):
            a.add_argument("--app", required=True, choices=["ag_news", "sst2"])
        if name == "train":
            a.add_argument("--method", default="backprop", choices=["backprop", "zo", "int8"])
            a.add_argument("--layers", type=int, nargs="+", default=[4, 5])
            a.add_argument("--r", type=int, default=8)
        if name == "export":
            a.add_argument("--calibration", type=int, default=128, help="calibration sentences")
        a.add_argument("--steps", type=int, default=200)
        a.add_argument("--batch", type=int, default=16)
        a.add_argument("--max-len", type=int, default=64)
        a.add_argument("--lr", type=float, default=2e-3)
        a.add_argument("--train-size", type=int, default=1024)
        a.add_argument("--eval-size", type=int, default=400)
        a.add_argument("--seed", type=int, default=0)
        a.add_argument("--quiet", action="store_true")
        a.add_argument("--json", metavar="PATH", help="also write the result as JSON")
        a.set_defaults(fn=_handler)
