"""The masker's privacy adversary in training: a small CTC character recogniser (an ASR proxy).

SILENCE trains the mask generator for utility only (keep the cloud model's prediction, drop as many segments as the
KL budget allows); privacy then comes from the kept fraction alone. With ``train_masker(..., proxy=P, privacy=W)``
the masker also maximises this recogniser's CTC loss on the masked audio, so that, at the same kept fraction, it
prefers to drop the segments that carry the words. The proxy is differentiable and trained here on the clean
training audio; it is not an attacker of the evaluation (pocketsphinx is), only a stand-in the gradient can reach.

Model: voiced-frame CMVN of the 40-band log-mel (as the cloud model), two 1-D convolutions, a bidirectional GRU,
and a linear layer to the CTC blank plus 28 characters per 20 ms frame; greedy decoding.
"""

from __future__ import annotations

import time

import numpy as np

import torch
from torch import nn
from torch.nn import functional as F

from edgelearn.speech.features import N_MEL, n_frames
from edgelearn.speech.models import cmvn_voiced

CHARS = " abcdefghijklmnopqrstuvwxyz'"   # CTC labels 1..28; 0 is the blank
NLL_CAP = 3.0   # per-character CTC loss beyond which an utterance counts as unreadable (no gradient past it)


class ASRProxy(nn.Module):
    def __init__(self, width: int = 128):
        super().__init__()
        self.width = width
        self.conv = nn.Sequential(nn.Conv1d(N_MEL, width, 5, padding=2), nn.ReLU(),
                                  nn.Conv1d(width, width, 5, padding=2), nn.ReLU())
        self.rnn = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * width, len(CHARS) + 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """[B, T, 40] raw log-mel -> [B, T, 29] log-probabilities."""
        h = self.conv(cmvn_voiced(feats).transpose(1, 2)).transpose(1, 2)
        return F.log_softmax(self.out(self.rnn(h)[0]), -1)


def encode(text: str) -> list[int]:
    """CTC labels of a transcript (lower case; characters outside CHARS dropped)."""
    return [CHARS.index(c) + 1 for c in text.lower() if c in CHARS]


def greedy_decode(logp: torch.Tensor, n: int) -> str:
    """Best path over the first n frames of [T, 29] log-probabilities: repeats merged, blanks removed."""
    best = logp[:n].argmax(-1).tolist()
    out, prev = [], 0
    for k in best:
        if k != prev and k != 0:
            out.append(CHARS[k - 1])
        prev = k
    return " ".join("".join(out).split())


def ctc_nll(proxy: ASRProxy, feats: torch.Tensor, length: np.ndarray, texts: list[str]) -> torch.Tensor:
    """[B] CTC loss per character of each utterance (differentiable in feats); length: samples per utterance."""
    tg = [encode(t) for t in texts]
    if any(not t for t in tg):
        raise ValueError("ASR proxy: an utterance has an empty transcript")
    logp = proxy(feats)
    n_in = torch.tensor([min(n_frames(int(n)), logp.shape[1]) for n in length])
    n_tg = torch.tensor([len(t) for t in tg])
    nll = F.ctc_loss(logp.transpose(0, 1), torch.tensor(sum(tg, [])), n_in, n_tg, reduction="none",
                     zero_infinity=True)
    return nll / n_tg


def privacy_term(proxy: ASRProxy, feats: torch.Tensor, length: np.ndarray, texts: list[str],
                 cap: float = NLL_CAP) -> torch.Tensor:
    """The quantity the masker maximises: the mean per-character CTC loss, each utterance's capped at cap."""
    return ctc_nll(proxy, feats, length, texts).clamp(max=cap).mean()


def proxy_wer(proxy: ASRProxy, feats: torch.Tensor, length: np.ndarray, texts: list[str]) -> float:
    """Word error rate of the proxy's greedy transcripts."""
    from edgelearn.speech.attacks import wer

    proxy.eval()
    err = n = 0
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            logp = proxy(feats[i: i + 64])
            for j, t in enumerate(texts[i: i + 64]):
                e, k = wer(t, greedy_decode(logp[j], n_frames(int(length[i + j]))))
                err, n = err + e, n + k
    return err / max(n, 1)


def train_asr_proxy(feats: torch.Tensor, length: np.ndarray, texts: list[str], epochs: int = 15, bs: int = 32,
                    lr: float = 2e-3, width: int = 128, seed: int = 0, log=print) -> ASRProxy:
    """The proxy trained with CTC on clean audio ([N, T, 40] log-mel, samples per utterance, transcripts); one-cycle
    Adam."""
    if len(texts) != len(feats) or len(length) != len(feats):
        raise ValueError(f"ASR proxy: {len(feats)} feature rows, {len(length)} lengths, {len(texts)} transcripts")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    proxy = ASRProxy(width)
    opt = torch.optim.Adam(proxy.parameters(), lr=lr)
    steps = epochs * -(-len(feats) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for ep in range(epochs):
        proxy.train()
        t0, losses = time.time(), []
        for idx in torch.randperm(len(feats), generator=gen).split(bs):
            T = max(n_frames(int(length[i])) for i in idx)
            loss = ctc_nll(proxy, feats[idx, :T], length[idx.numpy()], [texts[i] for i in idx]).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(proxy.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        log(f"ASR proxy epoch {ep + 1}/{epochs}: CTC loss per character {np.mean(losses):.3f} "
            f"({time.time() - t0:.1f}s)")
    proxy.eval()
    return proxy
