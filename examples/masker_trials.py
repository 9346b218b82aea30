#!/usr/bin/env python3
"""Masker variants at equal (zero) cloud budget: each trains one masker round against the same frozen clean cloud
model, is calibrated to the same kept fraction on the training utterances, and is scored on the validation speakers
by that frozen cloud's intent accuracy on the audio its device gates mask (the masker's own objective), next to
random gates at the same kept fraction. docs/speech.md, fourteenth step.

    .venv/bin/python examples/masker_trials.py --corpus runs/speech/corpus180xh --cloud runs/speech/s13/c60 \\
        --params clamp,tanh,inward --json runs/speech/s14/trials.json
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from edgelearn.speech.models import GateNet
from edgelearn.speech.train import (GATE_PARAMS, accuracy, feats_of, hard_gates, kept_fraction, kept_threshold,
                                    load_models, log_alphas, masked_wave, n_frames, random_gates_for,
                                    shifted_gatenet, train_masker)
from masker_common import load_run, write_record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--cloud", required=True, help="a speech train run whose clean cloud model is used, frozen")
    ap.add_argument("--params", default="clamp,tanh,inward", help=f"comma list of {sorted(GATE_PARAMS)}")
    ap.add_argument("--keep-target", type=float, default=0.40, help="the masker's kept budget in training")
    ap.add_argument("--kept", type=float, default=0.315, help="kept fraction the gates are calibrated to")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr-dual", type=float, default=0.5)
    ap.add_argument("--budget", default="lagrangian", choices=["lagrangian", "shift"])
    ap.add_argument("--anneal", action="store_true", help="cosine decay of the masker's and the multiplier's steps")
    ap.add_argument("--mask-utts", type=int, default=1600)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hole-model", metavar="DIR", help="a speech train run whose random-mask cloud model (fine-tuned "
                    "on random gates) judges every masker too: accuracy on the masked validation audio of a model "
                    "that copes with holes but knows no masker")
    ap.add_argument("--teacher", choices=["clean", "holes"], default="clean", help="the model the masker's KL is "
                    "measured against: the clean cloud, or --hole-model's random-mask model")
    ap.add_argument("--save", metavar="DIR", help="keep each calibrated gate network here")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    full, fit, val, run = load_run(a.corpus, a.cloud)
    tr, va = full.subset(fit), full.subset(val)
    cloud = run["cloud"]
    holes = None
    if a.hole_model:
        holes = load_models(a.hole_model)["cloud_random"]
    if a.teacher == "holes" and holes is None:
        ap.error("--teacher holes needs --hole-model")
    teacher = holes if a.teacher == "holes" else cloud
    ftr, fva = feats_of(tr.wave), feats_of(va.wave)
    flat = torch.cat([ftr[i, : n_frames(int(n))] for i, n in enumerate(tr.length)])
    sub = np.sort(np.random.default_rng(run["state"].get("seed", 0)).permutation(len(tr.ids))[: a.mask_utts])
    clean = accuracy(cloud, fva, va.intent)
    print(f"validation: {len(va.ids)} utterances, clean accuracy {clean:.4f}", flush=True)
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        for param in a.params.split(","):
            t0 = time.time()
            torch.manual_seed(seed)
            g = GateNet()
            g.mean.copy_(flat.mean(0))
            g.std.copy_(flat.std(0) + 1e-3)
            hist = train_masker(teacher, g, tr.wave[sub], ftr[sub], tr.length[sub], epochs=a.epochs, bs=16,
                                lr_dual=a.lr_dual, seed=seed, keep_target=a.keep_target, kl_cvar=0.25,
                                gate_param=param, anneal=a.anneal, budget=a.budget,
                                log=lambda s: print(f"  [{param} seed {seed}] {s}", flush=True))
            for m in (cloud, holes):
                for p in (m.parameters() if m is not None else []):
                    p.requires_grad_(False)
            hard0 = kept_fraction(hard_gates(g, ftr, tr.length, 1, True))
            delta = kept_threshold(g, ftr, tr.length, a.kept, 1, True)
            gc = shifted_gatenet(g, delta)
            vg = hard_gates(gc, fva, va.length, 1, True)
            vfrac = kept_fraction(vg)
            fm, fr = feats_of(masked_wave(va, vg)), feats_of(masked_wave(va, random_gates_for(va, vfrac, seed + 1)))
            masked, rand = accuracy(cloud, fm, va.intent), accuracy(cloud, fr, va.intent)
            judge = {} if holes is None else {"holes_masked": accuracy(holes, fm, va.intent),
                                              "holes_random": accuracy(holes, fr, va.intent)}
            if a.save:
                Path(a.save).mkdir(parents=True, exist_ok=True)
                torch.save(gc.state_dict(), Path(a.save) / f"{param}_{a.budget}_s{seed}.pt")
            la = log_alphas(g, fva, va.length, 1, True).numpy()
            row = {"param": param, "seed": seed, "train_hard_kept_uncalibrated": hard0, "delta": delta,
                   "val_kept": vfrac, "val_masked": masked, "val_random": rand, "val_clean": clean,
                   "raw_p05": float(np.quantile(la, 0.05)), "raw_p95": float(np.quantile(la, 0.95)),
                   "teacher": a.teacher, "budget": a.budget, "anneal": a.anneal, **judge,
                   "history": hist, "wall_s": time.time() - t0}
            rows.append(row)
            print(f"{param} seed {seed}: uncalibrated hard kept {hard0:.3f}, delta {delta:+.2f}; validation kept "
                  f"{vfrac:.3f}, masked {masked:.4f}, random {rand:.4f}; raw log_alpha 5-95% "
                  f"{row['raw_p05']:.1f}..{row['raw_p95']:.1f}"
                  + (f"; hole model: masked {judge['holes_masked']:.4f}, random {judge['holes_random']:.4f}"
                     if judge else "") + f" ({row['wall_s']:.0f}s)", flush=True)
    write_record(a.json, a, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
