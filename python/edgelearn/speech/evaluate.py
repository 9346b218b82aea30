"""Evaluation of the trained pipeline on the held-out test speakers: utility, privacy and cost goals as claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgelearn.bench import Report
from edgelearn.speech.features import features
from edgelearn.speech.mask import gates_for
from edgelearn.speech.train import (accuracy, feats_of, kept_fraction, load_corpus, load_models, masked_wave,
                                    random_gates_for)


def cost_claims(report: Report, blob=None, seconds: float = 4.0) -> dict:
    """Front-end + gate network on an STM32H743 (Cortex-M7, 480 MHz) from the kernels' operation counts.
    Assumptions (stated): 1 MAC ~ 1 cycle for int8/q15 (SMLAD does 2 per cycle: halved to cover loads), each log
    ~ 40 cycles, 1.5x overhead for loop control and memory; RAM = the kernels' own count (features kept offline)."""
    from edgelearn.kernels.speech import speech_cost

    c = speech_cost(seconds, net=blob) if blob is not None else speech_cost(seconds)
    cycles = 1.5 * (c["total_macs"] + 40 * c["log_evals"])
    ms = cycles / 480e6 * 1e3
    # VAE-style disentanglement encoder sized like the paper's baseline (conv encoder over the log-mel: 4 conv
    # layers 40->128->128->128->2x64, k=5, all frames), counted the same way; activations of two layers at once.
    T = c["frames"]
    vae_macs = T * 5 * (40 * 128 + 128 * 128 * 2 + 128 * 128) + c["frontend_macs"]
    vae_ms = 1.5 * (vae_macs + 40 * c["log_evals"]) / 480e6 * 1e3
    vae_ram = T * 128 * 2 + T * 40 * 2 + (40 * 128 + 128 * 128 * 2 + 128 * 128) * 5  # int8 acts + q15 feats + weights
    report.claim("cost: front-end + gates, 4 s on STM32H743 (ms, op counts)", ms, "<= 100")
    report.claim("cost: RAM of front-end + gates (KB)", c["ram_bytes"] / 1024, "<= 64")
    report.add(name="cost", ms=ms, ram_kb=c["ram_bytes"] / 1024, macs=c["total_macs"], vae_ms=vae_ms,
               vae_ram_kb=vae_ram / 1024, latency_ratio_vae=vae_ms / ms, ram_ratio_vae=vae_ram / c["ram_bytes"],
               silence_s_paper_ms=912.0, silence_s_paper_kb=394.9)
    return {"ms": ms, "ram_kb": c["ram_bytes"] / 1024, "vae_ms": vae_ms, "vae_ram_kb": vae_ram / 1024}


def evaluate(corpus_dir, model_dir, n_asr: int = 48, seed: int = 0, plot: str | None = None, log=print) -> Report:
    rep = Report("speech")
    full = load_corpus(corpus_dir)
    te = full.subset(full.split == "test")
    ms = load_models(model_dir)
    g = ms["gatenet"]
    blob_path = Path(model_dir) / "gatenet_s8.bin"
    blob = np.frombuffer(blob_path.read_bytes(), np.uint8) if blob_path.is_file() else None
    gates = [gates_for(g, te.int16(i)) for i in range(len(te.ids))]
    frac = kept_fraction(gates)
    f_clean = feats_of(te.wave)
    f_mask = feats_of(masked_wave(te, gates))
    f_rand = feats_of(masked_wave(te, random_gates_for(te, frac, seed + 1)))
    acc = {"clean": accuracy(ms["cloud"], f_clean, te.intent),
           "masked_frozen_cloud": accuracy(ms["cloud"], f_mask, te.intent),
           "masked": accuracy(ms["cloud_masked"], f_mask, te.intent),
           "random_frozen_cloud": accuracy(ms["cloud"], f_rand, te.intent),
           "random": accuracy(ms["cloud_random"], f_rand, te.intent)}
    log(f"kept fraction {frac:.3f}; intent accuracy {acc}")
    rep.add(name="intent_accuracy", kept_fraction=frac, n_test=len(te.ids), **acc)
    rep.claim("utility: intent acc drop, masked vs clean (points)", 100 * (acc["clean"] - acc["masked"]), "<= 3")
    rep.claim("utility: learned mask minus random mask, same kept fraction (points)",
              100 * (acc["masked"] - acc["random"]), ">= 0.01")
    rep.claim("mask: kept fraction of segments", frac, "<= 1")
    if blob is not None:
        from edgelearn.speech.export import gates_s8

        pairs = [(gates_s8(blob, te.int16(i)), gates[i]) for i in range(len(te.ids))]
        agree = np.mean(np.concatenate([a[: min(a.size, b.size)] == b[: min(a.size, b.size)] for a, b in pairs]))
        rep.add(name="int8_gates", agreement_with_float=float(agree))
        log(f"int8 kernel gates agree with float gates on {agree:.3f} of segments")
    # ASR attacker
    from edgelearn.speech.attacks import SphinxASR, asr_attack, speaker_attack
    from edgelearn.speech.mask import apply_mask

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(te.ids), min(n_asr, len(te.ids)), replace=False))
    asr = SphinxASR()
    clean = asr_attack(asr, [te.int16(i) for i in pick], [te.utts[i] for i in pick])
    masked = asr_attack(asr, [apply_mask(te.int16(i), gates[i]) for i in pick], [te.utts[i] for i in pick])
    log(f"ASR clean WER {clean['wer']:.3f} entity err {clean['entity_error_rate']:.3f}; masked WER "
        f"{masked['wer']:.3f} entity err {masked['entity_error_rate']:.3f}")
    rep.add(name="asr_attack", n=len(pick), wer_clean=clean["wer"], wer_masked=masked["wer"],
            entity_error_clean=clean["entity_error_rate"], entity_error_masked=masked["entity_error_rate"])
    rep.claim("privacy: ASR WER on clean test audio", clean["wer"], "<= 0.15")
    rep.claim("privacy: ASR WER on masked test audio", masked["wer"], ">= 0.70")
    rep.claim("privacy: entity error rate on masked audio", masked["entity_error_rate"], ">= 0")
    # speaker-ID attacker: all speakers, 70/30 split of each speaker's utterances, trained on masked audio
    all_gates = [gates_for(g, full.int16(i)) for i in range(len(full.ids))]
    fa_mask = feats_of(masked_wave(full, all_gates))
    fa_clean = feats_of(full.wave)
    r = np.random.default_rng(seed).random(len(full.ids))
    trn, tst = r < 0.7, r >= 0.7
    sp = speaker_attack(fa_mask[trn], full.speaker[trn],
                        {"clean": (fa_clean[tst], full.speaker[tst]), "masked": (fa_mask[tst], full.speaker[tst])},
                        len(full.speakers), seed=seed)
    log(f"speaker-ID attacker (trained on masked): {sp}")
    rep.add(name="speaker_attack", **sp)
    rep.claim("privacy: speaker-ID acc on masked audio (leak; chance = 1/speakers)", sp["masked"], ">= 0")
    rep.claim("privacy: speaker-ID acc on clean audio", sp["clean"], ">= 0")
    c = cost_claims(rep, blob)
    log(f"cost: {c}")
    if plot:
        plot_gates(te.int16(0), gates[0], plot, title=te.utts[0]["text"])
    return rep


def plot_gates(x: np.ndarray, keep: np.ndarray, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgelearn.speech.mask import apply_mask
    from edgelearn.speech.models import SEG

    t = np.arange(x.size) / 16000
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    a1.plot(t, x / 32768, lw=0.4, color="0.6", label="clean")
    a1.plot(t, apply_mask(x, keep) / 32768, lw=0.4, color="C0", label="masked (sent)")
    for s, k in enumerate(keep):
        if k:
            a1.axvspan(s * SEG / 16000, (s + 1) * SEG / 16000, color="C2", alpha=0.15, lw=0)
    a1.set(ylabel="amplitude", title=f"gates (green = kept): {title}")
    a1.legend(loc="upper right")
    f = features(x)
    a2.imshow(f.T, origin="lower", aspect="auto", extent=[0, f.shape[0] * 0.02, 0, 40], cmap="magma")
    a2.step(np.arange(len(keep)) * SEG / 16000, np.asarray(keep) * 38 + 1, where="post", color="C2")
    a2.set(xlabel="time (s)", ylabel="mel band")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
