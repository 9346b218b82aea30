"""Attackers nobody here wrote or trained for the mask:

- ASR: pocketsphinx (CMU, its shipped US-English acoustic model and dictionary), made *informed* in two ways:
  ``grammar="jsgf"``: a JSGF grammar built from the corpus's own phrasings and slot vocabularies, so it only has
  to choose among the sentences the corpus can contain (the strongest attacker: it can fill masked-out words from
  the phrasing it recognises); ``grammar="trigram"``: a back-off trigram LM of the training transcripts over the
  corpus vocabulary (it knows which words follow which, not the whole sentences: a language model as an ASR
  system would have for the domain); ``grammar="unigram"``: a word loop weighted by word frequencies (it knows the
  words only, so it must hear each word; too weak on clean audio to carry a privacy claim). Reports word error
  rate and entity (slot-value) error rate.
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


def ngram_arpa(transcripts: list[str], order: int = 3) -> str:
    """An ARPA back-off LM of the given order over the corpus vocabulary. Unigrams as unigram_arpa (add-one over
    the vocabulary, so every word can be recognised); orders 2..order interpolated Witten-Bell from the counts of
    `transcripts` (sentences padded with <s>, </s>; n-grams with words outside the vocabulary skipped):
    P(w | h) = (c(h w) + N(h) P(w | h')) / (c(h) + N(h)), N(h) = distinct words seen after h, h' = h without its
    first word. Written in back-off form: seen n-grams with that probability, and the back-off weight of a history
    is N(h) / (c(h) + N(h)) (1 for histories never seen), which gives every unseen word the interpolated
    probability exactly; so P(. | h) sums to 1 over the vocabulary and </s> for every history."""
    from collections import Counter

    from edgelearn.speech.synth import vocabulary

    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    vocab = vocabulary()
    known = set(vocab) | {"<s>", "</s>"}
    sents = [["<s>", *t.split(), "</s>"] for t in transcripts]
    c1 = Counter(w for s in sents for w in s[1:-1])
    total = sum(c1[w] + 1 for w in vocab) + len(sents)
    probs: list[dict] = [{}, {(w,): (c1[w] + 1) / total for w in vocab}]
    probs[1][("</s>",)] = max(len(sents), 1) / total
    bow: dict[tuple, float] = {}

    def p(g: tuple) -> float:   # the model's probability of g[-1] after g[:-1]
        if len(g) == 1:
            return probs[1][g]
        if g in probs[len(g)]:
            return probs[len(g)][g]
        return bow.get(g[:-1], 1.0) * p(g[1:])

    for n in range(2, order + 1):
        cn = Counter(tuple(s[i: i + n]) for s in sents for i in range(len(s) - n + 1)
                     if known.issuperset(s[i: i + n]))
        ch, nh = Counter(), Counter()
        for g, k in cn.items():
            ch[g[:-1]] += k
            nh[g[:-1]] += 1
        probs.append({g: (k + nh[g[:-1]] * p(g[1:])) / (ch[g[:-1]] + nh[g[:-1]]) for g, k in cn.items()})
        bow.update({h: nh[h] / (ch[h] + nh[h]) for h in ch})
    lines = ["\\data\\"] + [f"ngram {n}={len(probs[n]) + (n == 1)}" for n in range(1, order + 1)]
    for n in range(1, order + 1):
        lines += ["", f"\\{n}-grams:"]
        if n == 1:
            lines.append("-99.0000 <s>" + (f" {np.log10(bow[('<s>',)]):.4f}" if ("<s>",) in bow else ""))
        for g, pr in probs[n].items():
            b = f" {np.log10(bow[g]):.4f}" if n < order and g in bow else ""
            lines.append(f"{np.log10(pr):.4f} {' '.join(g)}{b}")
    return "\n".join(lines + ["", "\\end\\", ""])


class SphinxASR:
    """pocketsphinx informed by the corpus: grammar="jsgf" (its sentences), "trigram" (a trigram LM of the
    training transcripts) or "unigram" (its words, weighted by the training transcripts' counts);
    transcribe(int16 audio) -> text."""

    def __init__(self, grammar: str = "jsgf", transcripts: list[str] | None = None):
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise ImportError(f"{e}: the ASR attacker needs pocketsphinx: pip install pocketsphinx") from e
        if grammar not in ("jsgf", "trigram", "unigram"):
            raise ValueError(f"grammar: 'jsgf', 'trigram' or 'unigram', got {grammar!r}")
        self.grammar = grammar
        with tempfile.TemporaryDirectory() as td:   # the decoder reads the grammar / LM when it is made
            if grammar == "jsgf":
                g = Path(td) / "corpus.gram"
                g.write_text(jsgf_grammar())
                self.decoder = Decoder(samprate=16000, jsgf=str(g), loglevel="FATAL")
            else:
                g = Path(td) / "corpus.arpa"
                lm = ngram_arpa(transcripts or [], 3) if grammar == "trigram" else unigram_arpa(transcripts or [])
                g.write_text(lm)
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


def ratio_ci(num, den, level: float = 0.95, n_boot: int = 2000, seed: int = 0, groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval of sum(num) / sum(den) over items resampled with replacement (e.g. files:
    word errors / words, or utterances: correct_clean - correct_masked / 1). Without groups the items are treated
    as independent, which is too narrow when they cluster (utterances of one speaker); groups (one label per item,
    e.g. the speaker) resamples whole groups instead: the cluster bootstrap, wider and crude with few groups."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    if num.shape != den.shape or num.ndim != 1 or num.size == 0:
        raise ValueError(f"ratio_ci: num and den must be 1-D of one non-zero length, got {num.shape}, {den.shape}")
    if not 0 < level < 1:
        raise ValueError(f"ratio_ci: level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, num.size, (n_boot, num.size))
        r = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    else:
        groups = np.asarray(groups)
        if groups.shape != num.shape:
            raise ValueError(f"ratio_ci: groups must label every item, got {groups.shape} for {num.shape}")
        _, g = np.unique(groups, return_inverse=True)
        gn, gd = np.bincount(g, num), np.bincount(g, den)   # per-group sums: resample groups whole
        idx = rng.integers(0, gn.size, (n_boot, gn.size))
        r = gn[idx].sum(1) / np.maximum(gd[idx].sum(1), 1e-12)
    a = (1 - level) / 2
    return float(np.quantile(r, a)), float(np.quantile(r, 1 - a))


def asr_attack(asr: SphinxASR, audios: list[np.ndarray], utts: list[dict]) -> dict:
    """Decode each audio; word error rate over all words (with a 95% bootstrap interval over files; per file:
    word_errors, words), entity error rate over all slot values, the first hypotheses as examples."""
    errs, words = [], []
    ee = ne = 0
    hyps = []
    for x, u in zip(audios, utts):
        hyp = asr.transcribe(x)
        hyps.append(hyp)
        a, b = wer(u["text"], hyp)
        errs.append(a)
        words.append(b)
        a, b = entity_errors(u["slots"], hyp)
        ee, ne = ee + a, ne + b
    e, n = sum(errs), sum(words)
    ci = ratio_ci(errs, words) if errs else (0.0, 0.0)
    return {"wer": e / max(n, 1), "wer_ci95": ci, "entity_error_rate": ee / max(ne, 1), "n": len(utts),
            "word_errors": errs, "words": words, "examples": hyps[:5]}


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
