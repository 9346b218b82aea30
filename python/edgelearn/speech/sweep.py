"""Operating points of one trained masker on selection data: for each gate threshold D (keep a segment when
log_alpha > D, as ``train.shift_threshold``), the kept fraction, clean and masked intent accuracy and both ASR
attackers' masked WER, per set and pooled, with 95% bootstrap intervals.

Selection data are the speakers used to choose settings: the training run's validation speakers, the corpus's own
test split once it has been looked at, and test-only corpora (``speech synth --fresh-test``) already evaluated once.
The attackers decode the same files at every D (the first n of one seeded order per set), so the curve compares
thresholds, not files. The cloud models are the model directory's, unchanged: a sweep shows where to move the
operating point before fine-tuning the cloud there (``speech threshold``, then ``speech finetune --warm``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgelearn.bench import Report
from edgelearn.speech.attacks import ratio_ci
from edgelearn.speech.evaluate import correct
from edgelearn.speech.mask import apply_mask, gates_for
from edgelearn.speech.models import WarpAverageSLU
from edgelearn.speech.train import feats_of, load_corpus, load_models, masked_wave, shifted_gatenet, validation_split

GRAMMARS = ("trigram", "jsgf")


def selection_sets(corpus_dir, state: dict, names) -> dict:
    """{name: Corpus}: "validation" and "test" are corpus_dir's splits; any other name is a test-only corpus dir."""
    full = load_corpus(corpus_dir)
    if full.intents != state["intents"]:
        raise ValueError(f"corpus: {corpus_dir} has other intents than the models")
    out = {}
    for name in names:
        if name == "validation":
            _, val = validation_split(full, state)
            if not val.any():
                raise ValueError("sets: the models were trained without validation speakers (--val-speakers 0)")
            out[name] = full.subset(val)
        elif name == "test":
            out[name] = full.subset(full.split == "test")
        else:
            c = load_corpus(name)
            if c.intents != state["intents"]:
                raise ValueError(f"sets: {name} has other intents than the models")
            if Path(name).name in out:
                raise ValueError(f"sets: {Path(name).name} given twice")
            out[Path(name).name] = c
    if not out:
        raise ValueError("sets: give one or more of validation, test or a corpus directory")
    return out


def sweep(corpus_dir, model_dir, deltas, sets=("validation", "test"), warps=None, n_asr: int = 40,
          n_asr_lm: int = 40, seed: int = 0, log=print) -> Report:
    """One result per D in deltas (ascending): per set and pooled kept fraction, intent (clean, masked, drop in
    points with paired bootstrap intervals over utterances and over speakers), and per attacker the masked WER (the
    stronger of as-sent and noise-filled decoding, pooled over n files per set, intervals over files and over
    speakers). Clean WER once, in the first row."""
    deltas = sorted(float(d) for d in deltas)
    if not deltas or not all(np.isfinite(d) for d in deltas):
        raise ValueError(f"deltas: one or more finite thresholds, got {deltas}")
    if n_asr < 0 or n_asr_lm < 0:
        raise ValueError(f"n_asr, n_asr_lm: must be >= 0, got {n_asr}, {n_asr_lm}")
    ms = load_models(model_dir)
    st = ms["state"]
    if st.get("settings", {}).get("normalise", False):
        raise ValueError(f"{model_dir}: speaker-normalising models are not supported by the sweep (use speech eval)")
    data = selection_sets(corpus_dir, st, sets)
    clean_m, masked_m = ms["cloud"], ms["cloud_masked"]
    if warps is not None:
        clean_m, masked_m = WarpAverageSLU(clean_m, warps).eval(), WarpAverageSLU(masked_m, warps).eval()
    full = load_corpus(corpus_dir)
    lm_texts = [u["text"] for u in full.utts if u["split"] == "train"]
    n_of = {"trigram": n_asr_lm, "jsgf": n_asr}
    picks = {name: np.sort(np.random.default_rng(seed).permutation(len(c.ids))) for name, c in data.items()}
    asrs = {}
    ok_clean = {name: correct(clean_m, feats_of(c.wave), c.intent) for name, c in data.items()}
    rep = Report("speech")
    t0 = time.time()
    for di, delta in enumerate(deltas):
        g = shifted_gatenet(ms["gatenet"], delta)
        row = {"name": "operating_point", "delta": delta, "sets": {}}
        oc, om, who, kept, segs = [], [], [], 0, 0
        gates = {}
        for name, c in data.items():
            gates[name] = [gates_for(g, c.int16(i), ms["block"]) for i in range(len(c.ids))]
            ok_m = correct(masked_m, feats_of(masked_wave(c, gates[name])), c.intent)
            k, s = sum(int(x.sum()) for x in gates[name]), sum(x.size for x in gates[name])
            row["sets"][name] = {"n": len(c.ids), "kept": k / s, "clean": float(ok_clean[name].mean()),
                                 "masked": float(ok_m.mean())}
            oc.append(ok_clean[name]), om.append(ok_m), who.extend(f"{name}/{c.speakers[k]}" for k in c.speaker)
            kept, segs = kept + k, segs + s
        oc, om = np.concatenate(oc), np.concatenate(om)
        diff, ones = oc.astype(float) - om, np.ones(oc.size)
        row["pooled"] = {"n": int(oc.size), "kept": kept / segs, "clean": float(oc.mean()), "masked": float(om.mean()),
                         "drop_points": 100 * float(diff.mean()),
                         "drop_points_ci95": [100 * v for v in ratio_ci(diff, ones, seed=seed)],
                         "drop_points_ci95_speakers": [100 * v for v in ratio_ci(diff, ones, seed=seed, groups=who)]}
        for grammar in GRAMMARS:
            n = n_of[grammar]
            if n == 0:
                continue
            if grammar not in asrs:
                from edgelearn.speech.attacks import SphinxASR

                asrs[grammar] = SphinxASR(grammar, lm_texts)
            row["pooled"][grammar] = _attack(asrs[grammar], data, gates, picks, n, seed, row, grammar, di == 0)
        rep.add(**row)
        p = row["pooled"]
        msg = ", ".join(f"{gr} WER {p[gr]['wer_masked']:.3f}" for gr in GRAMMARS if gr in p)
        log(f"D={delta:g}: kept {p['kept']:.3f}, intent {p['clean']:.4f} -> {p['masked']:.4f} "
            f"(drop {p['drop_points']:.2f} points){', ' + msg if msg else ''} ({time.time() - t0:.0f}s)")
    return rep


def _attack(asr, data, gates, picks, n, seed, row, grammar, with_clean) -> dict:
    """Masked WER of one attacker over the first n picked files of every set (stronger of as-sent and noise-filled,
    chosen on the pooled files), per set and pooled; clean WER too when with_clean."""
    from edgelearn.speech.attacks import asr_attack, fill_silence

    pooled = {"plain": ([], []), "filled": ([], []), "clean": ([], [])}
    who = []
    for name, c in data.items():
        pk = picks[name][:n]
        utts = [c.utts[i] for i in pk]
        xm = [apply_mask(c.int16(i), gates[name][i]) for i in pk]
        runs = {"plain": asr_attack(asr, xm, utts),
                "filled": asr_attack(asr, [fill_silence(x, seed + j) for j, x in enumerate(xm)], utts)}
        if with_clean:
            runs["clean"] = asr_attack(asr, [c.int16(i) for i in pk], utts)
        for k, r in runs.items():
            pooled[k][0].extend(r["word_errors"]), pooled[k][1].extend(r["words"])
        row["sets"][name][grammar] = {k: r["wer"] for k, r in runs.items()}
        who.extend(f"{name}/{c.speakers[c.speaker[i]]}" for i in pk)
    out = {}
    for k, (e, w) in pooled.items():
        if e:
            out[f"wer_{k}"] = float(np.sum(e) / max(np.sum(w), 1))
    best = min(("plain", "filled"), key=lambda k: out[f"wer_{k}"])
    e, w = pooled[best]
    out.update(wer_masked=out[f"wer_{best}"], masked_decoding=best, wer_masked_ci95=list(ratio_ci(e, w, seed=seed)),
               wer_masked_ci95_speakers=list(ratio_ci(e, w, seed=seed, groups=who)), files=len(e))
    return out


def plot_sweep(rep: Report, path) -> None:
    """Intent drop against each attacker's masked WER, one point per threshold (labelled D)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rep.results if r.get("name") == "operating_point"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for gi, grammar in enumerate(GRAMMARS):
        pts = [(r["pooled"][grammar]["wer_masked"], r["pooled"]["drop_points"], r["delta"]) for r in rows
               if grammar in r["pooled"]]
        if not pts:
            continue
        x, y, d = zip(*pts)
        ax.plot(x, y, "o-", color=f"C{gi}", label=f"{grammar} attacker")
        for xi, yi, di in pts:
            ax.annotate(f"D={di:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axvline(0.70, color="0.5", ls="--", lw=0.8)
    ax.axhline(3.0, color="0.5", ls="--", lw=0.8)
    ax.set(xlabel="masked WER (higher = more private)", ylabel="intent drop, points (lower = more useful)",
           title="operating points on selection data (goals: dashed)")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
