#!/usr/bin/env python3
"""Maskers judged after the cloud adapts to them: each masker's device gates (at its own calibrated threshold) mask
a fixed subset of the training utterances, a copy of the clean cloud model is fine-tuned on them for a few epochs,
and its intent accuracy is measured on selection audio masked by the same masker. Random gates at the same kept
fraction go through the same steps. A frozen clean model (it has never heard holes) or a model fine-tuned on random
masks (it has only heard random holes) would each favour one kind of mask; this judge gives every mask the same
short adaptation. docs/speech.md, fourteenth step.

    .venv/bin/python examples/masker_judge.py --corpus runs/speech/corpus180xh --cloud runs/speech/s13/c60 \\
        --maskers v60k=runs/speech/s13/v60k,A0=runs/speech/s14/gates_A/tanh_lagrangian_s0.pt \\
        --json runs/speech/s14/judge.json
"""
import argparse
import copy
import time

import numpy as np
import torch

from edgelearn.speech.models import GateNet
from edgelearn.speech.train import (accuracy, feats_of, hard_gates, kept_fraction, masked_wave, random_gates_for,
                                    train_classifier)
from masker_common import load_run, write_record


def load_gatenet(path: str) -> GateNet:
    """A speech train/threshold directory (its gate network) or a saved GateNet state dict (.pt)."""
    state = torch.load(path if path.endswith(".pt") else f"{path}/speech_models.pt", weights_only=False)
    g = GateNet()
    g.load_state_dict(state if path.endswith(".pt") else state["gatenet"])
    return g.eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--cloud", required=True, help="a speech train run whose clean cloud model is fine-tuned")
    ap.add_argument("--maskers", required=True, help="NAME=PATH,... (a model directory or a GateNet state .pt)")
    ap.add_argument("--utts", type=int, default=4000, help="training utterances of the short fine-tuning")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--sets", default="validation,test", help="selection audio: validation and/or test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    full, fit, val, run = load_run(a.corpus, a.cloud)
    sel = np.zeros(len(full.ids), bool)
    if "validation" in a.sets:
        sel |= val
    if "test" in a.sets:
        sel |= full.split == "test"
    tr = full.subset(fit)
    sub = np.sort(np.random.default_rng(11).permutation(len(tr.ids))[: a.utts])
    tr, se = tr.subset(np.isin(np.arange(len(tr.ids)), sub)), full.subset(sel)
    ftr, fse = feats_of(tr.wave), feats_of(se.wave)
    clean = run["cloud"]
    print(f"fine-tuning on {len(tr.ids)} training utterances, {a.epochs} epochs; selection: {len(se.ids)} "
          f"utterances ({a.sets}); clean accuracy {accuracy(clean, fse, se.intent):.4f}", flush=True)

    def adapt_and_score(name, gates_tr, gates_se, seed):
        t0 = time.time()
        m = train_classifier(copy.deepcopy(clean), feats_of(masked_wave(tr, gates_tr)), tr.intent, epochs=a.epochs,
                             seed=seed, augment=True, voice_aug=True, log=lambda s: None)
        acc = accuracy(m, feats_of(masked_wave(se, gates_se)), se.intent)
        print(f"  {name}: accuracy {acc:.4f} ({time.time() - t0:.0f}s)", flush=True)
        return acc

    rows = []
    for item in a.maskers.split(","):
        name, path = item.split("=", 1)
        g = load_gatenet(path)
        gt, gs = hard_gates(g, ftr, tr.length, 1, True), hard_gates(g, fse, se.length, 1, True)
        kt, ks = kept_fraction(gt), kept_fraction(gs)
        learned = adapt_and_score(f"{name} (kept {kt:.3f} train, {ks:.3f} selection)", gt, gs, 0)
        rand = adapt_and_score(f"{name} random at the same kept fraction", random_gates_for(tr, kt, 1),
                               random_gates_for(se, ks, 2), 0)
        rows.append({"name": name, "path": path, "kept_train": kt, "kept_selection": ks, "masked": learned,
                     "random": rand})
        print(f"{name}: kept {ks:.3f}, masked {learned:.4f}, random {rand:.4f}, learned - random "
              f"{100 * (learned - rand):+.1f} points", flush=True)
    write_record(a.json, a, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
