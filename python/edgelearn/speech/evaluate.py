"""Evaluation of the trained pipeline on the held-out test speakers: utility, privacy and cost goals as claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgelearn.bench import Report
from edgelearn.speech.attacks import ratio_ci
from edgelearn.speech.features import features
from edgelearn.speech.mask import gates_for
from edgelearn.speech.models import WarpAverageSLU
from edgelearn.speech.train import (accuracy, feats_of, kept_fraction, load_corpus, load_models, masked_wave,
                                    random_gates_for, validation_split)


class _Conv1dAs2d:
    """Builders of torch modules that run 1-D convolutions over time as Conv2d with a (1, k) kernel on
    [1, C, 1, T] (what tflite / X-CUBE-AI deploy a Conv1d as), for firmware_sim's torch importer."""

    @staticmethod
    def gatenet(gatenet):
        import torch
        from torch import nn

        class GateNetDeploy(nn.Module):
            def __init__(self):
                super().__init__()
                self.convs = nn.ModuleList()
                for c in gatenet.convs:
                    k = c.kernel_size[0]
                    m = nn.Conv2d(c.in_channels, c.out_channels, (1, k), padding=(0, k // 2))
                    with torch.no_grad():
                        m.weight.copy_(c.weight[:, :, None, :])
                        m.bias.copy_(c.bias)
                    self.convs.append(m)

            def forward(self, x):
                return _conv_relu_stack(self.convs, x)

        return GateNetDeploy().eval()

    @staticmethod
    def vae_encoder(width: int = 128, latent: int = 64, k: int = 5):
        """The VAE-style disentanglement encoder sized like the paper's baseline: 4 convolutions over every log-mel
        frame, 40 -> 128 -> 128 -> 128 -> 2 x 64 (mean and log-variance of the latent)."""
        from torch import nn

        class VAEEncoder(nn.Module):
            def __init__(self):
                super().__init__()
                chans = [40, width, width, width, 2 * latent]
                self.convs = nn.ModuleList(nn.Conv2d(a, b, (1, k), padding=(0, k // 2))
                                           for a, b in zip(chans, chans[1:]))

            def forward(self, x):
                return _conv_relu_stack(self.convs, x)

        return VAEEncoder().eval()


def _conv_relu_stack(convs, x):
    """x through the convolutions with a ReLU between them (none after the last): the traced forward of the
    gate network and of the VAE-style encoder."""
    import torch

    for i, conv in enumerate(convs):
        x = conv(x)
        if i < len(convs) - 1:
            x = torch.relu(x)
    return x


# Front-end constants on the Cortex-M7 (stated assumptions, used with firmware_sim's calibrated M7 constants):
LOG_CYCLES = 40          # one q15 log (table + polynomial), as CMSIS-DSP's arm_vlog_q15 per element, order of magnitude
FRONTEND_CALLS = 5       # per 20 ms frame: window, rfft, power, mel, log: each a kernel call paying the op overhead


def cost_claims(report: Report, gatenet=None, blob=None, seconds: float = 4.0, target: str = "stm32h743") -> dict:
    """Front-end + gate network for `seconds` of audio on an STM32H743 (Cortex-M7, 480 MHz).

    Gate network: the trained GateNet as a torch module (Conv1d as Conv2d (1, k)) through firmware_sim
    (``firmware_sim.estimate``, int8, X-CUBE-AI stack, the M7's calibrated eta / overhead; weights in flash).
    Front-end (q15, not an int8 NN op, so not in firmware_sim's op set): the kernels' own operation counts
    (``speech_cost``) with firmware_sim's M7 constants: q15 MACs at eta * 2 / lanes (2 q15 per 32-bit word where the
    int8 conv has 4), LOG_CYCLES per log, FRONTEND_CALLS kernel calls per frame each paying the calibrated per-op
    overhead. RAM = front-end stream state + frame scratch + q15 features of the whole window + the gate net's
    planned arena (firmware_sim) + gates. The VAE-style encoder is costed the same way (same front-end)."""
    import torch

    from edgelearn.kernels.speech import speech_cost
    from firmware_sim.cost.cortex_m import core_params
    from firmware_sim.estimate import estimate
    from firmware_sim.targets import load_target

    c = speech_cost(seconds, net=blob) if blob is not None else speech_cost(seconds)
    t = load_target(target)
    p = core_params(t.core, "xcubeai")
    fe_cycles = (c["frontend_macs"] / (p.eta * 2 / p.lanes) + LOG_CYCLES * c["log_evals"]
                 + FRONTEND_CALLS * c["frames"] * p.overhead)
    fe_ms = fe_cycles / (t.clock_mhz * 1e3)
    if gatenet is None:
        from edgelearn.speech.models import GateNet

        gatenet = GateNet()
    S, T = c["segments"], c["frames"]
    g = estimate(_Conv1dAs2d.gatenet(gatenet), target, example_inputs=(torch.randn(1, 40, 1, S),))
    v = estimate(_Conv1dAs2d.vae_encoder(), target, example_inputs=(torch.randn(1, 40, 1, T),))
    rb = c["ram_breakdown"]
    fe_ram = rb["stream_state_q15"] + rb["frame_scratch_q15"] + rb["features_q15"]
    ram = fe_ram + g.arena_bytes + rb["logits_gates"]
    vae_ram = fe_ram + v.arena_bytes
    ms = fe_ms + g.latency_ms
    vae_ms = fe_ms + v.latency_ms
    report.claim(f"cost: front-end + gates, {seconds:g} s on STM32H743 (ms, firmware_sim)", ms, "<= 100")
    report.claim("cost: RAM of front-end + gates (KB, firmware_sim arena)", ram / 1024, "<= 64")
    report.claim("cost: VAE-style encoder / ours, latency (x)", vae_ms / ms, ">= 1")
    report.claim("cost: VAE-style encoder / ours, RAM (x)", vae_ram / ram, ">= 1")
    out = {"name": "cost", "target": target, "seconds": seconds, "ms": ms, "frontend_ms": fe_ms,
           "gatenet_ms": g.latency_ms, "ram_kb": ram / 1024, "gatenet_arena_bytes": g.arena_bytes,
           "gatenet_flash_bytes": g.flash_bytes, "frontend_macs": c["frontend_macs"],
           "gate_macs": sum(x.macs for x in g.layers), "log_evals": c["log_evals"], "vae_ms": vae_ms,
           "vae_ram_kb": vae_ram / 1024, "vae_flash_bytes": v.flash_bytes, "latency_ratio_vae": vae_ms / ms,
           "ram_ratio_vae": vae_ram / ram, "calibrated_m7_constants": g.calibrated,
           "opcount_ms": 1.5 * (c["total_macs"] + 40 * c["log_evals"]) / 480e3,
           "silence_s_paper_ms": 912.0, "silence_s_paper_kb": 394.9,
           "assumptions": f"gate net and VAE via firmware_sim.estimate ({t.name}, xcubeai, int8); front-end q15 "
                          f"from speech_cost op counts at eta*2/lanes = {p.eta * 2 / p.lanes:.3f} MAC/cycle, "
                          f"{LOG_CYCLES} cycles/log, {FRONTEND_CALLS} calls/frame x {p.overhead:.0f} cycles"}
    report.add(**out)
    return out


def evaluate(corpus_dir, model_dir, n_asr: int = 48, seed: int = 0, plot: str | None = None, log=print,
             n_asr_lm: int = 24, speaker_utts: int = 30, split: str = "test", test_corpus=None,
             warps=None) -> Report:
    """Utility, privacy and cost claims on the test speakers (split="test"), or on the training run's validation
    speakers (split="validation": for choosing settings without looking at the test speakers). test_corpus: a
    test-only corpus (``synthesize(fresh_test=True)``) evaluated instead, all of it (split "fresh"); corpus_dir still
    gives the trigram attacker's training transcripts, and the speaker-ID attacker tells its speakers apart.
    warps: mel warps of test-time voice averaging (``WarpAverageSLU``) for every cloud model, clean, masked and
    random alike (a cloud-side choice; gates, attackers and cost do not change)."""
    rep = Report("speech")
    full = load_corpus(corpus_dir)
    ms = load_models(model_dir)
    if warps is not None:
        for k in ("cloud", "cloud_masked", "cloud_random"):
            ms[k] = WarpAverageSLU(ms[k], warps).eval()
    st = ms["state"].get("settings", {})
    lm_texts = [u["text"] for u in full.utts if u["split"] == "train"]   # (validation speakers' included: the
                                                                           # attacker knows the corpus's words)
    if test_corpus is not None:
        if split != "test":
            raise ValueError(f"test_corpus: evaluates a test-only corpus; split must be 'test', got {split!r}")
        full = load_corpus(test_corpus)
        if full.intents != ms["state"]["intents"]:
            raise ValueError(f"test_corpus: {test_corpus} has other intents than the models in {model_dir}")
        if not (full.split == "test").all():
            raise ValueError(f"test_corpus: {test_corpus} is not test-only (make it with speech synth --fresh-test)")
        corpus_dir, split, sel = test_corpus, "fresh", np.ones(len(full.ids), bool)
    elif split == "test":
        sel = full.split == "test"
    elif split == "validation":
        _, sel = validation_split(full, ms["state"])
        if not sel.any():
            raise ValueError(f"split: {model_dir} was trained without validation speakers (--val-speakers 0)")
    else:
        raise ValueError(f"split: 'test' or 'validation', got {split!r}")
    norm = bool(st.get("normalise", False))
    sent = load_corpus(corpus_dir, normalise=True) if norm else full   # the audio the device masks (normalised)
    te, tes = full.subset(sel), sent.subset(sel)
    rep.add(name="split", split=split, speakers=sorted({te.speakers[k] for k in te.speaker}), speaker_normalise=norm,
            warps=None if warps is None else ms["cloud"].warps)
    g = ms["gatenet"]
    blob_path = Path(model_dir) / "gatenet_s8.bin"
    blob = np.frombuffer(blob_path.read_bytes(), np.uint8) if blob_path.is_file() else None
    block = ms["block"]
    gates = [gates_for(g, tes.int16(i), block) for i in range(len(te.ids))]
    frac = kept_fraction(gates)
    f_clean = feats_of(te.wave)
    f_mask = feats_of(masked_wave(tes, gates))
    f_rand = feats_of(masked_wave(tes, random_gates_for(tes, frac, seed + 1, block)))
    acc = {"clean": accuracy(ms["cloud"], f_clean, te.intent),
           "masked_frozen_cloud": accuracy(ms["cloud"], f_mask, te.intent),
           "masked": accuracy(ms["cloud_masked"], f_mask, te.intent),
           "random_frozen_cloud": accuracy(ms["cloud"], f_rand, te.intent),
           "random": accuracy(ms["cloud_random"], f_rand, te.intent)}
    ok_clean, ok_masked = correct(ms["cloud"], f_clean, te.intent), correct(ms["cloud_masked"], f_mask, te.intent)
    diff, ones = ok_clean.astype(float) - ok_masked, np.ones(ok_clean.size)
    drop_ci = tuple(100 * v for v in ratio_ci(diff, ones, seed=seed))
    drop_ci_spk = tuple(100 * v for v in ratio_ci(diff, ones, seed=seed, groups=te.speaker))
    rows = per_speaker(te, gates, {"clean": (ms["cloud"], f_clean), "masked": (ms["cloud_masked"], f_mask)})
    for r in rows:
        log(f"  {r['speaker']} ({r['voice']}): kept {r['kept']:.3f}, clean {r['clean']:.3f}, masked {r['masked']:.3f}")
    rep.add(name="per_speaker", rows=rows)
    vfrac = voiced_kept_fraction(tes, gates)
    log(f"kept fraction {frac:.3f} (of speech segments: {vfrac:.3f}, {block * 40} ms gates); intent accuracy {acc}")
    log(f"intent drop {100 * (acc['clean'] - acc['masked']):.2f} points, 95% interval {drop_ci[0]:.2f} to "
        f"{drop_ci[1]:.2f} (paired bootstrap over utterances), {drop_ci_spk[0]:.2f} to {drop_ci_spk[1]:.2f} "
        f"(over speakers)")
    rep.add(name="intent_accuracy", kept_fraction=frac, kept_fraction_speech=vfrac, gate_ms=block * 40,
            drop_points_ci95=drop_ci, drop_points_ci95_speakers=drop_ci_spk,
            n_test=len(te.ids), **acc)
    rep.claim("utility: intent acc drop, masked vs clean (points)", 100 * (acc["clean"] - acc["masked"]), "<= 3")
    rep.claim("utility: learned mask minus random mask, same kept fraction (points)",
              100 * (acc["masked"] - acc["random"]), ">= 0.01")
    rep.claim("mask: kept fraction of segments", frac, "<= 1")
    if blob is not None:
        from edgelearn.speech.export import gates_s8

        pairs = [(gates_s8(blob, tes.int16(i), block), gates[i]) for i in range(len(te.ids))]
        agree = np.mean(np.concatenate([a[: min(a.size, b.size)] == b[: min(a.size, b.size)] for a, b in pairs]))
        rep.add(name="int8_gates", agreement_with_float=float(agree))
        log(f"int8 kernel gates agree with float gates on {agree:.3f} of segments")
    # ASR attacker
    from edgelearn.speech.attacks import SphinxASR, asr_attack, fill_silence, speaker_attack
    from edgelearn.speech.mask import apply_mask

    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(te.ids))   # a random subset of test files per attacker (first n of one order)
    asr_out = {}
    train_texts = lm_texts
    for grammar, n in (("jsgf", n_asr), ("trigram", n_asr_lm)):
        if n <= 0:
            continue
        pk = np.sort(pick[:n])
        asr = SphinxASR(grammar, train_texts)
        clean = asr_attack(asr, [te.int16(i) for i in pk], [te.utts[i] for i in pk])
        xm = [apply_mask(tes.int16(i), gates[i]) for i in pk]
        plain = asr_attack(asr, xm, [te.utts[i] for i in pk])
        filled = asr_attack(asr, [fill_silence(x, seed + j) for j, x in enumerate(xm)], [te.utts[i] for i in pk])
        masked = min(plain, filled, key=lambda r: r["wer"])   # the stronger of the two decodings
        ci_spk = ratio_ci(masked["word_errors"], masked["words"], seed=seed, groups=te.speaker[pk])
        log(f"ASR ({grammar}) clean WER {clean['wer']:.3f} entity err {clean['entity_error_rate']:.3f}; masked WER "
            f"{masked['wer']:.3f} entity err {masked['entity_error_rate']:.3f} (as sent: {plain['wer']:.3f}, "
            f"holes noise-filled: {filled['wer']:.3f}; {len(pk)} files; masked 95% interval "
            f"{masked['wer_ci95'][0]:.3f}-{masked['wer_ci95'][1]:.3f} over files, {ci_spk[0]:.3f}-{ci_spk[1]:.3f} "
            f"over speakers)")
        spk_wer, spk_wer_clean = per_speaker_wer(te, pk, masked), per_speaker_wer(te, pk, clean)
        log("  WER per speaker, clean / masked: " + ", ".join(f"{k} {spk_wer_clean[k]:.2f} / {v:.2f}"
                                                            for k, v in spk_wer.items()))
        rep.add(name=f"asr_attack_{grammar}", n=len(pk), wer_masked_per_speaker=spk_wer,
                wer_clean_per_speaker=spk_wer_clean, wer_clean=clean["wer"], wer_masked=masked["wer"],
                entity_error_clean=clean["entity_error_rate"], entity_error_masked=masked["entity_error_rate"],
                wer_masked_ci95=masked["wer_ci95"], wer_masked_ci95_speakers=ci_spk, wer_clean_ci95=clean["wer_ci95"],
                wer_masked_as_sent=plain["wer"], wer_masked_filled=filled["wer"],
                entity_error_masked_as_sent=plain["entity_error_rate"],
                entity_error_masked_filled=filled["entity_error_rate"],
                examples_clean=clean["examples"], examples_masked=masked["examples"])
        asr_out[grammar] = (clean, masked)
        what = "JSGF grammar of the corpus's sentences" if grammar == "jsgf" else "trigram LM of the training transcripts"
        rep.claim(f"privacy: ASR WER on clean {split} audio ({what})", clean["wer"], "<= 0.15")
        rep.claim(f"privacy: ASR WER on masked {split} audio ({what})", masked["wer"], ">= 0.70")
        rep.claim(f"privacy: entity error rate on masked audio ({what}; clean {clean['entity_error_rate']:.3f})",
                  masked["entity_error_rate"], ">= 0")
        rd = readable_wer(te, pk, clean, masked)
        rep.add(name=f"asr_attack_{grammar}_readable", **rd)
        if rd["speakers"]:
            log(f"  on the {len(rd['speakers'])} speakers it reads clean (WER <= {rd['bound']:g} each): clean "
                f"{rd['wer_clean']:.3f}, masked {rd['wer_masked']:.3f}")
            rep.claim(f"privacy: ASR WER on masked audio of the speakers it reads clean ({what}; "
                      f"{len(rd['speakers'])} of {len(spk_wer)} speakers, clean {rd['wer_clean']:.3f})",
                      rd["wer_masked"], ">= 0.70")
    # speaker-ID attacker: all speakers, the first speaker_utts utterances of each (same size whatever the
    # corpus), 70/30 split of each speaker's utterances, trained on masked audio
    first = np.zeros(len(full.ids), bool)
    for k in np.unique(full.speaker):
        first[np.flatnonzero(full.speaker == k)[:speaker_utts]] = True
    sub, subs = full.subset(first), sent.subset(first)
    sub_gates = [gates_for(g, subs.int16(i), block) for i in range(len(sub.ids))]
    fa_mask = feats_of(masked_wave(subs, sub_gates))
    fa_clean = feats_of(sub.wave)
    r = np.random.default_rng(seed).random(len(sub.ids))
    trn, tst = r < 0.7, r >= 0.7
    sp = speaker_attack(fa_mask[trn], sub.speaker[trn],
                        {"clean": (fa_clean[tst], sub.speaker[tst]), "masked": (fa_mask[tst], sub.speaker[tst])},
                        len(full.speakers), seed=seed)
    log(f"speaker-ID attacker (trained on masked, {int(trn.sum())} train / {int(tst.sum())} test utterances): {sp}")
    rep.add(name="speaker_attack", n_train=int(trn.sum()), n_test=int(tst.sum()), **sp)
    rep.claim(f"privacy: speaker-ID acc on masked audio (chance {sp['chance']:.3f}; normalised: {norm})",
              sp["masked"], ">= 0")
    rep.claim(f"privacy: speaker-ID acc on clean audio (chance {sp['chance']:.3f})", sp["clean"], ">= 0")
    c = cost_claims(rep, g, blob)
    log(f"cost: {c}")
    if plot:
        plot_gates(tes.int16(0), gates[0], plot, title=te.utts[0]["text"])
    return rep


def correct(model, feats, labels, bs: int = 128) -> np.ndarray:
    """[N] bool: the model's intent is right on each utterance."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(feats[i: i + bs]).argmax(1) for i in range(0, len(feats), bs)])
    return (pred == labels).numpy()


def per_speaker_wer(corpus, files, attack: dict) -> dict:
    """{speaker: WER} of one ``asr_attack`` result over the corpus's utterances `files` (in its order)."""
    who = corpus.speaker[files]
    errs, words = np.asarray(attack["word_errors"]), np.asarray(attack["words"])
    return {corpus.speakers[k]: float(errs[who == k].sum() / max(words[who == k].sum(), 1)) for k in np.unique(who)}


def readable_wer(corpus, files, clean: dict, masked: dict, bound: float = 0.15) -> dict:
    """The attack restricted to the speakers the attacker reads on clean audio (clean WER <= bound each): their
    speakers, pooled clean and masked WER. Masking can only be credited with the errors on speech the attacker
    could otherwise transcribe; a speaker it cannot read clean says nothing about the mask."""
    per = per_speaker_wer(corpus, files, clean)
    keep = sorted(k for k, w in per.items() if w <= bound)
    sel = np.isin(np.asarray(corpus.speakers)[corpus.speaker[files]], keep)
    pooled = lambda a: float(np.asarray(a["word_errors"])[sel].sum() / max(np.asarray(a["words"])[sel].sum(), 1))  # noqa: E731
    return {"bound": bound, "speakers": keep, "n_files": int(sel.sum()),
            "wer_clean": pooled(clean) if keep else None, "wer_masked": pooled(masked) if keep else None}


def per_speaker(corpus, gates, models: dict) -> list[dict]:
    """Per speaker: voice family, kept fraction and intent accuracy of each (model, features) pair in `models`
    (where a validation/test gap comes from)."""
    preds = {k: correct(m, f, corpus.intent) for k, (m, f) in models.items()}
    rows = []
    for s in np.unique(corpus.speaker):
        idx = np.flatnonzero(corpus.speaker == s)
        name = corpus.speakers[s]
        rows.append({"speaker": name, "voice": (corpus.families or {}).get(name, "?"), "n": int(idx.size),
                     "kept": float(sum(gates[i].sum() for i in idx) / sum(gates[i].size for i in idx)),
                     **{k: float(p[idx].mean()) for k, p in preds.items()}})
    return rows


def voiced_kept_fraction(corpus, gates, floor_db: float = 30.0) -> float:
    """Kept fraction over segments that hold speech: segment energy within floor_db of the utterance's loudest
    segment (so dropping leading/trailing silence and pauses does not count as hiding words)."""
    from edgelearn.speech.models import SEG

    k = n = 0
    for i, gt in enumerate(gates):
        x = corpus.int16(i).astype(np.float64)
        S = gt.size
        e = np.array([np.mean(x[s * SEG: (s + 1) * SEG] ** 2) + 1e-9 for s in range(S)])
        sp = 10 * np.log10(e / e.max()) > -floor_db
        k, n = k + int(gt[sp].sum()), n + int(sp.sum())
    return k / max(n, 1)


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
