"""Attackers nobody here wrote or trained for the mask:

- ASR: pocketsphinx (CMU, its shipped US-English acoustic model and dictionary), made *informed* in two ways:
  ``grammar="jsgf"``: a JSGF grammar built from the corpus's own phrasings and slot vocabularies, so it only has
  to choose among the sentences the corpus can contain (the strongest attacker: it can fill masked-out words from
  the phrasing it recognises); ``grammar="unigram"``: a word loop over the corpus vocabulary weighted by word
  frequencies of the training transcripts (a unigram LM: it knows the words, not the sentences, so it must hear
  each word). Reports word error rate and entity (slot-value) error rate.
  Masked audio has runs of digital silence, on which pocketsphinx often ends without a hypothesis (an empty
  transcript: WER 100% for nothing); the attackers therefore also decode it with those runs filled by noise at the
  utterance's own noise floor (``fill_silence``), and the evaluation keeps the lower WER of the two.
- Speaker ID: a small x-vector-like classifier (convolutions + mean/std pooling over log-mel) trained on masked
  audio of every speaker and tested on held-out utterances, clean and masked, against chance.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgelearn.speech.synth import INTENTS, SLOTS


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edit distance, reference length) of two transcripts (Levenshtein over words)."""
    r, h = ref.split(), hyp.split()
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d[0] = d.copy(), i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return int(d[len(h)]), len(r)


def entity_errors(slots: list[dict], hyp: str) -> tuple[int, int]:
    """(slot values not found verbatim in the hypothesis, number of slot values)."""
    h = f" {hyp} "
    return sum(f" {s['value']} " not in h for s in slots), len(slots)


def jsgf_grammar() -> str:
    """The corpus as a JSGF grammar: every phrasing, slot references as rules over the slot vocabularies."""
    lines = ["#JSGF V1.0;", "grammar corpus;"]
    for slot, values in SLOTS.items():
        lines.append(f"<{slot}> = {' | '.join(values)};")
    alts = sorted({t.replace("{", "<").replace("}", ">") for ts in INTENTS.values() for t in ts})
    lines.append("public <command> = " + " | ".join(f"( {a} )" for a in alts) + ";")
    return "\n".join(lines) + "\n"


def unigram_arpa(transcripts: list[str]) -> str:
    """An ARPA unigram LM over the corpus vocabulary: word counts of `transcripts` (training speakers only),
    add-one smoothed so every vocabulary word can be recognised; sentence end as frequent as sentences."""
    from collections import Counter

    from edgelearn.speech.synth import vocabulary

    counts = Counter(w for t in transcripts for w in t.split())
    vocab = vocabulary()
    total = sum(counts[w] + 1 for w in vocab) + len(transcripts)
    lines = ["\\data\\", f"ngram 1={len(vocab) + 2}", "", "\\1-grams:", "-99.0000 <s>",
             f"{np.log10(max(len(transcripts), 1) / total):.4f} </s>"]
    lines += [f"{np.log10((counts[w] + 1) / total):.4f} {w}" for w in vocab]
    return "\n".join(lines + ["", "\\end\\", ""])


class SphinxASR:
    """pocketsphinx informed by the corpus: grammar="jsgf" (its sentences) or "unigram" (its words, weighted by
    the training transcripts' counts); transcribe(int16 audio) -> text."""

    def __init__(self, grammar: str = "jsgf", transcripts: list[str] | None = None):
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise ImportError(f"{e}: the ASR attacker needs pocketsphinx: pip install pocketsphinx") from e
        if grammar not in ("jsgf", "unigram"):
            raise ValueError(f"grammar: 'jsgf' or 'unigram', got {grammar!r}")
        self.grammar = grammar
        with tempfile.TemporaryDirectory() as td:   # the decoder reads the grammar / LM when it is made
            if grammar == "jsgf":
                g = Path(td) / "corpus.gram"
                g.write_text(jsgf_grammar())
                self.decoder = Decoder(samprate=16000, jsgf=str(g), loglevel="FATAL")
            else:
                g = Path(td) / "corpus.arpa"
                g.write_text(unigram_arpa(transcripts or []))
                self.decoder = Decoder(samprate=16000, lm=str(g), loglevel="FATAL")

    def transcribe(self, x: np.ndarray) -> str:
        d = self.decoder
        d.start_utt()
        d.process_raw(np.ascontiguousarray(x, np.int16).tobytes(), full_utt=True)
        d.end_utt()
        h = d.hyp()
        return h.hypstr if h is not None else ""


def fill_silence(x: np.ndarray, seed: int = 0, min_run: int = 32) -> np.ndarray:
    """int16 audio with every run of >= min_run exact zeros (dropped segments) filled by Gaussian noise at the
    utterance's noise floor (10th percentile of the RMS of its 20 ms frames that hold no zero run). Audio without
    such runs is returned unchanged."""
    x = np.asarray(x, np.int16)
    z = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    d = np.diff(z)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    runs = [(a, b) for a, b in zip(starts, ends) if b - a >= min_run]
    if not runs:
        return x.copy()
    hole = np.zeros(x.size, bool)
    for a, b in runs:
        hole[a:b] = True
    n = x.size // 320
    fr = x[: n * 320].astype(np.float64).reshape(n, 320)
    ok = ~hole[: n * 320].reshape(n, 320).any(1)
    rms = np.sqrt((fr[ok] ** 2).mean(1)) if ok.any() else np.array([30.0])
    sd = max(float(np.percentile(rms, 10)), 1.0)
    y = x.astype(np.float64)
    y[hole] = np.random.default_rng(seed).standard_normal(int(hole.sum())) * sd
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def asr_attack(asr: SphinxASR, audios: list[np.ndarray], utts: list[dict]) -> dict:
    e = n = ee = ne = 0
    hyps = []
    for x, u in zip(audios, utts):
        hyp = asr.transcribe(x)
        hyps.append(hyp)
        a, b = wer(u["text"], hyp)
        e, n = e + a, n + b
        a, b = entity_errors(u["slots"], hyp)
        ee, ne = ee + a, ne + b
    return {"wer": e / max(n, 1), "entity_error_rate": ee / max(ne, 1), "n": len(utts), "examples": hyps[:5]}


def speaker_attack(train_feats, train_spk, test_sets: dict, n_speakers: int, epochs: int = 12, seed: int = 0) -> dict:
    """Train a speaker classifier on train_feats [N, T, 40] (masked audio) and report accuracy on each test set
    (name -> (feats, speakers)) and chance = 1 / n_speakers."""
    import torch
    from torch import nn

    from edgelearn.speech.train import accuracy, train_classifier

    class SpeakerNet(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.norm = nn.BatchNorm1d(40)
            self.conv = nn.Sequential(nn.Conv1d(40, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(),
                                      nn.Conv1d(64, 64, 3, padding=2, dilation=2), nn.BatchNorm1d(64), nn.ReLU())
            self.head = nn.Linear(128, n)

        def forward(self, f):
            keep = (f.amax(-1) > -10).float()[:, None]        # frames with signal (not padding / dropped)
            h = self.conv(self.norm(f.clamp(min=-10).transpose(1, 2)))
            w = keep / keep.sum(-1, keepdim=True).clamp(min=1)
            mu = (h * w).sum(-1)
            sd = ((h - mu[..., None]) ** 2 * w).sum(-1).clamp(min=1e-6).sqrt()
            return self.head(torch.cat([mu, sd], -1))

    torch.manual_seed(seed)
    m = train_classifier(SpeakerNet(n_speakers), train_feats, torch.as_tensor(train_spk), epochs=epochs, seed=seed,
                         log=lambda s: None, name="speaker")
    out = {"chance": 1.0 / n_speakers}
    for name, (f, s) in test_sets.items():
        out[name] = accuracy(m, f, torch.as_tensor(s))
    return out
