"""edgelearn.speech: synthesis, splits, gates, Lagrangian, masks, WER, attackers (fast; tiny corpus)."""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgelearn.speech import audio, synth  # noqa: E402
from edgelearn.speech.attacks import entity_errors, wer  # noqa: E402
from edgelearn.speech.models import (SEG, CloudSLU, GateNet, hard_concrete_deterministic,  # noqa: E402
                                     hard_concrete_p_open, hard_concrete_sample)

TOOLS = all(shutil.which(t) for t in ("espeak-ng", "flite", "sox"))
needs_tools = pytest.mark.skipif(not TOOLS, reason="espeak-ng/flite/sox missing: apt-get install -y espeak-ng flite sox")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not TOOLS:
        pytest.skip("espeak-ng/flite/sox missing: apt-get install -y espeak-ng flite sox")
    pytest.importorskip("soundfile")
    d = tmp_path_factory.mktemp("corpus")
    return d, synth.synthesize(d, n_speakers=21, per_speaker=1, n_test_speakers=4, workers=2, progress=False)


def test_corpus_definition():
    assert len(synth.INTENTS) >= 20
    assert all(len(ts) >= 3 for ts in synth.INTENTS.values())
    assert len({(s.engine, s.voice, s.pitch, s.rate) for s in synth.speakers(30)}) == 30
    text, spans = synth.fill("remind me to call {person} at {time}", np.random.default_rng(0))
    w = text.split()
    for s in spans:
        assert " ".join(w[s["start"]: s["end"]]) == s["value"]


@needs_tools
def test_synthesis_manifest_and_determinism(tiny, tmp_path):
    d, m = tiny
    assert len(m["utterances"]) == 21 and len(m["speakers"]) == 21
    for u in m["utterances"]:
        x = audio.read_wav(d / u["path"])
        assert x.dtype == np.int16 and x.size == u["samples"]
        w = u["text"].split()
        for s in u["slots"]:
            assert " ".join(w[s["start"]: s["end"]]) == s["value"]
    train = {u["speaker"] for u in m["utterances"] if u["split"] == "train"}
    test = {u["speaker"] for u in m["utterances"] if u["split"] == "test"}
    assert not train & test and len(test) == 4
    # same seed -> same files (sha1); the cache is reused
    m2 = synth.synthesize(tmp_path, n_speakers=21, per_speaker=1, n_test_speakers=4, workers=1, progress=False)
    assert [u["sha1"] for u in m2["utterances"]] == [u["sha1"] for u in m["utterances"]]
    assert synth.synthesize(d, n_speakers=21, per_speaker=1, n_test_speakers=4, progress=False) == \
        json.loads((d / "manifest.json").read_text())


FESTIVAL = shutil.which("text2wave") is not None


@needs_tools
@pytest.mark.skipif(not FESTIVAL, reason="festival missing: apt-get install -y " + synth.FESTIVAL_PACKAGES)
def test_extra_training_speakers_leave_base_corpus_unchanged(tiny, tmp_path):
    d, m = tiny
    mx = synth.synthesize(tmp_path, n_speakers=21, per_speaker=1, n_test_speakers=4, workers=2, progress=False,
                          extra_train=3)
    base = {u["id"]: u for u in m["utterances"]}
    extra = [u for u in mx["utterances"] if u["id"] not in base]
    assert len(extra) == 3 and all(u["split"] == "train" for u in extra)
    changed = [u["id"] for u in mx["utterances"] if u["id"] in base and base[u["id"]]["sha1"] != u["sha1"]]
    assert not changed, f"base files changed: {changed}"
    assert mx["test_speakers"] == m["test_speakers"]
    ex = [s for s in mx["speakers"] if s.get("extra")]
    assert [s["engine"] for s in ex][:2] == ["festival", "festival"]
    for u in extra:   # festival's voices really spoke (not silence)
        x = audio.read_wav(tmp_path / u["path"]).astype(np.float64)
        assert x.size > 16000 * 0.5 and x.std() > 500
    test_voices = {(s["engine"], s["voice"]) for s in mx["speakers"] if s["id"] in mx["test_speakers"]}
    assert not {(s["engine"], s["voice"]) for s in ex} & test_voices   # never a test speaker's voice
    # the validation speakers do not change when extra training speakers are added
    from edgelearn.speech.train import load_corpus, split_validation

    c, cx = load_corpus(d), load_corpus(tmp_path)
    for strat in (False, True):
        val = {c.speakers[k] for k in c.speaker[split_validation(c, 3, 0, strat)[1]]}
        valx = {cx.speakers[k] for k in cx.speaker[split_validation(cx, 3, 0, strat)[1]]}
        assert val == valx and not valx & set(cx.extra)
    with pytest.raises(ValueError, match="extra_train"):
        synth.synthesize(tmp_path / "bad", n_speakers=21, per_speaker=1, n_test_speakers=4,
                         extra_train=len(synth.EXTRA_TRAIN) + 1)


def test_extra_speakers_avoid_held_out_voices():
    """No extra speaker shares an engine voice with the flite voices that test or validation can hold (rms, kal,
    kal16); ids continue after the base speakers."""
    ex = synth.extra_speakers(24, len(synth.EXTRA_TRAIN))
    assert [s.id for s in ex][:2] == ["spk24", "spk25"] and all(s.extra for s in ex)
    assert not {s.voice for s in ex} & {"rms", "kal", "kal16"}
    assert len({(s.engine, s.voice, s.pitch, s.rate, s.f0) for s in ex}) == len(ex)
    # espeak extras: only variants that no test, validation or fresh speaker uses (the seed-0 corpus's test
    # speakers; its validation speakers, stratified or not: m4, m6, klatt2, m2; every fresh set's)
    base = synth.speakers(24)
    order = np.random.default_rng(0).permutation(24)
    held = {base[i].voice for i in order[:6]} | {"en+m4", "en+m6", "en+klatt2", "en+m2"}
    held |= {s.voice for k in synth.FRESH_SETS for s in synth.fresh_speakers(k)}
    esp = [s for s in ex if s.engine == "espeak-ng"]
    assert len(esp) == 3 * len(synth.EXTRA_ESPEAK) and {s.voice for s in esp} == {f"en+{v}" for v in synth.EXTRA_ESPEAK}
    assert not {s.voice for s in esp} & held
    assert all(s.rate > 0 for s in esp) and all(s.rate == 0 for s in ex if s.engine != "espeak-ng")
    # the first 13 are as before (corpus180xf's extras), so a corpus with more extras keeps their files
    assert [(s.engine, s.voice, s.pitch, s.f0) for s in ex[:3]] == [("festival", "ked_diphone", 0, 0),
                                                                    ("festival", "cmu_us_slt_arctic_hts", 0, 0),
                                                                    ("flite", "awb", -300, 0)]
    assert (ex[12].voice, ex[12].f0) == ("awb", 150)
    # and the first 37 too (corpus180xg's); the flite extras' sox shifts span every fresh set's flite shift
    assert [(s.voice, s.pitch) for s in ex[31:37]] == [("awb", -150), ("slt", 150), ("awb", 0), ("slt", 0),
                                                       ("cmu_us_slt_arctic_hts", 200), ("ked_diphone", -400)]
    shifts = [s.pitch for s in ex if s.engine == "flite"]
    fresh = [s.pitch for k in synth.FRESH_SETS for s in synth.fresh_speakers(k) if s.engine == "flite"]
    assert min(shifts) <= min(fresh) and max(shifts) >= max(fresh), (shifts, fresh)
    n_awb = sum(s.voice == "awb" for s in ex)
    left = synth.extra_speakers(24, len(ex) - n_awb, {("flite", "awb")})     # a test speaker's voice is skipped
    assert len(left) == len(ex) - n_awb and all(s.voice != "awb" for s in left)
    with pytest.raises(ValueError, match="extra_train"):
        synth.extra_speakers(24, len(ex) - n_awb + 1, {("flite", "awb")})


def test_bad_audio(tmp_path):
    with pytest.raises(ValueError, match="sample rate"):
        audio.as_int16(np.zeros(1000, np.int16), 8000)
    with pytest.raises(ValueError, match="mono"):
        audio.as_int16(np.zeros((1000, 2), np.int16))
    with pytest.raises(ValueError, match="empty"):
        audio.as_int16(np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="shorter than one"):
        audio.as_int16(np.zeros(100, np.int16))
    with pytest.raises(ValueError, match="NaN"):
        audio.as_int16(np.full(1000, np.nan, np.float32))
    with pytest.raises(ValueError, match="outside"):
        audio.as_int16(np.full(1000, 1.5, np.float32))
    assert audio.as_int16(np.full(1000, 0.5, np.float32))[0] == 16384
    with pytest.raises(FileNotFoundError):
        audio.read_wav(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    pytest.importorskip("soundfile")
    with pytest.raises(ValueError, match="unreadable"):
        audio.read_wav(bad)


def test_hard_concrete_properties():
    torch.manual_seed(0)
    la = torch.tensor([-6.0, 0.0, 6.0]).repeat(20000, 1)
    z = hard_concrete_sample(la)
    assert z.min() >= 0 and z.max() <= 1
    assert (z == 0).float().mean() > 0.1 and (z == 1).float().mean() > 0.1   # point masses at both ends
    p_open = (z > 0).float().mean(0)
    assert torch.allclose(p_open, hard_concrete_p_open(la[0]), atol=0.02)
    assert p_open[0] < 0.05 and p_open[2] > 0.95
    d = hard_concrete_deterministic(la[0])
    assert d[0] == 0 and d[2] == 1
    la.requires_grad_(True)
    hard_concrete_sample(la).sum().backward()
    assert la.grad.abs().sum() > 0


def test_lagrangian_kl_constraint():
    """On a tiny problem the mask closes while the KL budget holds and the multiplier rises while it does not."""
    from edgelearn.speech.train import feats_of, train_masker

    torch.manual_seed(0)
    n, L = 16, 16 * SEG
    wave = torch.randn(n, L) * 0.1
    length = np.full(n, L)
    feats = feats_of(wave)
    cloud = CloudSLU(3).eval()
    gate = GateNet()
    hist = train_masker(cloud, gate, wave, feats, length, gamma=10.0, epochs=6, bs=8, log=lambda s: None)
    assert hist[-1]["kept"] < hist[0]["kept"] and hist[-1]["lambda"] == 0   # a loose budget: the mask closes
    tight = train_masker(cloud, GateNet(), wave, feats, length, gamma=0.0, epochs=3, bs=8, log=lambda s: None)
    assert tight[-1]["lambda"] > 0            # a zero budget is always violated: the multiplier grows
    assert all(h["lambda"] >= 0 for h in hist)


def test_mask_application():
    from edgelearn.speech.mask import apply_mask, n_segments

    x = (np.random.default_rng(0).standard_normal(5 * SEG + 100) * 3000).astype(np.int16)
    keep = np.ones(n_segments(x.size), bool)
    assert np.array_equal(apply_mask(x, keep), x)
    assert not apply_mask(x, ~keep).any()
    keep[2] = False
    y = apply_mask(x, keep)
    mid = slice(2 * SEG + 100, 3 * SEG - 100)
    assert not y[mid].any() and np.array_equal(y[: SEG], x[: SEG])
    assert np.max(np.abs(np.diff(y[2 * SEG - 80: 2 * SEG + 80].astype(float)))) < 2 * np.max(np.abs(x))
    with pytest.raises(ValueError, match="gates"):
        apply_mask(x, keep[:-1])


def test_wer_and_entities():
    assert wer("set an alarm", "set an alarm") == (0, 3)
    assert wer("set an alarm", "set alarm now") == (2, 3)
    assert wer("a b", "") == (2, 2)
    slots = [{"value": "seven thirty"}, {"value": "john"}]
    assert entity_errors(slots, "call john at seven") == (1, 2)


def test_ratio_ci_brackets_the_pooled_rate_and_narrows_with_more_items():
    from edgelearn.speech.attacks import ratio_ci

    rng = np.random.default_rng(0)
    words = rng.integers(4, 12, 400)
    errs = rng.binomial(words, 0.7)
    rate = errs.sum() / words.sum()
    lo, hi = ratio_ci(errs, words)
    assert lo < rate < hi and 0.6 < lo and hi < 0.8
    lo30, hi30 = ratio_ci(errs[:30], words[:30])
    assert hi30 - lo30 > 2 * (hi - lo)                 # ~sqrt(400 / 30) = 3.7x wider
    assert ratio_ci([3, 3, 3], [5, 5, 5]) == pytest.approx((0.6, 0.6))   # no spread, no interval
    d = np.array([1.0] * 5 + [0.0] * 95)               # paired intent drop: clean right, masked wrong on 5 of 100
    lo, hi = ratio_ci(d, np.ones(d.size))
    assert lo <= 0.05 <= hi and lo >= 0
    for args, msg in ((([1, 2], [1]), "length"), (([], []), "length"), (([1], [1], 1.5), "level")):
        with pytest.raises(ValueError, match=msg):
            ratio_ci(*args)
    # clustered items: 6 speakers whose error rates differ; resampling speakers whole gives the wider interval
    spk = np.repeat(np.arange(6), 60)
    words = np.full(spk.size, 8)
    errs = rng.binomial(words, np.array([0.5, 0.6, 0.7, 0.75, 0.8, 0.9])[spk])
    lo_f, hi_f = ratio_ci(errs, words)
    lo_s, hi_s = ratio_ci(errs, words, groups=spk)
    assert lo_s < lo_f < errs.sum() / words.sum() < hi_f < hi_s
    assert ratio_ci(errs, words, groups=np.arange(spk.size)) == pytest.approx((lo_f, hi_f), abs=0.01)   # 1 per group
    with pytest.raises(ValueError, match="groups"):
        ratio_ci(errs, words, groups=spk[:10])


def test_gatenet_int8_export_matches_float():
    ks = pytest.importorskip("edgelearn.kernels.speech")
    from edgelearn.speech.export import quantize_gatenet

    torch.manual_seed(0)
    g = GateNet().eval()
    rng = np.random.default_rng(0)
    xs = [(rng.standard_normal(16000) * 2000).astype(np.int16) for _ in range(4)]
    net = quantize_gatenet(g, xs)
    logits, gates = ks.speech_gate_net_s8(ks.speech_logmel_q15(xs[0]), net)
    with torch.no_grad():
        ref = g(torch.from_numpy(ks.speech_logmel_f32(xs[0].astype(np.float32) / 32768))[None])[0].numpy()
    assert logits.shape == ref.shape
    assert np.mean((logits > 0) == (ref > 0)) > 0.9


@pytest.mark.skipif(not TOOLS, reason="espeak-ng/flite/sox missing")
def test_attackers_on_a_few_files(tiny):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx missing: pip install pocketsphinx")
    from edgelearn.speech.attacks import SphinxASR, asr_attack, speaker_attack

    d, m = tiny
    us = m["utterances"][:2]
    xs = [audio.read_wav(d / u["path"]) for u in us]
    r = asr_attack(SphinxASR(), xs, us)
    assert 0 <= r["wer"] <= 1.5 and r["n"] == 2
    assert r["wer_ci95"][0] <= r["wer"] <= r["wer_ci95"][1]
    f = torch.randn(12, 30, 40)
    out = speaker_attack(f[:8], np.arange(8) % 4, {"t": (f[8:], np.arange(4))}, 4, epochs=1)
    assert out["chance"] == 0.25 and 0 <= out["t"] <= 1


def test_cli_help_and_errors(tmp_path, capsys):
    from edgelearn.speech.cli import main

    with pytest.raises(SystemExit) as e:
        main(["speech", "synth", "--help"])
    assert e.value.code == 0 and "examples" in capsys.readouterr().out
    assert main(["speech", "eval", "--corpus", str(tmp_path / "none")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["speech", "train", "--keep-target", "1.5", "--corpus", str(tmp_path / "none")]) == 1
    assert "keep_target" in capsys.readouterr().err
    assert main(["speech", "train", "--block", "0", "--corpus", str(tmp_path / "none")]) == 1
    assert "block" in capsys.readouterr().err


def test_cmvn_ignores_silent_frames_and_spec_augment_masks():
    from edgelearn.speech.models import FLOOR, cmvn_voiced, spec_augment

    torch.manual_seed(0)
    f = torch.randn(2, 50, 40) + 3.0
    g = torch.cat([f, torch.full((2, 30, 40), -20.0)], 1)     # padding / dropped frames below the floor
    a, b = cmvn_voiced(f), cmvn_voiced(g)
    assert torch.allclose(a, b[:, :50], atol=1e-5) and torch.all(b[:, 50:] == 0)
    assert torch.allclose(cmvn_voiced(f + 5.0), a, atol=1e-4)   # a per-band offset (channel, speaker) is removed
    h = spec_augment(f, torch.Generator().manual_seed(1), max_time=5, max_freq=3)
    assert h.shape == f.shape and torch.all((h == f) | (h == FLOOR))
    assert torch.equal(h, spec_augment(f, torch.Generator().manual_seed(1), max_time=5, max_freq=3))


def _arpa_prob(arpa: str, gram: tuple) -> float:
    """P(gram[-1] | gram[:-1]) by the ARPA back-off rule, read back from the text."""
    table, n = {}, 0
    for line in arpa.splitlines():
        if line.endswith("-grams:"):
            n = int(line[1])
        elif line and not line.startswith(("\\", "ngram")):
            f = line.split()
            table[tuple(f[1: 1 + n])] = (float(f[0]), float(f[1 + n]) if len(f) > 1 + n else 0.0)

    def p(g):
        if g in table:
            return 10 ** table[g][0]
        return (10 ** table[g[:-1]][1] if g[:-1] in table else 1.0) * p(g[1:])
    return p(gram)


def test_trigram_lm_is_a_distribution_and_knows_the_phrasings():
    from edgelearn.speech.attacks import ngram_arpa
    from edgelearn.speech.synth import vocabulary

    texts = ["set an alarm for noon", "set an alarm for six am", "call john", "call mary please",
             "set a reminder for the dentist today", "call zorblax now"]   # an out-of-vocabulary word is skipped
    arpa = ngram_arpa(texts, 3)
    assert arpa.startswith("\\data\\") and "\\3-grams:" in arpa and "zorblax" not in arpa
    words = vocabulary() + ["</s>"]
    for h in [("<s>",), ("set", "an"), ("<s>", "set"), ("call",), ("abba", "madonna"), ("for", "noon")]:
        assert abs(sum(_arpa_prob(arpa, h + (w,)) for w in words) - 1) < 2e-3, h   # seen, unseen histories
    assert _arpa_prob(arpa, ("set", "an", "alarm")) > 0.5 > 100 * _arpa_prob(arpa, ("set", "an", "abba"))
    assert _arpa_prob(arpa, ("an", "abba")) > 0   # every vocabulary word stays reachable
    with pytest.raises(ValueError, match="order"):
        ngram_arpa(texts, 0)


def test_unigram_lm_and_validation_split():
    from edgelearn.speech.attacks import unigram_arpa
    from edgelearn.speech.train import Corpus, split_validation

    arpa = unigram_arpa(["set an alarm for noon", "call john"])
    lines = arpa.splitlines()
    n = int(lines[1].split("=")[1])
    grams = lines[lines.index("\\1-grams:") + 1: lines.index("\\end\\") - 1]
    assert len(grams) == n and lines[0] == "\\data\\"
    p = {w: float(v) for v, w in (g.split() for g in grams)}
    assert p["alarm"] > p["abba"] and abs(sum(10 ** v for w, v in p.items() if w != "<s>") - 1) < 1e-3
    spk = np.repeat(np.arange(6), 2)
    split = np.where(spk < 4, "train", "test")
    c = Corpus([], torch.zeros(12, 1), np.ones(12), torch.zeros(12), spk, split, [], [], [])
    fit, val = split_validation(c, 1, seed=0)
    assert not (fit & val).any() and ((fit | val) == (split == "train")).all()
    assert np.unique(spk[val]).size == 1 and not (val & (split == "test")).any()
    with pytest.raises(ValueError, match="val_speakers"):
        split_validation(c, 4, seed=0)


def test_cost_through_firmware_sim():
    pytest.importorskip("edgelearn.kernels.speech")
    pytest.importorskip("firmware_sim")
    from edgelearn.bench import Report
    from edgelearn.speech.evaluate import cost_claims

    r = Report("speech")
    c = cost_claims(r, GateNet())
    assert 0 < c["gatenet_ms"] < c["ms"] and c["gate_macs"] == 1168000   # 4 s: 100 segments, 40-32-32-1, k = 5
    assert c["latency_ratio_vae"] > 1 and c["ram_ratio_vae"] > 1
    assert {x.name.split(",")[0] for x in r.claims} >= {"cost: front-end + gates"}


def test_pool_gates_blocks_share_one_gate():
    from edgelearn.speech.mask import random_gates
    from edgelearn.speech.models import pool_gates

    la = torch.arange(8.0)[None].repeat(2, 1)
    assert torch.equal(pool_gates(la, 1), la)
    p = pool_gates(la, 3)
    assert torch.allclose(p[0], torch.tensor([1.0, 1, 1, 4, 4, 4, 6.5, 6.5]))   # last block: 2 segments
    la.requires_grad_(True)
    pool_gates(la, 3).sum().backward()
    assert torch.allclose(la.grad, torch.ones_like(la))
    g = random_gates(10 * SEG, 0.5, np.random.default_rng(0), block=4)
    assert g.size == 10 and (g[:4] == g[0]).all() and (g[4:8] == g[4]).all()


def test_kept_budget_lagrangian():
    """The kept-budget form: the gates close to the budget while it is violated (the multiplier rises), and the
    multiplier returns to 0 once it holds (an untrained cloud model: no KL pulls the gates open again)."""
    from edgelearn.speech.train import feats_of, train_masker

    torch.manual_seed(0)
    n, L = 16, 16 * SEG
    wave = torch.randn(n, L) * 0.1
    feats = feats_of(wave)
    hist = train_masker(CloudSLU(3).eval(), GateNet(), wave, feats, np.full(n, L), keep_target=0.4, epochs=5, bs=8,
                        lr_dual=1.0, block=2, log=lambda s: None)
    assert hist[0]["kept"] > 0.8 and hist[0]["lambda"] > 0.5
    assert hist[-1]["kept"] < 0.45 and hist[-1]["lambda"] < 0.1
    assert all(h["lambda"] >= 0 for h in hist)


def test_gate_parameterisations_bound_log_alpha():
    """The masker's log_alpha bounds: each is monotone in the raw output and keeps its sign; clamp passes every
    gradient (straight-through), tanh's shrink past the bound, inward drops only those that push raw further out."""
    from edgelearn.speech.train import GATE_PARAMS, LA_BOUND, _bounded

    raw = torch.tensor([-100.0, -5.0, -1.0, 0.0, 2.0, 6.0, 100.0])
    for p in GATE_PARAMS:
        la = _bounded(raw, p)
        assert la.abs().max() <= LA_BOUND + 1e-6 and torch.all(la[1:] >= la[:-1]), p
        assert torch.equal(torch.sign(la), torch.sign(raw)), p
    for p, up_expected, down_expected in [("clamp", [1] * 7, [1] * 7),
                                          ("inward", [1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1])]:
        for sign, expected in [(1.0, up_expected), (-1.0, down_expected)]:   # loss -la: descent raises raw
            r = raw.clone().requires_grad_(True)
            (-sign * _bounded(r, p)).sum().backward()
            assert [int(g != 0) for g in r.grad] == expected, (p, sign, r.grad)
    r = raw.clone().requires_grad_(True)
    _bounded(r, "tanh").sum().backward()
    assert r.grad[3] == pytest.approx(1.0) and 0 < r.grad[5] < 0.5 and r.grad[1] < r.grad[2]


def test_train_masker_gate_param_records_spread_and_rejects_unknown():
    """Every gate parameterisation trains to the kept budget from the same start; the last epoch records the spread
    of raw log_alphas, and an unknown parameterisation is a clear error."""
    from edgelearn.speech.train import feats_of, train_masker

    torch.manual_seed(0)
    n, L = 16, 16 * SEG
    wave = torch.randn(n, L) * 0.1
    feats = feats_of(wave)
    for p in ("clamp", "tanh", "inward"):
        torch.manual_seed(1)
        hist = train_masker(CloudSLU(3).eval(), GateNet(), wave, feats, np.full(n, L), keep_target=0.4, epochs=5,
                            bs=8, lr_dual=1.0, log=lambda s: None, gate_param=p)
        assert hist[-1]["kept"] < 0.5 < hist[0]["kept"], (p, hist)
        assert hist[-1]["raw_p05"] <= hist[-1]["raw_p95"] and "raw_p05" not in hist[0], p
    with pytest.raises(ValueError, match="gate_param"):
        train_masker(CloudSLU(3).eval(), GateNet(), wave, feats, np.full(n, L), keep_target=0.4, epochs=1,
                     log=lambda s: None, gate_param="sigmoid")


def test_train_masker_anneal_settles_the_multiplier():
    """anneal: the masker's and the multiplier's steps decay to 0 on a cosine, so the last epoch barely moves the
    multiplier; the first steps are those of the run without it, and the budget is still reached."""
    from edgelearn.speech.train import feats_of, train_masker

    torch.manual_seed(0)
    n, L = 16, 16 * SEG
    wave = torch.randn(n, L) * 0.1
    feats = feats_of(wave)
    runs = {}
    for anneal in (False, True):
        torch.manual_seed(1)
        runs[anneal] = train_masker(CloudSLU(3).eval(), GateNet(), wave, feats, np.full(n, L), keep_target=0.4,
                                    epochs=8, bs=8, lr_dual=1.0, log=lambda s: None, anneal=anneal)
    assert runs[True][-1]["kept"] < 0.5 < runs[True][0]["kept"]
    assert runs[True][0]["lambda"] == pytest.approx(runs[False][0]["lambda"], rel=0.05)   # the first steps match
    # the last epoch's 2 dual steps are scaled by at most (1 + cos(pi * 14 / 16)) / 2 = 0.038 and |kept - 0.4| <= 0.6
    assert abs(runs[True][-1]["lambda"] - runs[True][-2]["lambda"]) <= 2 * 0.038 * 0.6 + 1e-6
    assert [h["kept"] for h in runs[True]] != [h["kept"] for h in runs[False]]


def test_budget_shift_holds_the_budget_by_construction():
    """budget_shift: the shifted gates keep the target in expectation over the valid segments, for every bound, and
    the kept fraction has no gradient left in raw (only the ranking of segments can move); raising every raw alike
    raises the shift alike."""
    from edgelearn.speech.models import hard_concrete_p_open
    from edgelearn.speech.train import GATE_PARAMS, _bounded, budget_shift

    torch.manual_seed(0)
    raw = (torch.randn(4, 20) * 5).requires_grad_(True)
    valid = torch.ones(4, 20)
    valid[0, 15:] = 0
    for p in GATE_PARAMS:
        for target in (0.2, 0.5):
            b = budget_shift(raw, valid, target, p)
            kept = (hard_concrete_p_open(_bounded(raw - b, p)) * valid).sum() / valid.sum()
            assert float(kept.detach()) == pytest.approx(target, abs=1e-4), (p, target)
            (g,) = torch.autograd.grad(kept, raw)
            assert g.abs().max() < 1e-5, (p, g.abs().max())
            assert float(budget_shift(raw.detach() + 3.0, valid, target, p)) == pytest.approx(float(b.detach()) + 3.0, abs=1e-3)


def test_train_masker_shift_budget_keeps_the_budget_without_a_multiplier():
    """budget 'shift': every epoch keeps the budget in expectation from the first batch on, the multiplier stays 0,
    and it needs a kept budget."""
    from edgelearn.speech.train import feats_of, train_masker

    torch.manual_seed(0)
    n, L = 16, 16 * SEG
    wave = torch.randn(n, L) * 0.1
    feats = feats_of(wave)
    hist = train_masker(CloudSLU(3).eval(), GateNet(), wave, feats, np.full(n, L), keep_target=0.3, epochs=3, bs=8,
                        log=lambda s: None, gate_param="tanh", budget="shift")
    assert all(h["kept"] == pytest.approx(0.3, abs=1e-3) and h["lambda"] == 0 for h in hist), hist
    with pytest.raises(ValueError, match="budget"):
        train_masker(CloudSLU(3).eval(), GateNet(), wave, feats, np.full(n, L), epochs=1, log=lambda s: None,
                     budget="shift")


def test_fill_silence_fills_only_dropped_runs():
    from edgelearn.speech.attacks import fill_silence
    from edgelearn.speech.mask import apply_mask, n_segments

    x = (np.random.default_rng(0).standard_normal(6 * SEG) * 2000).astype(np.int16)
    assert np.array_equal(fill_silence(x), x)
    keep = np.ones(n_segments(x.size), bool)
    keep[2:4] = False
    y = apply_mask(x, keep)
    f = fill_silence(y)
    hole = slice(2 * SEG + 64, 4 * SEG - 64)
    assert not y[hole].any() and np.count_nonzero(f[hole]) > 0.9 * (2 * SEG - 128)
    assert np.array_equal(f[: 2 * SEG - 64], y[: 2 * SEG - 64])
    assert 50 < np.std(f[hole].astype(float)) < 4000


def test_speaker_normalise_moves_pitch_to_target():
    from edgelearn.speech.normalise import TARGET_F0, median_f0, speaker_normalise

    t = np.arange(16000) / 16000
    for f0 in (95.0, 210.0):
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
        x = (x / np.abs(x).max() * 8000).astype(np.int16)
        assert abs(median_f0(x) - f0) < 0.05 * f0
        y = speaker_normalise(x)
        assert abs(median_f0(y) - TARGET_F0) < 0.05 * TARGET_F0
        assert abs(y.size / x.size - f0 / TARGET_F0) < 0.01        # duration scales with the warp
    assert np.array_equal(speaker_normalise(np.zeros(8000, np.int16)), np.zeros(8000, np.int16))


def _noise_corpus(n=6, seed=0):
    from edgelearn.speech.train import Corpus

    rng = np.random.default_rng(seed)
    length = np.array([12 * SEG - 37 * i for i in range(n)])
    wave = torch.zeros(n, 12 * SEG)
    for i, m in enumerate(length):
        wave[i, :m] = torch.from_numpy(rng.standard_normal(m).astype(np.float32) * 0.1)
    return Corpus([str(i) for i in range(n)], wave, length, torch.zeros(n, dtype=torch.long), np.zeros(n, int),
                  np.array(["train"] * n), [{}] * n, ["a"], ["s"])


def test_sampled_mask_fn_draws_fresh_masks_around_the_generator():
    """Mask augmentation for the fine-tuning: confident gates (or a low temperature) reproduce the fixed masked
    audio exactly; undecided gates or a high temperature draw a different mask on every call; the random
    counterpart keeps the fraction it is given."""
    from edgelearn.speech.models import FLOOR
    from edgelearn.speech.train import feats_of, masked_wave, sampled_mask_fn

    c = _noise_corpus()
    S = -(-c.wave.shape[1] // SEG)
    pattern = torch.from_numpy(np.random.default_rng(1).random((len(c.ids), S)) < 0.5)
    idx = torch.arange(len(c.ids))
    gates = [pattern[i, : -(-int(n) // SEG)].numpy() for i, n in enumerate(c.length)]
    fixed = feats_of(masked_wave(c, gates))
    silent = lambda f: float((f.amax(-1) <= FLOOR + 1).float().mean())   # noqa: E731
    # same mask = same features up to float summation order (the batched log-mel may split its work differently);
    # a different mask changes some frame by whole nats
    same = lambda x, y: float((x - y).abs().max()) < 1e-3   # noqa: E731
    for la, temp in ((pattern.float() * 2e4 - 1e4, 1.0), (pattern.float() * 4 - 2, 0.01)):
        fn = sampled_mask_fn(c, la, temp, 0.5, torch.Generator().manual_seed(0))
        assert same(fn(idx), fixed) and same(fn(idx), fixed)
    fn = sampled_mask_fn(c, pattern.float() * 4 - 2, 100.0, 0.5, torch.Generator().manual_seed(0))
    a, b = fn(idx), fn(idx)
    assert not same(a, fixed) and not same(a, b)
    for frac in (0.0, 1.0, 0.5):
        r = sampled_mask_fn(c, None, 1.0, frac, torch.Generator().manual_seed(0), block=3)(idx)
        if frac == 1.0:
            assert same(r, feats_of(masked_wave(c, [np.ones_like(g) for g in gates])))
        elif frac == 0.0:
            assert silent(r) == 1.0
        else:
            assert 0.3 < silent(r) - silent(feats_of(c.wave)) < 0.7


def test_device_gates_are_the_gates_the_device_computes():
    """hard_gates(device=True) (what --device-gates fine-tunes on) equals mask.gates_for on each utterance, for
    utterances of different lengths in one zero-padded batch, with and without gate blocks."""
    from edgelearn.speech.mask import gates_for
    from edgelearn.speech.train import feats_of, hard_gates

    torch.manual_seed(0)
    c = _noise_corpus()
    g = GateNet().eval()
    torch.nn.init.normal_(g.convs[-1].weight, std=0.5)
    f = feats_of(c.wave)
    with torch.no_grad():
        g.convs[-1].bias -= g(f).median()   # about half the gates open, and none within float noise of the
        g.convs[-1].weight *= 100           # decision (the device's front-end and logmel_torch agree to 1e-5)
        g.convs[-1].bias *= 100
        g.convs[-1].bias += 0.5
    for block in (1, 3):
        hg = hard_gates(g, f, c.length, block, device=True)
        ref = [gates_for(g, c.int16(i), block) for i in range(len(c.ids))]
        assert all(np.array_equal(a, b) for a, b in zip(hg, ref))
        assert 0 < np.mean(np.concatenate(ref)) < 1


def test_distillation_follows_the_soft_targets():
    """train_classifier with distill=1 learns the teacher's soft targets, with distill=0 the labels (here they
    disagree on every example)."""
    from edgelearn.speech.train import accuracy, train_classifier

    torch.manual_seed(0)
    n, C = 24, 3
    feats = torch.randn(n, 12, 40) * 2
    labels = torch.arange(n) % C
    other = (labels + 1) % C
    soft = torch.nn.functional.log_softmax(10 * torch.nn.functional.one_hot(other, C).float(), -1)
    for w, target in ((0.0, labels), (1.0, other)):
        m = train_classifier(CloudSLU(C, 16), feats, labels, epochs=12, bs=8, lr=2e-2, log=lambda s: None,
                             soft=soft, distill=w)
        assert accuracy(m, feats, target) > 0.9


def _model_dir(path, intents, val_speakers):
    """A trained-run directory with untrained models (width 16) and a gate net that keeps some segments."""
    torch.manual_seed(0)
    g = GateNet()
    g.mean.normal_(-8, 1)
    g.std.uniform_(1, 2)
    clouds = {k: CloudSLU(len(intents), 16).state_dict() for k in ("cloud", "cloud_masked", "cloud_random")}
    path.mkdir()
    torch.save({"intents": sorted(intents), "gatenet": g.state_dict(), "seed": 0,
                "settings": {"width": 16, "val_speakers": val_speakers, "block": 1}, **clouds}, path / "speech_models.pt")
    return path


@needs_tools
def test_threshold_shift_keeps_a_subset_of_segments(tiny, tmp_path):
    pytest.importorskip("edgelearn.kernels.speech")
    from edgelearn.speech.export import gates_s8
    from edgelearn.speech.mask import gates_for
    from edgelearn.speech.train import load_corpus, load_models, shift_threshold

    d, m = tiny
    src = _model_dir(tmp_path / "k", m["intents"], val_speakers=0)
    shift_threshold(src, tmp_path / "t1", 1.0, d)
    rec = shift_threshold(tmp_path / "t1", tmp_path / "t2", 1.0, d)   # shifts add up
    assert rec == {"delta": 2.0, "from": str(tmp_path / "t1")}
    xs = [load_corpus(d).int16(i) for i in range(6)]
    old, new = load_models(src), load_models(tmp_path / "t2")
    for k in ("cloud", "cloud_masked", "cloud_random"):
        assert all(torch.equal(a, b) for a, b in zip(old[k].state_dict().values(), new[k].state_dict().values()))
    a = np.concatenate([gates_for(old["gatenet"], x) for x in xs]).astype(bool)
    b = np.concatenate([gates_for(new["gatenet"], x) for x in xs]).astype(bool)
    assert not (b & ~a).any() and b.sum() < a.sum()      # fewer segments, never a new one
    blob = np.frombuffer((tmp_path / "t2" / "gatenet_s8.bin").read_bytes(), np.uint8)
    pairs = [(gates_s8(blob, x), gates_for(new["gatenet"], x)) for x in xs]
    n = [min(p.size, f.size) for p, f in pairs]
    assert np.mean(np.concatenate([p[:k] == f[:k] for (p, f), k in zip(pairs, n)])) > 0.9   # int8 blob follows
    with pytest.raises(ValueError, match="differ"):
        shift_threshold(src, src, 1.0, d)
    with pytest.raises(ValueError, match="finite"):
        shift_threshold(src, tmp_path / "t3", float("nan"), d)


@needs_tools
def test_finetune_ensemble_replaces_only_the_cloud_side(tiny, tmp_path):
    from edgelearn.speech.models import EnsembleSLU
    from edgelearn.speech.train import finetune_ensemble, load_models, shift_threshold

    d, m = tiny
    src = _model_dir(tmp_path / "k", m["intents"], val_speakers=3)
    (src / "gatenet_s8.bin").write_bytes(b"\x01\x02\x03")
    rec = finetune_ensemble(d, src, tmp_path / "e", seeds=(0, 1), epochs=1, parts=("masked",), log=lambda s: None)
    assert rec["seeds"] == [0, 1] and 0 < rec["train_kept_fraction"] <= 1
    v = rec["validation"]
    assert v["n"] == 3 and len(v["speakers"]) == 3 and all(0 <= v[k] <= 1 for k in ("clean", "masked", "random"))
    old, new = load_models(src), load_models(tmp_path / "e")
    assert isinstance(new["cloud_masked"], EnsembleSLU) and len(new["cloud_masked"].members) == 2
    a, b = (list(x.state_dict().values()) for x in new["cloud_masked"].members)
    assert not all(torch.equal(x, y) for x, y in zip(a, b))          # two seeds, two different models
    for k in ("cloud", "cloud_random", "gatenet"):                   # the rest is the source's
        assert all(torch.equal(x, y) for x, y in zip(old[k].state_dict().values(), new[k].state_dict().values()))
    assert (tmp_path / "e" / "gatenet_s8.bin").read_bytes() == b"\x01\x02\x03"
    x = torch.randn(4, 50, 40)
    with torch.no_grad():
        want = torch.stack([torch.log_softmax(mm(x), -1) for mm in new["cloud_masked"].members]).mean(0)
        assert torch.allclose(new["cloud_masked"](x), want)
    shift_threshold(tmp_path / "e", tmp_path / "t", 1.0, d)           # an ensemble's masker can still be shifted
    assert len(load_models(tmp_path / "t")["cloud_masked"].members) == 2
    # warm: each copy continues the source's member of the same index (a vanishing step leaves it where it was)
    finetune_ensemble(d, tmp_path / "t", tmp_path / "e4", seeds=(0, 1), epochs=4, lr=0.05, parts=("masked",),
                      log=lambda s: None)
    rec = finetune_ensemble(d, tmp_path / "e4", tmp_path / "w", seeds=(0, 1), epochs=1, lr=1e-12, parts=("masked",),
                            warm=True, log=lambda s: None)
    assert rec["warm_from"]["epochs"] == 4
    warm = load_models(tmp_path / "w")["cloud_masked"].members
    params = lambda mm: [p.detach() for p in mm.parameters()]   # noqa: E731
    for w, e in zip(warm, load_models(tmp_path / "e4")["cloud_masked"].members):
        assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(params(w), params(e)))
        assert not all(torch.allclose(x, y, atol=1e-6) for x, y in zip(params(w), params(old["cloud"])))
    for model_dir, seeds in ((src, (0,)), (tmp_path / "t", (0, 1, 2))):   # no ensemble, too few members
        with pytest.raises(ValueError, match="warm"):
            finetune_ensemble(d, model_dir, tmp_path / "x", seeds=seeds, epochs=1, parts=("masked",), warm=True,
                              log=lambda s: None)
    for kw, msg in (({"seeds": (1, 1)}, "distinct"), ({"parts": ("all",)}, "parts"), ({"epochs": 0}, "epochs"),
                    ({"ft_temp": float("nan")}, "ft_temp"), ({"voice_warp": 0.6}, "voice_warp")):
        with pytest.raises(ValueError, match=msg):
            finetune_ensemble(d, src, tmp_path / "x", log=lambda s: None, **kw)
    with pytest.raises(ValueError, match="differ"):
        finetune_ensemble(d, src, src, log=lambda s: None)
    with pytest.raises(ValueError, match="at least one"):
        EnsembleSLU([])


def test_voice_augment_warps_and_stretches():
    from edgelearn.speech.models import FLOOR, voice_augment

    T = 60
    f = torch.full((3, T, 40), FLOOR)
    f[:, 10:40, 20] = 0.0                                  # one band lit over 30 frames
    out = voice_augment(f, torch.Generator().manual_seed(0))
    assert out.shape == (3, round(T * 1.15), 40) and torch.isfinite(out).all()
    for b in range(3):
        lit = out[b] > FLOOR + 1
        frames, bands = lit.any(1).sum().item(), lit.any(0).nonzero().flatten()
        assert 30 * 0.8 <= frames <= 30 * 1.2              # stretched by at most +-15% (+ interpolation edge)
        assert all(abs(int(m) - 20) <= 3 for m in bands)    # band 20 moved by at most +-10% (+ one neighbour)
    outs = [voice_augment(f, torch.Generator().manual_seed(s)) for s in range(4)]
    assert len({round(float(o.sum()), 3) for o in outs}) > 1   # draws differ
    same = voice_augment(f, torch.Generator().manual_seed(0), stretch=0.0, warp=0.0)
    assert torch.allclose(same, f)                          # no warp, no stretch: identity


def test_warp_average_is_the_mean_over_warped_inputs():
    from edgelearn.speech.models import CloudSLU, WarpAverageSLU, warp_mel

    torch.manual_seed(0)
    f = torch.randn(2, 30, 40)
    assert torch.equal(warp_mel(f, 1.0), f)                                   # no warp: identity
    w = warp_mel(f, 1.1)
    assert torch.allclose(w[..., 10], f[..., 11])                             # band 10 reads band 11
    assert torch.allclose(w[..., 5], 0.5 * f[..., 5] + 0.5 * f[..., 6])       # 5 * 1.1 = 5.5: halfway
    assert torch.equal(w[..., 39], f[..., 39])                                # clamped at the top edge
    m = CloudSLU(5, 16).eval()
    tta = WarpAverageSLU(m, [0.9, 1.0, 1.1]).eval()
    with torch.no_grad():
        want = torch.stack([torch.log_softmax(m(warp_mel(f, a)), -1) for a in (0.9, 1.0, 1.1)]).mean(0)
        assert torch.allclose(tta(f), want)
        assert torch.allclose(WarpAverageSLU(m, [1.0])(f), torch.log_softmax(m(f), -1))
    for bad in ([], [float("nan")], [3.0]):
        with pytest.raises(ValueError, match="warps"):
            WarpAverageSLU(m, bad)


def test_stratified_validation_covers_voice_families():
    from edgelearn.speech.train import split_validation

    corp = _noise_corpus(n=12)
    corp.split[:] = "train"
    corp.speaker = np.arange(12) % 6
    corp.speakers = [f"s{k}" for k in range(6)]
    corp.families = {"s0": "a", "s1": "a", "s2": "a", "s3": "a", "s4": "b", "s5": "c"}
    for seed in range(5):
        fit, val = split_validation(corp, 3, seed, stratify=True)
        fams = {corp.families[corp.speakers[k]] for k in corp.speaker[val]}
        assert fams == {"a", "b", "c"} and not (fit & val).any() and (fit | val).all()
    corp.families = None
    with pytest.raises(ValueError, match="speaker descriptions"):
        split_validation(corp, 3, 0, stratify=True)


def test_per_speaker_breakdown():
    from edgelearn.speech.evaluate import per_speaker

    corp = _noise_corpus(n=4)
    corp.speaker = np.array([0, 0, 1, 1])
    corp.speakers = ["s0", "s1"]
    corp.families = {"s0": "espeak-ng 50/165"}
    corp.intent = torch.tensor([0, 1, 1, 1])

    class Always1(torch.nn.Module):
        def forward(self, f):
            return torch.tensor([[0.0, 1.0]]).expand(len(f), 2)

    gates = [np.array([1, 0, 0, 0]), np.array([1, 1]), np.array([1, 1, 1]), np.array([0])]
    rows = per_speaker(corp, gates, {"clean": (Always1(), torch.zeros(4, 5, 40))})
    assert [r["speaker"] for r in rows] == ["s0", "s1"] and [r["n"] for r in rows] == [2, 2]
    assert rows[0]["voice"] == "espeak-ng 50/165" and rows[1]["voice"] == "?"
    assert rows[0]["kept"] == pytest.approx(3 / 6) and rows[1]["kept"] == pytest.approx(3 / 4)
    assert rows[0]["clean"] == pytest.approx(0.5) and rows[1]["clean"] == pytest.approx(1.0)


def test_kl_cvar_is_the_worst_fraction_of_each_batch():
    """kl_cvar = 1 is the plain mean (the same training, bit for bit); a smaller q reports a KL at least as large
    (the mean of the worst utterances); bad q is refused."""
    from edgelearn.speech.train import feats_of, train_masker

    n, L = 16, 16 * SEG
    wave = torch.randn(n, L, generator=torch.Generator().manual_seed(0)) * 0.1
    wave[:8] *= torch.linspace(0, 1, L)                    # two kinds of utterance: some harder than others
    feats = feats_of(wave)
    torch.manual_seed(0)
    cloud = CloudSLU(3).eval()

    def run(q):
        torch.manual_seed(1)
        return train_masker(copy.deepcopy(cloud), GateNet(), wave, feats, np.full(n, L), keep_target=0.5, epochs=2,
                            bs=8, log=lambda s: None, kl_cvar=q)
    mean, one, worst = run(None), run(1.0), run(0.25)
    assert mean == one
    assert worst[0]["kl"] >= mean[0]["kl"]
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="kl_cvar"):
            train_masker(cloud, GateNet(), wave, feats, np.full(n, L), kl_cvar=q, log=lambda s: None)


def test_kl_term_mean_cvar_and_worst_family():
    from edgelearn.speech.train import _kl_term

    kl = torch.tensor([0.1, 0.2, 0.3, 1.0, 2.0, 0.4])
    fam = torch.tensor([0, 0, 0, 1, 1, 2])
    assert torch.isclose(_kl_term(kl, None, None), kl.mean())
    assert torch.isclose(_kl_term(kl, 1 / 3, None), torch.tensor(1.5))          # the worst 2 of 6
    assert torch.isclose(_kl_term(kl, None, fam), torch.tensor(1.5))            # family 1's mean is the largest
    assert torch.isclose(_kl_term(kl, 0.5, fam), torch.tensor(2.0))             # its worst half
    assert torch.isclose(_kl_term(kl, None, torch.zeros(6, dtype=torch.long)), kl.mean())   # one family: the mean


def test_train_masker_with_voice_families():
    from edgelearn.speech.train import feats_of, train_masker

    n, L = 16, 16 * SEG
    wave = torch.randn(n, L, generator=torch.Generator().manual_seed(0)) * 0.1
    torch.manual_seed(0)
    groups = torch.tensor([0] * 12 + [1] * 4)
    hist = train_masker(CloudSLU(3).eval(), GateNet(), wave, feats_of(wave), np.full(n, L), keep_target=0.5,
                        epochs=2, bs=8, log=lambda s: None, groups=groups)
    assert len(hist) == 2 and all(np.isfinite(h["kl"]) and 0 <= h["kept"] <= 1 for h in hist)


def test_asr_proxy_decoding_and_capped_privacy_term():
    """CTC labels and greedy decoding round-trip; the privacy term's gradient reaches the gates, and stops for
    utterances past the cap (already unreadable)."""
    from edgelearn.speech import proxy as P
    from edgelearn.speech.features import logmel_torch
    from edgelearn.speech.models import upsample_gates
    from edgelearn.speech.train import feats_of

    lab = P.encode("Hi, there!")
    assert lab == [P.CHARS.index(c) + 1 for c in "hi there"]
    path = [0, lab[0], lab[0], 0, lab[1], lab[2], 0, 0] + lab[3:] + [0]   # repeats merged, blanks removed
    logp = torch.full((len(path), len(P.CHARS) + 1), -10.0)
    logp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert P.greedy_decode(logp, len(path)) == "hi there"
    assert P.greedy_decode(logp, 3) == "h"
    torch.manual_seed(0)
    n, L = 4, 16 * SEG
    wave = torch.randn(n, L) * 0.1
    texts = ["call john", "set an alarm", "play jazz radio", "turn the lights on"]
    proxy = P.ASRProxy(width=16).eval()
    la = torch.zeros(n, 16, requires_grad=True)

    P.privacy_term(proxy, logmel_torch(wave * upsample_gates(torch.sigmoid(la), L)), np.full(n, L), texts,
                   cap=1e9).backward()
    assert la.grad.abs().sum() > 0
    la.grad = None
    P.privacy_term(proxy, logmel_torch(wave * upsample_gates(torch.sigmoid(la), L)), np.full(n, L), texts,
                   cap=1e-3).backward()                # every utterance past the cap: no gradient
    assert la.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="empty transcript"):
        P.ctc_nll(proxy, feats_of(wave), np.full(n, L), ["", "a", "b", "c"])


def test_train_masker_with_privacy_term():
    from edgelearn.speech.proxy import ASRProxy
    from edgelearn.speech.train import feats_of, train_masker

    n, L = 8, 16 * SEG
    wave = torch.randn(n, L, generator=torch.Generator().manual_seed(0)) * 0.1
    texts = ["call john now"] * n
    torch.manual_seed(0)
    hist = train_masker(CloudSLU(3).eval(), GateNet(), wave, feats_of(wave), np.full(n, L), keep_target=0.5,
                        epochs=2, bs=4, log=lambda s: None, proxy=ASRProxy(16), privacy=1.0, texts=texts)
    assert len(hist) == 2 and all(0 < h["proxy_nll"] <= 3.0 for h in hist)
    with pytest.raises(ValueError, match="privacy"):
        train_masker(CloudSLU(3).eval(), GateNet(), wave, feats_of(wave), np.full(n, L), keep_target=0.5,
                     epochs=1, privacy=1.0, log=lambda s: None)


@needs_tools
def test_asr_proxy_training_lowers_its_ctc_loss(tiny):
    from edgelearn.speech.proxy import train_asr_proxy
    from edgelearn.speech.train import feats_of, load_corpus

    d, _ = tiny
    c = load_corpus(d)
    lines = []
    train_asr_proxy(feats_of(c.wave), c.length, [u["text"] for u in c.utts], epochs=8, bs=7, lr=3e-3, width=32,
                    log=lines.append)
    loss = [float(s.split("character ")[1].split()[0]) for s in lines]
    assert len(loss) == 8 and loss[-1] < 0.8 * loss[0]
    with pytest.raises(ValueError, match="transcripts"):
        train_asr_proxy(feats_of(c.wave), c.length, ["a"], epochs=1)


@needs_tools
def test_fresh_test_corpus_holds_new_speakers_and_evaluates(tiny, tmp_path):
    pytest.importorskip("edgelearn.kernels.speech")
    from edgelearn.speech.evaluate import evaluate

    d, m = tiny
    fd = tmp_path / "fresh"
    f = synth.synthesize(fd, per_speaker=2, workers=2, progress=False, fresh_test=True)
    assert len(f["utterances"]) == 2 * len(synth.FRESH_TEST) and f["intents"] == m["intents"]
    assert all(u["split"] == "test" for u in f["utterances"])
    assert sorted(f["test_speakers"]) == sorted(s["id"] for s in f["speakers"])
    # no fresh speaker is a speaker of the default corpus (engine, voice, pitch, rate), extra ones included
    voices = lambda ss: {(s.engine, s.voice, s.pitch, s.rate) for s in ss}   # noqa: E731
    assert not voices(synth.fresh_speakers()) & (voices(synth.speakers(24)) | voices(synth.extra_speakers(24, 9)))
    # flite rms is a test speaker's voice in the default corpus (seed 0) and no training speaker's
    test_ids = {synth.speakers(24)[i].id for i in np.random.default_rng(0).permutation(24)[:6]}
    rms = {s.id for s in synth.speakers(24) + synth.extra_speakers(24, 9) if s.voice == "rms"}
    assert rms and rms <= test_ids
    # texts come from their own stream, not the training corpus's
    assert [u["text"] for u in f["utterances"]] != [u["text"] for u in m["utterances"][: len(f["utterances"])]]
    src = _model_dir(tmp_path / "k", m["intents"], val_speakers=0)
    rep = evaluate(d, src, n_asr=0, n_asr_lm=0, test_corpus=fd, speaker_utts=2, log=lambda s: None)
    res = {r["name"]: r for r in rep.results}
    assert res["split"]["split"] == "fresh" and res["split"]["speakers"] == sorted(f["test_speakers"])
    assert res["split"]["warps"] is None
    rw = {r["name"]: r for r in evaluate(d, src, n_asr=0, n_asr_lm=0, test_corpus=fd, speaker_utts=2, warps=[0.9, 1.1],
                                         log=lambda s: None).results}
    assert rw["split"]["warps"] == [0.9, 1.1] and rw["intent_accuracy"]["n_test"] == len(f["utterances"])
    assert rw["intent_accuracy"]["kept_fraction"] == res["intent_accuracy"]["kept_fraction"]   # device unchanged
    assert res["intent_accuracy"]["n_test"] == len(f["utterances"])
    lo, hi = res["intent_accuracy"]["drop_points_ci95"]
    drop = 100 * (res["intent_accuracy"]["clean"] - res["intent_accuracy"]["masked"])
    assert lo - 1e-4 <= drop <= hi + 1e-4
    lo_s, hi_s = res["intent_accuracy"]["drop_points_ci95_speakers"]
    assert lo_s - 1e-4 <= drop <= hi_s + 1e-4
    if importlib.util.find_spec("pocketsphinx"):   # the attackers' path: intervals and per-speaker WER
        ra = {r["name"]: r for r in evaluate(d, src, n_asr=3, n_asr_lm=3, test_corpus=fd, speaker_utts=2,
                                             log=lambda s: None).results}
        for g in ("jsgf", "trigram"):
            a = ra[f"asr_attack_{g}"]
            assert a["n"] == 3 and a["wer_masked_ci95"][0] <= a["wer_masked"] <= a["wer_masked_ci95"][1]
            assert set(a["wer_masked_per_speaker"]) <= set(f["test_speakers"]) and a["wer_masked_per_speaker"]
            assert set(a["wer_clean_per_speaker"]) == set(a["wer_masked_per_speaker"])
            assert a["wer_masked_ci95_speakers"][0] <= a["wer_masked"] <= a["wer_masked_ci95_speakers"][1]
            rd = ra[f"asr_attack_{g}_readable"]
            assert rd["speakers"] == sorted(k for k, w in a["wer_clean_per_speaker"].items() if w <= 0.15)
    assert res["speaker_attack"]["chance"] == pytest.approx(1 / len(synth.FRESH_TEST))
    with pytest.raises(ValueError, match="not test-only"):
        evaluate(d, src, n_asr=0, n_asr_lm=0, test_corpus=d, log=lambda s: None)
    with pytest.raises(ValueError, match="split must be 'test'"):
        evaluate(d, src, n_asr=0, n_asr_lm=0, test_corpus=fd, split="validation", log=lambda s: None)
    with pytest.raises(ValueError, match="extra_train"):
        synth.synthesize(tmp_path / "bad", per_speaker=1, fresh_test=True, extra_train=1)


@needs_tools
def test_later_fresh_sets_are_new_speakers_with_own_texts(tiny, tmp_path):
    _, m = tiny
    voices = lambda ss: {(s.engine, s.voice, s.pitch, s.rate) for s in ss}   # noqa: E731
    seen_voices = voices(synth.speakers(24)) | voices(synth.extra_speakers(24, len(synth.EXTRA_TRAIN)))
    seen_ids, seen_texts = set(), [[u["text"] for u in m["utterances"]]]
    for k in sorted(synth.FRESH_SETS):
        got = synth.synthesize(tmp_path / f"f{k}", per_speaker=2, workers=2, progress=False, fresh_test=k)
        assert got["settings"]["fresh_test"] == (True if k == 1 else k)   # set 1's cache key as before
        table, _ = synth.FRESH_SETS[k]
        assert len(got["utterances"]) == 2 * len(table)
        assert all(u["split"] == "test" for u in got["utterances"]) and got["intents"] == m["intents"]
        spk = synth.fresh_speakers(k)
        assert not voices(spk) & seen_voices and not {s.id for s in spk} & seen_ids, f"set {k} reuses a speaker"
        texts = [u["text"] for u in got["utterances"]]
        assert all(texts != t[: len(texts)] for t in seen_texts), f"set {k} reuses texts"
        seen_voices |= voices(spk)
        seen_ids |= {s.id for s in spk}
        seen_texts.append(texts)
    assert len(synth.FRESH_SETS) >= 9
    with pytest.raises(ValueError, match="fresh sets"):
        synth.fresh_speakers(max(synth.FRESH_SETS) + 1)


def _median_f0(x: np.ndarray, sr: int = 16000) -> float:
    """Median F0 (Hz) of the loud 40 ms frames, from the autocorrelation peak between 60 and 400 Hz."""
    x = x.astype(np.float64)
    n = int(0.04 * sr)
    frames = [x[i: i + n] for i in range(0, x.size - n, n // 2)]
    loud = max(float(np.std(f)) for f in frames) * 0.3
    out = []
    for f in frames:
        if np.std(f) < loud:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        out.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(out))


@needs_tools
def test_flite_target_f0_speakers_speak_lower(tmp_path):
    """The F0 variants of EXTRA_TRAIN change flite's pitch (slt at 95 Hz is far below slt's own ~180 Hz)."""
    ex = synth.extra_speakers(24, len(synth.EXTRA_TRAIN))
    low = next(s for s in ex if s.voice == "slt" and s.f0 == 95)
    own = synth.Speaker("spk99", "flite", "slt", 0, 0, True)
    f0 = {}
    for name, spk in (("own", own), ("low", low)):
        job = {"speaker": synth.asdict(spk), "text": "set an alarm for seven thirty tomorrow",
               "path": str(tmp_path / f"{name}.wav"), "seed": 1}
        synth._synth_one(job)
        f0[name] = _median_f0(audio.read_wav(tmp_path / f"{name}.wav"))
    assert f0["low"] < 0.75 * f0["own"] and 70 < f0["low"] < 130, f0


@needs_tools
def test_sweep_operating_points_match_the_shifted_device(tiny, tmp_path):
    """speech sweep: one row per threshold, ascending; kept fraction falls as D rises and equals what the
    shifted masker (speech threshold) keeps; clean accuracy is the same at every D; the drop is clean - masked;
    pooled counts add up; the attackers decode the same files at each D; bad input is a one-line error."""
    from edgelearn.speech.mask import gates_for
    from edgelearn.speech.sweep import plot_sweep, sweep
    from edgelearn.speech.train import load_corpus, load_models, shift_threshold, validation_split

    d, m = tiny
    src = _model_dir(tmp_path / "k", m["intents"], val_speakers=3)
    asr = importlib.util.find_spec("pocketsphinx") is not None
    rep = sweep(d, src, [1.0, 0.0, 4.0], sets=("validation", "test"), n_asr=0, n_asr_lm=2 if asr else 0,
                log=lambda s: None)
    rows = [r for r in rep.results if r["name"] == "operating_point"]
    assert [r["delta"] for r in rows] == [0.0, 1.0, 4.0]
    kept = [r["pooled"]["kept"] for r in rows]
    assert kept[0] >= kept[1] >= kept[2] and kept[0] > kept[2]
    full = load_corpus(d)
    st = load_models(src)["state"]
    _, val = validation_split(full, st)
    va = full.subset(val)
    shift_threshold(src, tmp_path / "t", 1.0, d)
    g = load_models(tmp_path / "t")["gatenet"]
    gs = [gates_for(g, va.int16(i)) for i in range(len(va.ids))]
    assert rows[1]["sets"]["validation"]["kept"] == pytest.approx(sum(x.sum() for x in gs) / sum(x.size for x in gs))
    for r in rows:
        p, sets = r["pooled"], r["sets"]
        assert p["n"] == sets["validation"]["n"] + sets["test"]["n"] == 3 + 4
        assert p["clean"] == rows[0]["pooled"]["clean"]
        assert p["drop_points"] == pytest.approx(100 * (p["clean"] - p["masked"]))
        for key in ("drop_points_ci95", "drop_points_ci95_speakers"):
            assert p[key][0] - 1e-9 <= p["drop_points"] <= p[key][1] + 1e-9
        if asr:
            t = p["trigram"]
            assert t["files"] == 4 and t["wer_masked"] == min(t["wer_plain"], t["wer_filled"])
            assert t["wer_masked_ci95_speakers"][0] - 1e-9 <= t["wer_masked"] <= t["wer_masked_ci95_speakers"][1] + 1e-9
            assert ("wer_clean" in t) == (r is rows[0]) and "jsgf" not in p
    plot_sweep(rep, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    for kw, msg in (({"deltas": []}, "deltas"), ({"deltas": [float("nan")]}, "deltas"),
                    ({"deltas": [0], "sets": ()}, "sets"), ({"deltas": [0], "sets": ("test", str(d), str(d))}, "twice"),
                    ({"deltas": [0], "n_asr": -1}, "n_asr")):
        with pytest.raises(ValueError, match=msg):
            sweep(d, src, log=lambda s: None, **kw)
    with pytest.raises(FileNotFoundError):
        sweep(d, src, [0], sets=(str(tmp_path / "none"),), log=lambda s: None)


def test_readable_wer_keeps_only_speakers_read_clean():
    """The privacy claim restricted to the speakers the attacker reads clean: per-speaker clean WER decides, and
    the pooled WERs are over those speakers' files only."""
    from types import SimpleNamespace

    from edgelearn.speech.evaluate import readable_wer

    corpus = SimpleNamespace(speakers=["a", "b", "c"], speaker=np.array([0, 0, 1, 1, 2, 2]))
    files = np.arange(6)
    clean = {"word_errors": [0, 1, 5, 5, 1, 0], "words": [10, 10, 10, 10, 10, 10]}    # a 5%, b 50%, c 5%
    masked = {"word_errors": [8, 9, 2, 2, 7, 6], "words": [10, 10, 10, 10, 10, 10]}
    rd = readable_wer(corpus, files, clean, masked)
    assert rd["speakers"] == ["a", "c"] and rd["n_files"] == 4
    assert rd["wer_clean"] == pytest.approx(2 / 40) and rd["wer_masked"] == pytest.approx(30 / 40)
    none = readable_wer(corpus, files, clean, masked, bound=0.01)
    assert none["speakers"] == [] and none["wer_masked"] is None
    sub = readable_wer(corpus, np.array([2, 3, 4]), {k: v[2:5] for k, v in clean.items()},
                       {k: v[2:5] for k, v in masked.items()})
    assert sub["speakers"] == ["c"] and sub["wer_masked"] == pytest.approx(0.7)


@needs_tools
def test_train_stops_when_the_masker_collapses(tiny, tmp_path, monkeypatch):
    """A masker whose hard gates keep nothing (the budget's dual oscillating can leave every log_alpha below 0) must
    stop the run with a clear error, not fine-tune the cloud on silence."""
    from edgelearn.speech import train as tr

    def closed(cloud, gatenet, *a, **k):   # a collapsed masker: every gate shut
        with torch.no_grad():
            gatenet.convs[-1].bias.fill_(-20.0)
        gatenet.eval()
        return [{"epoch": 1, "kept": 0.3, "kl": 1.0, "lambda": 0.0}]

    monkeypatch.setattr(tr, "train_masker", closed)
    d, _ = tiny
    with pytest.raises(RuntimeError, match="masker collapsed in round 1: its hard gates keep 0.000"):
        tr.train_all(d, tmp_path / "m", epochs_cloud=1, epochs_mask=1, epochs_ft=1, keep_target=0.4, width=16,
                     log=lambda s: None)
    assert not (tmp_path / "m" / "speech_models.pt").exists()


@needs_tools
def test_train_masker_teacher_holes_is_the_saved_random_mask_model(tiny, tmp_path, monkeypatch):
    """masker_teacher 'holes': the first masker round's teacher is the random-mask baseline, trained once, before the
    masker, and saved as the baseline; the shift budget with it, through the CLI; bad combinations are clear errors."""
    from edgelearn.cli import main
    from edgelearn.speech import train as tr

    seen = []
    real = tr.train_masker

    def spy(cloud, *a, **k):
        seen.append({n: p.detach().clone() for n, p in cloud.state_dict().items()})
        return real(cloud, *a, **k)

    monkeypatch.setattr(tr, "train_masker", spy)
    d, _ = tiny
    out = tmp_path / "h"
    assert main(["speech", "train", "--corpus", str(d), "--models", str(out), "--epochs-cloud", "1", "--epochs-mask",
                 "1", "--epochs-ft", "1", "--keep-target", "0.4", "--width", "16", "--val-speakers", "0",
                 "--calibrate-kept", "--masker-budget", "shift", "--gate-param", "tanh", "--masker-teacher", "holes",
                 "--json", str(tmp_path / "h.json")]) == 0
    state = torch.load(out / "speech_models.pt", weights_only=False)
    assert len(seen) == 1 and all(torch.equal(seen[0][n], state["cloud_random"][n]) for n in seen[0])
    assert not all(torch.equal(seen[0][n], state["cloud"][n]) for n in seen[0])
    st = state["settings"]
    assert (st["masker_teacher"], st["masker_budget"], st["gate_param"]) == ("holes", "shift", "tanh")
    with pytest.raises(ValueError, match="masker_teacher"):
        tr.train_all(d, tmp_path / "x", masker_teacher="holes", log=lambda s: None)
    with pytest.raises(ValueError, match="calibrate_kept"):
        tr.train_all(d, tmp_path / "x", keep_target=0.4, masker_budget="shift", log=lambda s: None)


@needs_tools
def test_masker_seed_draws_another_masker_on_the_same_split(tiny, tmp_path):
    """--masker-seed: the same clean cloud and validation split, another gate network; the same masker seed gives
    the same gate network again."""
    from edgelearn.cli import main

    d, _ = tiny
    base = ["speech", "train", "--corpus", str(d), "--epochs-mask", "1", "--epochs-ft", "1", "--keep-target", "0.4",
            "--val-speakers", "1"]
    assert main(base + ["--models", str(tmp_path / "c"), "--epochs-cloud", "1", "--width", "16"]) == 0
    got = {}
    for name, ms in [("a", "3"), ("b", "3"), ("c4", "4")]:
        assert main(base + ["--models", str(tmp_path / name), "--cloud-from", str(tmp_path / "c"),
                            "--masker-seed", ms]) == 0
        got[name] = torch.load(tmp_path / name / "speech_models.pt", weights_only=False)
    assert got["a"]["settings"]["masker_seed"] == 3 and got["c4"]["settings"]["val_speakers"] == 1
    same = lambda x, y: all(torch.equal(x["gatenet"][k], y["gatenet"][k]) for k in x["gatenet"])   # noqa: E731
    assert same(got["a"], got["b"]) and not same(got["a"], got["c4"])
    assert all(torch.equal(got["a"]["cloud"][k], got["c4"]["cloud"][k]) for k in got["a"]["cloud"])


@needs_tools
def test_kept_threshold_puts_hard_gates_on_the_budget(tiny):
    """kept_threshold moves the gate threshold so the device's hard gates keep the asked fraction, along the
    masker's own ranking (a subset of the segments kept at a lower target)."""
    from edgelearn.speech.models import GateNet
    from edgelearn.speech.train import feats_of, hard_gates, kept_fraction, kept_threshold, load_corpus, shifted_gatenet

    d, _ = tiny
    c = load_corpus(d)
    f = feats_of(c.wave)
    torch.manual_seed(0)
    g = GateNet().eval()
    keeps = {}
    for target in (0.2, 0.4, 0.7):
        delta = kept_threshold(g, f, c.length, target, device=True)
        keeps[target] = np.concatenate(hard_gates(shifted_gatenet(g, delta), f, c.length, device=True)).astype(bool)
        assert abs(kept_fraction([keeps[target]]) - target) < 0.03, (target, kept_fraction([keeps[target]]))
    assert not (keeps[0.2] & ~keeps[0.4]).any() and not (keeps[0.4] & ~keeps[0.7]).any()
    with pytest.raises(ValueError, match="target"):
        kept_threshold(g, f, c.length, 1.0)


@needs_tools
def test_threshold_by_kept_fraction(tiny, tmp_path, capsys):
    """speech threshold --kept F: the device gates of the new directory keep F of the training segments."""
    from edgelearn.cli import main
    from edgelearn.speech.mask import gates_for
    from edgelearn.speech.train import load_corpus, load_models, validation_split

    d, m = tiny
    src = _model_dir(tmp_path / "k", m["intents"], val_speakers=0)
    assert main(["speech", "threshold", "--corpus", str(d), "--models", str(src), "--kept", "0.3",
                 "--out", str(tmp_path / "k30")]) == 0
    assert "keep 0.3 of the training segments" in capsys.readouterr().out
    c = load_corpus(d)
    fit, _ = validation_split(c, load_models(src)["state"])
    g = load_models(tmp_path / "k30")["gatenet"]
    kept = np.concatenate([gates_for(g, c.int16(i)) for i in np.flatnonzero(fit)])
    assert abs(kept.mean() - 0.3) < 0.03, kept.mean()
    assert main(["speech", "threshold", "--corpus", str(d), "--models", str(src), "--kept", "1.5",
                 "--out", str(tmp_path / "bad")]) == 1
    assert "target" in capsys.readouterr().err
