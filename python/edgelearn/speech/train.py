"""Training SILENCE's way, in three stages (all on CPU, minutes on 2 cores at the default corpus size):

1. ``train_cloud``: the cloud SLU model on clean audio (cross-entropy).
2. ``train_masker``: the GateNet's hard-concrete gates over uniform segments (or blocks of `block` segments
   sharing one gate, ``models.pool_gates``), in one of two equivalent Lagrangian forms:
   KL budget (SILENCE's): minimise E[kept fraction] subject to KL(cloud(clean) || cloud(masked)) <= gamma,
   L = E[kept] + lambda * (KL - gamma), lambda += lr_dual * (KL - gamma), clamped at 0;
   kept budget (``keep_target``): minimise KL subject to E[kept] <= keep_target,
   L = KL + mu * c + (RHO / 2) * relu(c)^2 with c = E[kept] - keep_target, mu += lr_dual * c, clamped at 0. The kept
   fraction is a smooth function of the gates (no sampling noise), so this form settles where the KL form
   oscillates (see docs/speech.md); the KL it reaches is the gamma it implies. The cloud model is frozen here;
   gradients flow through the mask, the differentiable log-mel and the cloud model into the GateNet.
3. fine-tuning: the cloud model fine-tuned on audio masked by the (binarised) generator; a second copy on
   random masks at the same kept fraction (same block length), for the baseline. With ``rounds`` > 1, stages 2
   and 3 alternate: the next masker round measures the KL against the cloud model fine-tuned on the last masks.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from edgelearn.speech.audio import read_wav
from edgelearn.speech.features import logmel_torch, n_frames
from edgelearn.speech.mask import apply_mask, extend_gates, random_gates
from edgelearn.speech.models import (FRAMES_PER_SEG, SEG, CloudSLU, EnsembleSLU, GateNet, hard_concrete_deterministic,
                                     hard_concrete_p_open, hard_concrete_sample, pool_gates, spec_augment,
                                     upsample_gates, voice_augment)
from edgelearn.speech.synth import load_manifest


@dataclass
class Corpus:
    ids: list[str]
    wave: torch.Tensor      # [N, L] float, int16 / 32768, zero padded
    length: np.ndarray      # [N] samples
    intent: torch.Tensor    # [N] int64
    speaker: np.ndarray     # [N] speaker index
    split: np.ndarray       # [N] "train" / "test"
    utts: list[dict]
    intents: list[str]
    speakers: list[str]
    families: dict | None = None   # speaker id -> voice family ("engine pitch/rate"), for stratified validation
    extra: frozenset = frozenset()  # extra training speakers (synth extra_train): never validation candidates

    def subset(self, mask) -> "Corpus":
        idx = np.flatnonzero(mask)
        return Corpus([self.ids[i] for i in idx], self.wave[idx], self.length[idx], self.intent[idx],
                      self.speaker[idx], self.split[idx], [self.utts[i] for i in idx], self.intents, self.speakers,
                      self.families, self.extra)

    def int16(self, i: int) -> np.ndarray:
        return np.round(self.wave[i, : self.length[i]].numpy() * 32768).clip(-32768, 32767).astype(np.int16)


def load_corpus(corpus_dir, normalise: bool = False) -> Corpus:
    """The corpus's audio and labels; normalise: each utterance speaker-normalised (``normalise.speaker_normalise``)
    as the device would before masking."""
    m = load_manifest(corpus_dir)
    utts = m["utterances"]
    xs = [read_wav(Path(corpus_dir) / u["path"]) for u in utts]
    if normalise:
        from edgelearn.speech.normalise import speaker_normalise

        xs = [speaker_normalise(x) for x in xs]
    L = -(-max(x.size for x in xs) // SEG) * SEG
    wave = torch.zeros(len(xs), L)
    for i, x in enumerate(xs):
        wave[i, : x.size] = torch.from_numpy(x.astype(np.float32) / 32768.0)
    spk = sorted({u["speaker"] for u in utts})
    return Corpus([u["id"] for u in utts], wave, np.array([x.size for x in xs]),
                  torch.tensor([m["intents"].index(u["intent"]) for u in utts]),
                  np.array([spk.index(u["speaker"]) for u in utts]), np.array([u["split"] for u in utts]),
                  utts, m["intents"], spk,
                  {s["id"]: f"{s['engine']} {s['pitch']}/{s['rate']}" for s in m.get("speakers", [])},
                  frozenset(s["id"] for s in m.get("speakers", []) if s.get("extra")))


def feats_of(wave: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([logmel_torch(wave[i: i + chunk]) for i in range(0, len(wave), chunk)])


def seg_valid(length: np.ndarray, S: int) -> torch.Tensor:
    """[N, S] 1 for segments that hold real audio (not padding)."""
    n_seg = torch.from_numpy(-(-length // SEG))
    return (torch.arange(S)[None] < n_seg[:, None]).float()


def _batches(n: int, bs: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, bs):
        yield perm[i: i + bs]


def train_classifier(model, feats, labels, epochs=12, bs=32, lr=3e-3, seed=0, log=print, name="cloud",
                     wave_fn=None, augment=False, weight_decay=1e-4, soft=None, distill=0.0, voice_aug=False,
                     voice_warp=0.1):
    """Cross-entropy training with AdamW and a one-cycle schedule (warm-up, cosine decay); wave_fn(idx) ->
    features of a batch, when features change per batch (masks); augment: SpecAugment on each batch; voice_aug:
    ``voice_augment`` (mel warp up to +-voice_warp, time stretch: other voices) on each batch, before SpecAugment;
    soft: [N, C] log-probabilities of a teacher (the clean model on clean audio), mixed into the loss as
    (1 - distill) * cross-entropy + distill * KL(teacher || model)."""
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed + 7919)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * (-(-len(labels) // bs)))
    for ep in range(epochs):
        model.train()
        tot, correct, t0 = 0.0, 0, time.time()
        for idx in _batches(len(labels), bs, gen):
            f = wave_fn(idx) if wave_fn else feats[idx]
            if voice_aug:
                f = voice_augment(f, aug_gen, warp=voice_warp)
            if augment:
                f = spec_augment(f, aug_gen)
            logits = model(f)
            loss = F.cross_entropy(logits, labels[idx])
            if soft is not None and distill > 0:
                kl = F.kl_div(F.log_softmax(logits, -1), soft[idx], log_target=True, reduction="batchmean")
                loss = (1 - distill) * loss + distill * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == labels[idx]).sum())
        log(f"{name} epoch {ep + 1}/{epochs}: loss {tot / len(labels):.3f} train acc {correct / len(labels):.3f} "
            f"({time.time() - t0:.1f}s)")
    model.eval()
    return model


def accuracy(model, feats, labels, bs=128) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(feats[i: i + bs]).argmax(1) for i in range(0, len(feats), bs)])
    return float((pred == labels).float().mean())


LA_BOUND = 4.0   # log_alpha bounded to +-4 while training the masker (P(open) in [0.004, 0.996]), see GATE_PARAMS


class _InwardClamp(torch.autograd.Function):
    """clamp(raw, -b, b) forward; backward passes the gradient inside the bound, and outside it only the part that
    moves raw back towards the bound (descent on a raw above b may lower it, never raise it)."""

    @staticmethod
    def forward(ctx, raw, b):
        ctx.save_for_backward(raw)
        ctx.b = b
        return raw.clamp(-b, b)

    @staticmethod
    def backward(ctx, g):
        (raw,) = ctx.saved_tensors
        out = ((raw > ctx.b) & (g < 0)) | ((raw < -ctx.b) & (g > 0))
        return g.masked_fill(out, 0.0), None


def _bounded(raw: torch.Tensor, gate_param: str) -> torch.Tensor:
    """The gate network's raw output -> the log_alpha the masker trains with (GATE_PARAMS). All are monotone in raw
    and keep its sign, so the device's test (raw > 0, or > delta after calibration) ranks segments alike."""
    if gate_param == "clamp":   # straight-through: the forward is clamped, every gradient passes
        return raw - (raw - raw.clamp(-LA_BOUND, LA_BOUND)).detach()
    if gate_param == "tanh":
        return LA_BOUND * torch.tanh(raw / LA_BOUND)
    return _InwardClamp.apply(raw, LA_BOUND)


def budget_shift(raw: torch.Tensor, valid: torch.Tensor, target: float, gate_param: str) -> torch.Tensor:
    """The shift b at which the gates of this batch keep `target` of its valid segments in expectation:
    sum(valid * P(open | _bounded(raw - b))) = target * sum(valid), found by bisection (the left side falls as b
    rises). Differentiable in raw by the implicit function theorem: db/draw_i = valid_i q'_i / sum_j valid_j q'_j,
    q' the slope of P(open) at raw_i - b. So the budget holds by construction and the gradient moves the ranking of
    segments only: raising every raw alike changes nothing."""
    r = raw.detach()
    n = valid.sum()

    def kept(b):
        return (hard_concrete_p_open(_bounded(r - b, gate_param)) * valid).sum() / n

    lo, hi = float(r[valid > 0].min()) - 4 * LA_BOUND, float(r[valid > 0].max()) + 4 * LA_BOUND
    with torch.no_grad():
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if kept(mid) > target else (lo, mid)
    b = 0.5 * (lo + hi)
    x = (r - b).requires_grad_(True)
    with torch.enable_grad():
        q = hard_concrete_p_open(_bounded(x, gate_param))
        (slope,) = torch.autograd.grad(q.sum(), x)
    w = slope * valid
    w = w / w.sum().clamp_min(1e-12)
    return b + (w * (raw - r)).sum()


BUDGETS = {
    "lagrangian": "the kept budget by a multiplier (dual ascent plus a quadratic penalty on the violation)",
    "shift": "the kept budget by construction: each batch's log_alphas are shifted so that its expected kept fraction "
             "is the budget (``budget_shift``), and the masker minimises the KL alone; needs calibration of the "
             "device threshold afterwards",
}


GATE_PARAMS = {
    "clamp": "straight-through clamp to +-4 (the L0 term keeps its gradient on gates pushed wide open; raw values "
             "can run far past the bound, where their ranking is untrained)",
    "tanh": "log_alpha = 4 tanh(raw / 4): bounded and smooth, gradients shrink past the bound",
    "inward": "clamp to +-4 whose backward drops the gradients that push raw further out (wide-open gates can still "
              "be closed, nothing drifts outward)",
}


RHO = 20.0   # quadratic weight of the kept-budget violation (augmented Lagrangian)


def _kl_term(kl_u: torch.Tensor, cvar: float | None, groups: torch.Tensor | None) -> torch.Tensor:
    """The masker's KL from per-utterance KLs: the mean, or the mean of the worst fraction cvar; with groups, that
    statistic per group and the largest of them."""
    def stat(v):
        return v.mean() if cvar is None else v.topk(max(1, math.ceil(cvar * len(v)))).values.mean()
    if groups is None:
        return stat(kl_u)
    return torch.stack([stat(kl_u[groups == g]) for g in torch.unique(groups)]).max()


def train_masker(cloud, gatenet, wave, feats, length, gamma=0.15, epochs=10, bs=32, lr=3e-3, lr_dual=1.0,
                 seed=0, log=print, keep_target=None, block=1, kl_cvar=None, groups=None, proxy=None, privacy=0.0,
                 texts=None, privacy_cap=3.0, gate_param="clamp", anneal=False, budget="lagrangian"):
    """Lagrangian training of the GateNet (see the module doc): the KL budget gamma, or the kept budget keep_target
    when given. kl_cvar q in (0, 1]: the KL term is the mean over the worst q of each batch's utterances (CVaR)
    instead of over all, so voices the cloud model finds hard get the segments they need rather than being
    averaged away. groups ([N] ints, e.g. voice families): the KL term is the largest group mean in each batch
    (group DRO: the worst-served kind of voice sets the constraint), computed over each group's utterances with
    kl_cvar applied within the group when both are given. proxy, privacy, texts: an ASR proxy (``proxy.ASRProxy``)
    whose CTC loss per character on the masked audio (capped at privacy_cap per utterance), weighted by privacy,
    is subtracted from the loss (the masker drops what the proxy needs to read the transcripts). gate_param: how the
    gate network's raw output becomes the trained log_alpha (GATE_PARAMS). anneal: the masker's learning rate and
    the multiplier's step both decay to 0 on a cosine over the run, so the gates settle instead of ending wherever
    the primal-dual oscillation happens to be. budget: how the kept budget is held (BUDGETS; "shift" needs
    keep_target). Returns the history of (kept, kl,
    lambda[, proxy]) per epoch, with the spread of raw log_alphas (5th and 95th percentiles) in the last epoch."""
    if gate_param not in GATE_PARAMS:
        raise ValueError(f"gate_param: one of {sorted(GATE_PARAMS)}, got {gate_param!r}")
    if budget not in BUDGETS or (budget == "shift" and keep_target is None):
        raise ValueError(f"budget: one of {sorted(BUDGETS)} ('shift' with a keep_target), got {budget!r}")
    if kl_cvar is not None and not 0 < kl_cvar <= 1:
        raise ValueError(f"kl_cvar: must be in (0, 1], got {kl_cvar}")
    if privacy < 0 or (privacy > 0 and (proxy is None or texts is None or len(texts) != len(feats))):
        raise ValueError("privacy: needs a weight >= 0 and, when > 0, a proxy and one transcript per utterance")
    if proxy is not None:
        from edgelearn.speech.proxy import privacy_term

        for p in proxy.parameters():
            p.requires_grad_(False)
        proxy.eval()
    for p in cloud.parameters():
        p.requires_grad_(False)
    cloud.eval()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(gatenet.parameters(), lr=lr)
    n_steps, step_i = epochs * -(-len(feats) // bs), 0
    lam = torch.tensor(0.0)
    S = -(-feats.shape[1] // 2)
    valid_all = seg_valid(length, S)
    with torch.no_grad():
        p_clean_all = torch.cat([F.log_softmax(cloud(feats[i: i + 128]), -1) for i in range(0, len(feats), 128)])
    hist = []
    for ep in range(epochs):
        ks, kls, nlls, raws, t0 = [], [], [], [], time.time()
        for idx in _batches(len(feats), bs, gen):
            raw = pool_gates(gatenet(feats[idx]), block)
            valid = valid_all[idx, : raw.shape[1]]
            if budget == "shift":
                raw = raw - budget_shift(raw, valid, keep_target, gate_param)
            la = _bounded(raw, gate_param)
            z = hard_concrete_sample(la)
            masked = wave[idx] * upsample_gates(z, wave.shape[1])
            fm = logmel_torch(masked)
            logq = F.log_softmax(cloud(fm), -1)
            logp = p_clean_all[idx]
            kl_u = (logp.exp() * (logp - logq)).sum(-1)
            kl = _kl_term(kl_u, kl_cvar, None if groups is None else groups[idx])
            kept = (hard_concrete_p_open(la) * valid).sum() / valid.sum()
            stay = 1e-2 * F.relu(raw.abs() - LA_BOUND).pow(2).mean()   # stay near the bound
            if ep == epochs - 1:
                raws.append(raw.detach()[valid > 0])
            if budget == "shift":
                loss = kl + stay
            elif keep_target is None:
                loss = kept + lam * (kl - gamma) + stay
            else:
                c = kept - keep_target
                loss = kl + lam * c + RHO / 2 * F.relu(c).pow(2) + stay
            if privacy > 0:
                priv = privacy_term(proxy, fm, length[idx.numpy()], [texts[i] for i in idx.tolist()], privacy_cap)
                loss = loss - privacy * priv
                nlls.append(float(priv.detach()))
            scale = 0.5 * (1 + math.cos(math.pi * step_i / n_steps)) if anneal else 1.0
            step_i += 1
            for grp in opt.param_groups:
                grp["lr"] = lr * scale
            opt.zero_grad()
            loss.backward()
            opt.step()
            step = kl.detach() - gamma if keep_target is None else kept.detach() - keep_target
            if budget != "shift":
                lam = torch.clamp(lam + scale * lr_dual * step, min=0.0)
            ks.append(float(kept.detach()))
            kls.append(float(kl.detach()))
        hist.append({"epoch": ep + 1, "kept": float(np.mean(ks)), "kl": float(np.mean(kls)), "lambda": float(lam)})
        if nlls:
            hist[-1]["proxy_nll"] = float(np.mean(nlls))
        if raws:
            q = np.quantile(torch.cat(raws).numpy(), [0.05, 0.95])
            hist[-1]["raw_p05"], hist[-1]["raw_p95"] = float(q[0]), float(q[1])
        log(f"masker epoch {ep + 1}/{epochs}: expected kept {np.mean(ks):.3f} KL {np.mean(kls):.3f} "
            f"lambda {float(lam):.2f}" + (f" proxy CTC/char {np.mean(nlls):.2f}" if nlls else "")
            + (f" raw log_alpha 5-95% {hist[-1]['raw_p05']:.1f}..{hist[-1]['raw_p95']:.1f}" if raws else "")
            + f" ({time.time() - t0:.1f}s)")
    for p in cloud.parameters():
        p.requires_grad_(True)
    gatenet.eval()
    return hist


def log_alphas(gatenet, feats, length, block=1, device=False) -> torch.Tensor:
    """[N, S] gate logits (blocks of `block` share one). device=False: computed on the zero-padded batch, as the
    masker is trained; device=True: on each utterance's own frames, as ``mask.gates_for`` and the device compute
    them (the padding changes the last 2-4 gates of an utterance), each row continued with its last value."""
    with torch.no_grad():
        if not device:
            return torch.cat([pool_gates(gatenet(feats[i: i + 128]), block) for i in range(0, len(feats), 128)])
        out = torch.zeros(len(feats), -(-feats.shape[1] // FRAMES_PER_SEG))
        for i, n in enumerate(length):
            la = pool_gates(gatenet(feats[i: i + 1, : max(1, n_frames(int(n)))]), block)[0]
            out[i, : la.numel()] = la
            out[i, la.numel():] = la[-1]
        return out


def hard_gates(gatenet, feats, length, block=1, device=False) -> list[np.ndarray]:
    """Binary keep decisions per utterance, over ceil(n/SEG) segments (blocks of `block` share one); device: the
    gates of ``mask.gates_for`` (see ``log_alphas``)."""
    keep = (hard_concrete_deterministic(log_alphas(gatenet, feats, length, block, device)) > 0.5).numpy()
    return [extend_gates(k[: -(-int(n) // SEG)], int(n)) for k, n in zip(keep, length)]


def masked_wave(corpus: Corpus, gates: list[np.ndarray]) -> torch.Tensor:
    """The corpus's audio masked (with ramps, int16) by per-utterance binary gates."""
    w = torch.zeros_like(corpus.wave)
    for i, g in enumerate(gates):
        y = apply_mask(corpus.int16(i), g)
        w[i, : y.size] = torch.from_numpy(y.astype(np.float32) / 32768.0)
    return w


def sampled_mask_fn(corpus: Corpus, log_alpha: torch.Tensor | None, temp: float, keep_fraction: float,
                    gen: torch.Generator, block: int = 1):
    """Mask augmentation for the fine-tuning: a ``train_classifier`` wave_fn that masks each batch with fresh
    binary gates, keep ~ Bernoulli(sigmoid(log_alpha / temp)) (the generator's hard-concrete gate binarised at 0.5,
    with log_alpha scaled by 1 / temp: gates near the decision flip most), or, with log_alpha None, random gates
    kept with probability keep_fraction per block (the baseline's counterpart); masked by ``mask.apply_mask`` (the
    device's ramps), then log-mel."""
    S = -(-corpus.wave.shape[1] // SEG)

    def fn(idx):
        if log_alpha is None:
            keep = torch.rand(len(idx), -(-S // block), generator=gen) < keep_fraction
            keep = keep.repeat_interleave(block, 1)[:, :S]
        else:
            u = torch.rand(log_alpha[idx].shape, generator=gen).clamp(1e-6, 1 - 1e-6)
            keep = torch.log(u) - torch.log1p(-u) + log_alpha[idx] / temp > 0
        w = torch.zeros(len(idx), corpus.wave.shape[1])
        for j, i in enumerate(idx.tolist()):
            g = extend_gates(keep[j, : -(-int(corpus.length[i]) // SEG)].numpy(), int(corpus.length[i]))
            w[j, : corpus.length[i]] = torch.from_numpy(apply_mask(corpus.int16(i), g).astype(np.float32) / 32768.0)
        return logmel_torch(w)
    return fn


def kept_fraction(gates: list[np.ndarray]) -> float:
    return float(np.sum([g.sum() for g in gates]) / np.sum([g.size for g in gates]))


def random_gates_for(corpus: Corpus, frac: float, seed: int, block: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [random_gates(int(n), frac, rng, block) for n in corpus.length]


def split_validation(corpus: Corpus, n_val_speakers: int, seed: int,
                     stratify: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (fit, val) over the *train* split: n_val_speakers training speakers held out for model
    selection and tuning (the test speakers are never looked at while training). stratify: the validation speakers
    cover the training speakers' voice families (engine, pitch/rate variant) in turn, one random speaker of each
    family before a second of any, so validation sees every kind of voice the test may hold. Extra training
    speakers are never drawn, so adding them leaves the validation speakers unchanged."""
    train = corpus.split == "train"
    spk = np.unique(corpus.speaker[train])
    if corpus.extra:
        spk = np.array([k for k in spk if corpus.speakers[k] not in corpus.extra])
    if not 0 <= n_val_speakers < spk.size:
        raise ValueError(f"val_speakers: need 0 <= n < {spk.size} training speakers, got {n_val_speakers}")
    order = np.random.default_rng(seed + 101).permutation(spk)
    if stratify:
        if not corpus.families:
            raise ValueError("stratified validation: the corpus manifest has no speaker descriptions")
        fam = {k: corpus.families[corpus.speakers[k]] for k in order}
        rank, seen = {}, {}
        for k in order:   # rank: this speaker is the rank-th of its family in the seeded order
            rank[k] = seen.get(fam[k], 0)
            seen[fam[k]] = rank[k] + 1
        names = sorted(seen)
        order = np.array(sorted(order, key=lambda k: (rank[k], names.index(fam[k]))))
    val_spk = order[:n_val_speakers]
    val = train & np.isin(corpus.speaker, val_spk)
    return train & ~val, val


def validation_split(corpus: Corpus, state: dict) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val) of a trained run, from its saved settings."""
    st = state.get("settings", {})
    return split_validation(corpus, st.get("val_speakers", 0), state.get("seed", st.get("seed", 0)),
                            bool(st.get("val_stratify", False)))


MIN_KEPT = 0.02   # below this kept fraction of hard gates, train_all stops: the masker has collapsed


def train_all(corpus_dir, out_dir, epochs_cloud=12, epochs_mask=10, epochs_ft=5, gamma=0.15, seed=0,
              val_speakers=0, augment=True, lr_cloud=3e-3, lr_ft=1e-3, width=64, mask_utts=800, lr_dual=0.5,
              cloud_from=None, keep_target=None, block=1, rounds=1, normalise=False, ft_temp=None,
              device_gates=False, ft_distill=0.0, val_stratify=False, voice_aug=False, kl_cvar=None,
              kl_family_max=False, privacy=0.0, proxy_epochs=12, proxy_utts=2000, privacy_cap=3.0,
              calibrate_kept=False, gate_param="clamp", anneal_masker=False, masker_budget="lagrangian",
              masker_teacher="clean", masker_seed=None, log=print) -> dict:
    """All three stages on the train split (minus val_speakers held out for validation); saves
    out_dir/speech_models.pt and the int8 gate network. Returns the training record, with validation accuracies
    (clean / learned mask / random mask) when val_speakers > 0. keep_target: the kept budget instead of the KL
    budget gamma; block: segments (40 ms each) per gate; rounds: masker / fine-tuning alternations; normalise:
    every stage on speaker-normalised audio (with cloud_from, the reused clean model saw the audio as recorded);
    ft_temp: mask augmentation in the fine-tuning (``sampled_mask_fn``: fresh gates each batch, the generator's at
    temperature ft_temp, the baseline's random at the same kept fraction) instead of one fixed mask per utterance;
    device_gates: fine-tune on (and validate with) the gates the device computes (``log_alphas``); ft_distill:
    weight of the clean model's predictions on clean audio as soft targets in the fine-tuning (both copies);
    val_stratify: validation speakers drawn across voice families (``split_validation``); voice_aug:
    ``voice_augment`` in every cloud training (clean and fine-tuning); kl_cvar: the masker's KL over the worst
    fraction of each batch (``train_masker``); kl_family_max: the masker's KL is the worst voice family's in each
    batch (``train_masker`` groups); privacy: weight of the ASR-proxy term in the masker's loss (``proxy``; the
    proxy is trained for proxy_epochs on proxy_utts random utterances of the clean fit audio, or reused from
    cloud_from's run when it has one); privacy_cap: see ``train_masker``; calibrate_kept: after each masker round,
    move the gate threshold so the hard gates keep keep_target of the training segments (``kept_threshold``);
    gate_param: the masker's log_alpha bound (``GATE_PARAMS``); anneal_masker: ``train_masker``'s anneal; masker_budget: how the masker holds keep_target (``BUDGETS``; "shift" needs
    calibrate_kept, as its raw log_alphas carry no threshold of their own); masker_teacher: the model the first masker
    round's KL is measured against: the clean cloud model (SILENCE's), or "holes", the random-mask baseline trained
    first (at keep_target), which reads audio with holes and so scores what the gates remove rather than the holes; masker_seed: the seed of
    the gate network's initialisation and the masker's batches (default: seed), apart from the validation split's,
    so another masker can be drawn on the same split (with cloud_from)."""
    if masker_teacher not in ("clean", "holes") or (masker_teacher == "holes" and keep_target is None):
        raise ValueError(f"masker_teacher: 'clean' or 'holes' (with keep_target), got {masker_teacher!r}")
    if masker_budget == "shift" and not calibrate_kept:
        raise ValueError("masker_budget 'shift': needs calibrate_kept (the device threshold comes from calibration)")
    if gate_param not in GATE_PARAMS:
        raise ValueError(f"gate_param: one of {sorted(GATE_PARAMS)}, got {gate_param!r}")
    if calibrate_kept and keep_target is None:
        raise ValueError("calibrate_kept: needs keep_target (the kept fraction to calibrate to)")
    if privacy < 0 or proxy_epochs < 1 or proxy_utts < 1 or not privacy_cap > 0:
        raise ValueError(f"privacy: must be >= 0 (got {privacy}), proxy_epochs and proxy_utts >= 1, "
                         f"privacy_cap > 0 (got {privacy_cap})")
    if keep_target is not None and not 0 < keep_target < 1:
        raise ValueError(f"keep_target: must be in (0, 1), got {keep_target}")
    if ft_temp is not None and not ft_temp > 0:
        raise ValueError(f"ft_temp: must be > 0, got {ft_temp}")
    if not 0 <= ft_distill <= 1:
        raise ValueError(f"ft_distill: must be in [0, 1], got {ft_distill}")
    if block < 1 or rounds < 1:
        raise ValueError(f"block and rounds: must be >= 1, got {block} and {rounds}")
    torch.manual_seed(seed)
    t_start = time.time()
    full = load_corpus(corpus_dir, normalise=normalise)
    fit, val = split_validation(full, val_speakers, seed, val_stratify)
    tr = full.subset(fit)
    log(f"corpus: {len(full.ids)} utterances, {len(full.intents)} intents, {len(full.speakers)} speakers; "
        f"train {len(tr.ids)}, validation {int(val.sum())} ({val_speakers} speakers)")
    ftr = feats_of(tr.wave)
    if cloud_from:   # stage 1 done before: the clean cloud model of another run on the same corpus and split
        prev = torch.load(Path(cloud_from) / "speech_models.pt", weights_only=False)
        ps = prev.get("settings", {})
        if (prev["intents"] != full.intents or ps.get("val_speakers") != val_speakers
                or bool(ps.get("val_stratify", False)) != val_stratify):
            raise ValueError(f"cloud_from: {cloud_from} was trained on other intents or another validation split")
        width = prev["settings"]["width"]
        cloud = CloudSLU(len(full.intents), width)
        cloud.load_state_dict(prev["cloud"])
        log(f"clean cloud model from {cloud_from} (width {width}); stage 1 skipped")
    else:
        cloud = train_classifier(CloudSLU(len(full.intents), width), ftr, tr.intent, epochs=epochs_cloud,
                                 lr=lr_cloud, seed=seed, log=log, augment=augment, voice_aug=voice_aug)
    mseed = seed if masker_seed is None else masker_seed
    torch.manual_seed(mseed)
    gatenet = GateNet()
    flat = torch.cat([ftr[i, : n_frames(int(n))] for i, n in enumerate(tr.length)])
    gatenet.mean.copy_(flat.mean(0))
    gatenet.std.copy_(flat.std(0) + 1e-3)
    sub = np.sort(np.random.default_rng(seed).permutation(len(tr.ids))[:mask_utts])   # the masker needs fewer
    groups = None
    if kl_family_max:
        if not tr.families:
            raise ValueError("kl_family_max: the corpus manifest has no speaker descriptions")
        names = sorted(set(tr.families.values()))
        groups = torch.tensor([names.index(tr.families[tr.speakers[k]]) for k in tr.speaker[sub]])
    proxy = None
    if privacy > 0:
        from edgelearn.speech.proxy import ASRProxy, proxy_wer, train_asr_proxy

        prev = torch.load(Path(cloud_from) / "speech_models.pt", weights_only=False) if cloud_from else {}
        if "proxy" in prev:
            proxy = ASRProxy(prev["proxy_width"])
            proxy.load_state_dict(prev["proxy"])
            proxy.eval()
            log(f"ASR proxy from {cloud_from}")
        else:
            ps = np.sort(np.random.default_rng(seed + 7).permutation(len(tr.ids))[:proxy_utts])
            proxy = train_asr_proxy(ftr[ps], tr.length[ps], [tr.utts[i]["text"] for i in ps], epochs=proxy_epochs,
                                    seed=seed, log=log)
    hist, teacher, calibrated = [], cloud, []
    soft = None
    if ft_distill > 0:
        cloud.eval()
        with torch.no_grad():
            soft = torch.cat([F.log_softmax(cloud(ftr[i: i + 128]), -1) for i in range(0, len(ftr), 128)])

    def random_mask_cloud(frac):   # the baseline: the clean model fine-tuned on random gates at kept fraction frac
        if ft_temp is None:
            fr, fn = feats_of(masked_wave(tr, random_gates_for(tr, frac, seed, block))), None
        else:
            fr, fn = None, sampled_mask_fn(tr, None, ft_temp, frac, torch.Generator().manual_seed(seed), block)
        return train_classifier(copy.deepcopy(cloud), fr, tr.intent, epochs=epochs_ft, lr=lr_ft, seed=seed,
                                log=log, name="cloud fine-tune (random mask)", augment=augment, wave_fn=fn,
                                soft=soft, distill=ft_distill, voice_aug=voice_aug)

    cloud_random = None
    if masker_teacher == "holes":   # the baseline first, at the budget: it copes with holes and knows no masker
        cloud_random = teacher = random_mask_cloud(keep_target)
    for r in range(rounds):   # the first round against the clean cloud model, later ones against the fine-tuned
        hist += train_masker(teacher, gatenet, tr.wave[sub], ftr[sub], tr.length[sub], gamma=gamma,
                             epochs=epochs_mask, bs=16, lr_dual=lr_dual, seed=mseed + r, log=log,
                             keep_target=keep_target, block=block, kl_cvar=kl_cvar, groups=groups, proxy=proxy,
                             privacy=privacy, texts=[tr.utts[i]["text"] for i in sub], privacy_cap=privacy_cap,
                             gate_param=gate_param, anneal=anneal_masker, budget=masker_budget)
        if calibrate_kept:
            frac0 = kept_fraction(hard_gates(gatenet, ftr, tr.length, block, device_gates))
            delta = kept_threshold(gatenet, ftr, tr.length, keep_target, block, device_gates)
            gatenet = shifted_gatenet(gatenet, delta)
            log(f"round {r + 1}/{rounds}: hard gates kept {frac0:.3f}; threshold moved by {delta:+.3f} to the "
                f"budget {keep_target:g}")
            calibrated.append(delta)
        gates = hard_gates(gatenet, ftr, tr.length, block, device_gates)
        frac = kept_fraction(gates)
        log(f"round {r + 1}/{rounds}: train kept fraction (hard gates) {frac:.3f}")
        if frac < MIN_KEPT:   # fine-tuning the cloud on silence would train it to chance, and later rounds with it
            raise RuntimeError(f"masker collapsed in round {r + 1}: its hard gates keep {frac:.3f} of the training "
                               f"segments (expected {hist[-1]['kept']:.3f} under sampling); run again with more "
                               f"--epochs-mask or a smaller --lr-dual")
        if ft_temp is None:
            fm, fn = feats_of(masked_wave(tr, gates)), None
        else:
            la = log_alphas(gatenet, ftr, tr.length, block, device_gates)
            fm, fn = None, sampled_mask_fn(tr, la, ft_temp, frac, torch.Generator().manual_seed(seed + r), block)
        cloud_masked = train_classifier(copy.deepcopy(cloud), fm, tr.intent, epochs=epochs_ft, lr=lr_ft, seed=seed,
                                        log=log, name="cloud fine-tune (masked)", augment=augment, wave_fn=fn,
                                        soft=soft, distill=ft_distill, voice_aug=voice_aug)
        teacher = cloud_masked
    if cloud_random is None:
        cloud_random = random_mask_cloud(frac)
    record = {"train_kept_fraction": frac, "masker_history": hist, "n_train": len(tr.ids),
              "calibrated_deltas": calibrated,
              "settings": {"epochs_cloud": epochs_cloud, "epochs_mask": epochs_mask, "epochs_ft": epochs_ft,
                           "gamma": gamma, "seed": seed, "val_speakers": val_speakers, "augment": augment,
                           "lr_cloud": lr_cloud, "lr_ft": lr_ft, "width": width, "mask_utts": mask_utts,
                           "lr_dual": lr_dual, "cloud_from": str(cloud_from) if cloud_from else None,
                           "keep_target": keep_target, "block": block, "rounds": rounds, "normalise": normalise,
                           "ft_temp": ft_temp, "device_gates": device_gates,
                           "ft_distill": ft_distill, "val_stratify": val_stratify, "voice_aug": voice_aug,
                           "kl_cvar": kl_cvar, "kl_family_max": kl_family_max, "privacy": privacy,
                           "calibrate_kept": calibrate_kept, "gate_param": gate_param,
                           "anneal_masker": anneal_masker, "masker_budget": masker_budget,
                           "masker_teacher": masker_teacher, "masker_seed": mseed,
                           "proxy_epochs": proxy_epochs if privacy > 0 else None,
                           "privacy_cap": privacy_cap if privacy > 0 else None}}
    if val.any():
        va = full.subset(val)
        vg = hard_gates(gatenet, feats_of(va.wave), va.length, block, device_gates)
        vfrac = kept_fraction(vg)
        record["validation"] = {
            "n": len(va.ids), "speakers": sorted({va.speakers[k] for k in va.speaker}), "kept_fraction": vfrac,
            "clean": accuracy(cloud, feats_of(va.wave), va.intent),
            "masked": accuracy(cloud_masked, feats_of(masked_wave(va, vg)), va.intent),
            "random": accuracy(cloud_random, feats_of(masked_wave(va, random_gates_for(va, vfrac, seed + 1, block))),
                               va.intent)}
        if proxy is not None:
            texts = [u["text"] for u in va.utts]
            record["validation"]["proxy_wer_clean"] = proxy_wer(proxy, feats_of(va.wave), va.length, texts)
            record["validation"]["proxy_wer_masked"] = proxy_wer(proxy, feats_of(masked_wave(va, vg)), va.length,
                                                                 texts)
        log(f"validation: {record['validation']}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {"intents": full.intents, "gamma": gamma, "train_kept_fraction": frac, "masker_history": hist,
             "cloud": cloud.state_dict(), "cloud_masked": cloud_masked.state_dict(),
             "cloud_random": cloud_random.state_dict(), "gatenet": gatenet.state_dict(), "seed": seed,
             "settings": record["settings"]}
    if proxy is not None:
        state["proxy"], state["proxy_width"] = proxy.state_dict(), proxy.width
    torch.save(state, out / "speech_models.pt")
    from edgelearn.speech.export import export_gatenet_s8

    export_gatenet_s8(gatenet, [tr.int16(i) for i in range(min(64, len(tr.ids)))], out / "gatenet_s8.bin")
    record["wall_s"] = time.time() - t_start
    log(f"wrote {out / 'speech_models.pt'} and {out / 'gatenet_s8.bin'} ({record['wall_s']:.0f}s)")
    return record


def shifted_gatenet(gatenet, delta: float):
    """A copy of the gate network whose device keeps a segment when log_alpha > delta instead of > 0 (the last
    layer's bias lowered by delta, so the int8 kernel's sign test is unchanged)."""
    if not np.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta}")
    g = copy.deepcopy(gatenet)
    with torch.no_grad():
        g.convs[-1].bias -= float(delta)
    return g.eval()


def kept_threshold(gatenet, feats, length, target: float, block=1, device=False) -> float:
    """The delta for ``shifted_gatenet`` at which the hard gates (``hard_gates``) keep `target` of the segments of
    these utterances: the (1 - target) quantile of their log_alphas, each utterance's row extended as its gates
    are. A masker trained to a kept budget leaves many log_alphas near 0, so its hard kept fraction can land far
    from the budget (or at 0); this puts it back on the budget along the masker's own ranking of segments."""
    if not 0 < target < 1:
        raise ValueError(f"target: a kept fraction in (0, 1), got {target}")
    la = log_alphas(gatenet, feats, length, block, device).numpy()
    v = np.concatenate([extend_gates(la[i, : -(-int(n) // SEG)], int(n)) for i, n in enumerate(length)])
    # gate open <=> hard_concrete_deterministic(la - delta) > 0.5 <=> la - delta > 0 (HC_GAMMA = 1 - HC_ZETA)
    return float(np.quantile(v, 1 - target))


def shift_threshold(model_dir, out_dir, delta: float, corpus_dir) -> dict:
    """An operating point of a trained masker without retraining: the device keeps a segment when its log_alpha
    > delta instead of > 0 (the last layer's bias lowered by delta, so the int8 kernel's sign test is unchanged);
    delta > 0 keeps fewer segments. The cloud models are copied unchanged (cloud_masked was fine-tuned on the
    masker's sampled gates, cloud_random on random masks at the original kept fraction). The int8 blob is
    re-exported with the calibration audio train_all uses (the first 64 training utterances). Returns the
    state's "threshold" record."""
    src, out = Path(model_dir), Path(out_dir)
    if src.resolve() == out.resolve():
        raise ValueError(f"out_dir must differ from model_dir ({src}): the original masker is kept")
    ms = load_models(src)
    st = dict(ms["state"])
    g = shifted_gatenet(ms["gatenet"], delta)
    prev = st.get("threshold", {}).get("delta", 0.0)
    st["gatenet"] = g.state_dict()
    st["threshold"] = {"delta": prev + float(delta), "from": str(src)}
    full = load_corpus(corpus_dir)
    fit, _ = validation_split(full, st)
    tr = full.subset(fit)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(st, out / "speech_models.pt")
    from edgelearn.speech.export import export_gatenet_s8

    export_gatenet_s8(g, [tr.int16(i) for i in range(min(64, len(tr.ids)))], out / "gatenet_s8.bin")
    return st["threshold"]


def delta_for_kept(model_dir, corpus_dir, kept: float) -> float:
    """The ``shift_threshold`` delta at which a trained masker's device gates keep `kept` of the segments of its
    training utterances (``kept_threshold``): an operating point named by its kept fraction."""
    ms = load_models(model_dir)
    full = load_corpus(corpus_dir, normalise=bool(ms["state"].get("settings", {}).get("normalise", False)))
    fit, _ = validation_split(full, ms["state"])
    tr = full.subset(fit)
    return kept_threshold(ms["gatenet"], feats_of(tr.wave), tr.length, kept, ms["block"], device=True)


FINETUNE_PARTS = ("masked", "random")


def finetune_ensemble(corpus_dir, model_dir, out_dir, seeds=(0, 1, 2), epochs=20, lr=3e-3, ft_temp=4.0,
                      parts=FINETUNE_PARTS, augment=True, voice_aug=False, voice_warp=0.1, warm=False,
                      log=print) -> dict:
    """Cloud models for a trained masker's operating point (e.g. after ``shift_threshold``), on the cloud side only.
    For each seed, a copy of the clean cloud model is fine-tuned `epochs` epochs on the masker's sampled device gates
    (``sampled_mask_fn`` at temperature ft_temp around ``log_alphas(device=True)``): part "masked"; or on fresh
    random masks at the same kept fraction: part "random" (the baseline). The copies of a part become an ensemble
    (``EnsembleSLU``, mean log-probabilities) replacing cloud_masked / cloud_random; parts not listed are kept from
    model_dir. The gate network and its int8 blob are copied unchanged, so what the device sends is the same.
    voice_aug: ``voice_augment`` on every batch, its mel warp drawn from [1 - voice_warp, 1 + voice_warp].
    warm: continue training instead: the k-th seed's copy starts from the k-th member of model_dir's ensemble for
    that part (an earlier finetune_ensemble with at least as many seeds), e.g. at a new threshold or for more epochs.
    Returns the state's "finetune" record (with validation accuracies when the run has validation speakers)."""
    seeds = [int(x) for x in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: need one or more distinct seeds, got {seeds}")
    if epochs < 1:
        raise ValueError(f"epochs: must be >= 1, got {epochs}")
    if not (np.isfinite(voice_warp) and 0 <= voice_warp < 0.5):
        raise ValueError(f"voice_warp: must be in [0, 0.5), got {voice_warp}")
    if not (np.isfinite(ft_temp) and ft_temp > 0) or not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"ft_temp and lr: must be > 0, got {ft_temp} and {lr}")
    parts = tuple(parts)
    if not parts or any(p not in FINETUNE_PARTS for p in parts):
        raise ValueError(f"parts: one or more of {', '.join(FINETUNE_PARTS)}, got {', '.join(parts) or 'none'}")
    src, out = Path(model_dir), Path(out_dir)
    if src.resolve() == out.resolve():
        raise ValueError(f"out_dir must differ from model_dir ({src}): the original models are kept")
    t_start = time.time()
    ms = load_models(src)
    st = dict(ms["state"])
    settings = st.get("settings", {})
    block, g = ms["block"], ms["gatenet"]
    full = load_corpus(corpus_dir, normalise=bool(settings.get("normalise", False)))
    if st["intents"] != full.intents:
        raise ValueError(f"corpus: {corpus_dir} has other intents than the models in {src}")
    fit, val = validation_split(full, st)
    tr = full.subset(fit)
    ftr = feats_of(tr.wave)
    la = log_alphas(g, ftr, tr.length, block, device=True)
    frac = kept_fraction(hard_gates(g, ftr, tr.length, block, device=True))
    starts = {}
    for part in parts:
        prev = st[f"cloud_{part}"]
        if not warm:
            starts[part] = [ms["cloud"]] * len(seeds)
        elif not isinstance(prev, list) or len(prev) < len(seeds):
            have = len(prev) if isinstance(prev, list) else "no ensemble"
            raise ValueError(f"warm: {src}'s {part} cloud has {have} members; need one per seed ({len(seeds)}): "
                             f"run finetune without --warm first")
        else:
            starts[part] = []
            for sd_prev in prev[: len(seeds)]:
                m0 = copy.deepcopy(ms["cloud"])
                m0.load_state_dict(sd_prev)
                starts[part].append(m0)
    log(f"{src}: train kept fraction (device gates) {frac:.3f}; fine-tuning {', '.join(parts)} x seeds {seeds}"
        + (" (warm: from its fine-tuned members)" if warm else ""))
    for part in parts:
        members = []
        for k, sd in enumerate(seeds):
            fn = sampled_mask_fn(tr, la if part == "masked" else None, ft_temp, frac,
                                 torch.Generator().manual_seed(sd), block)
            m = train_classifier(copy.deepcopy(starts[part][k]).train(), None, tr.intent, epochs=epochs, lr=lr, seed=sd,
                                 log=log, name=f"cloud fine-tune ({part}, seed {sd})", augment=augment, wave_fn=fn,
                                 voice_aug=voice_aug, voice_warp=voice_warp)
            members.append(m.state_dict())
        st[f"cloud_{part}"] = members
    rec = {"from": str(src), "parts": list(parts), "seeds": seeds, "epochs": epochs, "lr": lr, "ft_temp": ft_temp,
           "augment": augment, "voice_aug": voice_aug, "train_kept_fraction": frac}
    if warm:
        rec["warm_from"] = {"epochs": st.get("finetune", {}).get("epochs"), "from": st.get("finetune", {}).get("from")}
    if voice_aug and voice_warp != 0.1:
        rec["voice_warp"] = voice_warp
    st["finetune"] = rec
    out.mkdir(parents=True, exist_ok=True)
    torch.save(st, out / "speech_models.pt")
    if (src / "gatenet_s8.bin").is_file():
        shutil.copyfile(src / "gatenet_s8.bin", out / "gatenet_s8.bin")
    if val.any():
        new = load_models(out)
        va = full.subset(val)
        fva = feats_of(va.wave)
        vg = hard_gates(g, fva, va.length, block, device=True)
        vfrac = kept_fraction(vg)
        rec["validation"] = {
            "n": len(va.ids), "speakers": sorted({va.speakers[k] for k in va.speaker}), "kept_fraction": vfrac,
            "clean": accuracy(new["cloud"], fva, va.intent),
            "masked": accuracy(new["cloud_masked"], feats_of(masked_wave(va, vg)), va.intent),
            "random": accuracy(new["cloud_random"],
                               feats_of(masked_wave(va, random_gates_for(va, vfrac, st.get("seed", 0) + 1, block))),
                               va.intent)}
        log(f"validation: {rec['validation']}")
        st["finetune"] = rec
        torch.save(st, out / "speech_models.pt")
    rec["wall_s"] = time.time() - t_start
    log(f"wrote {out / 'speech_models.pt'} ({rec['wall_s']:.0f}s)")
    return rec


def load_models(out_dir) -> dict:
    p = Path(out_dir) / "speech_models.pt"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: run 'edgelearn speech train' first")
    st = torch.load(p, weights_only=False)
    n = len(st["intents"])
    models = {}
    width = st.get("settings", {}).get("width", 64)
    for k in ("cloud", "cloud_masked", "cloud_random"):   # a list of state dicts: an ensemble (finetune_ensemble)
        sds = st[k] if isinstance(st[k], list) else [st[k]]
        members = []
        for sd in sds:
            m = CloudSLU(n, width)
            m.load_state_dict(sd)
            members.append(m)
        models[k] = (EnsembleSLU(members) if isinstance(st[k], list) else members[0]).eval()
    g = GateNet()
    g.load_state_dict(st["gatenet"])
    models["gatenet"] = g.eval()
    models["block"] = int(st.get("settings", {}).get("block", 1))
    models["state"] = st
    return models
