"""Models: the cloud SLU model, hard-concrete gates (L0 relaxation) and the on-device gate network.

Segments are uniform: SEG samples (40 ms = 2 feature hops). Segment s covers samples [s*SEG, (s+1)*SEG) and its
gate is computed from the feature frames 2s and 2s+1 and their context (the convolutions' receptive field).
"""

from __future__ import annotations

import math

import numpy as np

import torch
from torch import nn
from torch.nn import functional as F

from edgelearn.speech.audio import HOP
from edgelearn.speech.features import N_MEL

FRAMES_PER_SEG = 2
SEG = FRAMES_PER_SEG * HOP   # 640 samples, 40 ms
RAMP = 64                    # samples of linear fade at each edge of a dropped run (4 ms): no clicks

# hard-concrete (Louizos et al. 2018) stretch and temperature
HC_BETA, HC_GAMMA, HC_ZETA = 2.0 / 3.0, -0.1, 1.1


def hard_concrete_sample(log_alpha: torch.Tensor, beta: float = HC_BETA) -> torch.Tensor:
    """A relaxed gate in [0, 1] with point masses at 0 and 1 (reparameterised: gradients flow to log_alpha)."""
    u = torch.rand_like(log_alpha).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)
    return (s * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)


def hard_concrete_p_open(log_alpha: torch.Tensor, beta: float = HC_BETA) -> torch.Tensor:
    """P(gate != 0): the expected L0 norm per gate, differentiable."""
    return torch.sigmoid(log_alpha - beta * math.log(-HC_GAMMA / HC_ZETA))


def hard_concrete_deterministic(log_alpha: torch.Tensor) -> torch.Tensor:
    """The gate at test time: the stretched sigmoid's median, clamped; binarised with > 0.5 by callers."""
    return (torch.sigmoid(log_alpha) * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)


FLOOR = -10.0   # log-mel values are clamped here; frames whose loudest band is at the floor are silence/dropped


def cmvn_voiced(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance, per-band mean and variance normalisation of [B, T, 40] log-mel, with the statistics taken over
    frames that hold signal (loudest band above FLOOR + 1) only, so padding and masked-out segments do not shift
    them; those frames are set to 0 afterwards. Removes most of the speaker / channel offset."""
    f = feats.clamp(min=FLOOR)
    w = (f.amax(-1, keepdim=True) > FLOOR + 1).float()
    n = w.sum(1, keepdim=True).clamp(min=1.0)
    mu = (f * w).sum(1, keepdim=True) / n
    sd = (((f - mu) ** 2 * w).sum(1, keepdim=True) / n).clamp(min=1e-4).sqrt()
    return (f - mu) / sd * w


def spec_augment(feats: torch.Tensor, gen: torch.Generator, n_time: int = 2, max_time: int = 12, n_freq: int = 2,
                 max_freq: int = 6) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) on raw log-mel [B, T, 40]: time masks set frames to the floor (what a dropped
    segment looks like), frequency masks set bands to FLOOR as well (silence in that band)."""
    f = feats.clone()
    B, T, M = f.shape
    for b in range(B):
        for _ in range(n_time):
            w = int(torch.randint(0, max_time + 1, (1,), generator=gen))
            t0 = int(torch.randint(0, max(1, T - w), (1,), generator=gen))
            f[b, t0: t0 + w] = FLOOR
        for _ in range(n_freq):
            w = int(torch.randint(0, max_freq + 1, (1,), generator=gen))
            m0 = int(torch.randint(0, M - w + 1, (1,), generator=gen))
            f[b, :, m0: m0 + w] = FLOOR
    return f


def warp_mel(feats: torch.Tensor, a: float) -> torch.Tensor:
    """[..., 40] log-mel with its mel axis warped by a (vocal tract length): band m takes the value at band m * a,
    linear interpolation, clamped at the edges. a = 1: unchanged."""
    M = feats.shape[-1]
    pos = (torch.arange(M, dtype=feats.dtype) * a).clamp(0, M - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=M - 1)
    w = pos - lo
    return feats[..., lo] * (1 - w) + feats[..., hi] * w


def voice_augment(feats: torch.Tensor, gen: torch.Generator, stretch: float = 0.15, warp: float = 0.1) -> torch.Tensor:
    """Other voices from the same log-mel [B, T, 40], one draw per utterance: the mel axis warped by
    a ~ U(1 - warp, 1 + warp) (vocal tract length, as VTLP: band m takes the value at band m * a, linear
    interpolation, clamped at the edges), then time stretched by r ~ U(1 - stretch, 1 + stretch) (speaking rate,
    linear interpolation of frames). Returns [B, round(T * (1 + stretch)), 40], padded with FLOOR (silence)."""
    B, T, M = feats.shape
    out = torch.full((B, int(round(T * (1 + stretch))), M), FLOOR, dtype=feats.dtype)
    for b in range(B):
        a = 1 + warp * (2 * float(torch.rand((), generator=gen)) - 1)
        r = 1 + stretch * (2 * float(torch.rand((), generator=gen)) - 1)
        f = warp_mel(feats[b], a)
        n = min(out.shape[1], max(1, int(round(T * r))))
        out[b, :n] = F.interpolate(f.T[None], size=n, mode="linear", align_corners=True)[0].T
    return out


class CloudSLU(nn.Module):
    """Cloud intent classifier over log-mel: per-utterance normalisation over voiced frames (``cmvn_voiced``),
    input batch-norm, four 1-D convolutions (the last two dilated, x2 time downsampling), mean+max pooling over
    time, linear head."""

    def __init__(self, n_intents: int, width: int = 64):
        super().__init__()
        self.norm = nn.BatchNorm1d(N_MEL)
        self.convs = nn.ModuleList([nn.Conv1d(N_MEL, width, 5, padding=2),
                                    nn.Conv1d(width, width, 5, stride=2, padding=2),
                                    nn.Conv1d(width, width, 5, padding=4, dilation=2),
                                    nn.Conv1d(width, width, 5, padding=8, dilation=4)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(width) for _ in self.convs])
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(2 * width, n_intents)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, T, 40] -> [B, n_intents]
        h = self.norm(cmvn_voiced(feats).transpose(1, 2))
        for conv, bn in zip(self.convs, self.bns):
            h = F.relu(bn(conv(h)))
        return self.head(self.drop(torch.cat([h.mean(-1), h.amax(-1)], -1)))


class EnsembleSLU(nn.Module):
    """Cloud models fine-tuned from the same clean model with different seeds, as one: the mean of the members'
    log-probabilities (a cloud-side choice: the device and what it sends are unchanged)."""

    def __init__(self, members):
        super().__init__()
        if not members:
            raise ValueError("EnsembleSLU: needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, T, 40] -> [B, n_intents] log-probabilities
        return torch.stack([F.log_softmax(m(feats), -1) for m in self.members]).mean(0)


class WarpAverageSLU(nn.Module):
    """A cloud model averaged over voices at test time: the mean of its log-probabilities on the input with the mel
    axis warped by each of `warps` (``warp_mel``), the voice augmentation's warps seen at inference. A cloud-side
    choice: what the device sends is unchanged."""

    def __init__(self, model: nn.Module, warps):
        super().__init__()
        warps = [float(a) for a in warps]
        if not warps or not all(np.isfinite(a) and 0.5 <= a <= 2.0 for a in warps):
            raise ValueError(f"warps: one or more mel warps in [0.5, 2], got {warps}")
        self.model, self.warps = model, warps

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, T, 40] -> [B, n_intents] log-probabilities
        return torch.stack([F.log_softmax(self.model(warp_mel(feats, a)), -1) for a in self.warps]).mean(0)


class GateNet(nn.Module):
    """On-device gate network, in the layout of the int8 kernel ``speech_gate_net_s8``: log-mel frames averaged
    per segment of 2 frames, normalised by fixed (training-set) per-band `mean`/`std`, then
    Conv1d(40, C, 5) -> ReLU -> Conv1d(C, C, 5) -> ReLU -> Conv1d(C, 1, 5) over segments ('same' padding) =
    log_alpha of each segment's hard-concrete gate. Receptive field 13 segments (6 = 240 ms look-ahead)."""

    def __init__(self, channels: int = 32, kernel: int = 5):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(N_MEL, channels, kernel, padding=kernel // 2),
                                    nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
                                    nn.Conv1d(channels, 1, kernel, padding=kernel // 2)])
        self.register_buffer("mean", torch.zeros(N_MEL))
        self.register_buffer("std", torch.ones(N_MEL))
        nn.init.constant_(self.convs[-1].bias, 2.0)   # start with most gates open

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, T, 40] -> [B, ceil(T/2)] log_alpha
        B, T, _ = feats.shape
        if T % FRAMES_PER_SEG:
            feats = torch.cat([feats, feats[:, -1:]], 1)   # a last half segment: its one frame, as the kernel's mean
        h = feats.reshape(B, -1, FRAMES_PER_SEG, N_MEL).mean(2)
        h = ((h - self.mean) / self.std).transpose(1, 2)
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = F.relu(h)
        return h[:, 0]

    def layers(self) -> list[dict]:
        """The float layers in the kernel's format (gate_net_quantize / gate_net_float)."""
        n = len(self.convs)
        return [{"weight": c.weight.detach().numpy().astype(np.float64), "bias": c.bias.detach().numpy().astype(np.float64),
                 "relu": i < n - 1} for i, c in enumerate(self.convs)]


def pool_gates(log_alpha: torch.Tensor, block: int) -> torch.Tensor:
    """Gates over blocks of `block` segments ("words" rather than phones): [B, S] log_alpha -> [B, S], each block's
    segments sharing the mean log_alpha of the block (the last block may be shorter). block = 1: unchanged.
    On the device this is a running sum of the gate network's logits before the sign test (logit > 0)."""
    if block == 1:
        return log_alpha
    B, S = log_alpha.shape
    nb = -(-S // block)
    pad = nb * block - S
    x = torch.cat([log_alpha, log_alpha.new_zeros(B, pad)], 1).reshape(B, nb, block)
    cnt = torch.cat([log_alpha.new_ones(S), log_alpha.new_zeros(pad)]).reshape(nb, block).sum(1)
    return (x.sum(2) / cnt).repeat_interleave(block, dim=1)[:, :S]


def upsample_gates(z: torch.Tensor, n: int) -> torch.Tensor:
    """[B, S] gates -> [B, n] per-sample multipliers (training: no ramps, gates are soft already).
    Samples past the last full segment take the last gate."""
    g = z.repeat_interleave(SEG, dim=1)
    if g.shape[1] < n:
        g = torch.cat([g, g[:, -1:].expand(-1, n - g.shape[1])], 1)
    return g[:, :n]
