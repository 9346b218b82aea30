"""FwdLLM: backpropagation-free federated fine-tuning with forward gradients (Xu et al., 2023), seed-only
uplink as in FedKSeed.

Two perturbation groups, because their costs differ by orders of magnitude:
  * LoRA group (the adapters inside the encoder): each of K seeds perturbs every LoRA tensor; a stream re-runs
    the encoder from the first LoRA layer, so K is what the device pays for.
  * head group (the classifier): each of K_head seeds perturbs only the head; its streams start from the
    pooled features of one unperturbed pass, so they cost B x d x C MACs each and K_head can be large.
Client (one batch of its shard per round, FedSGD-style):
    draw ceil(candidate_ratio x K) LoRA seeds; with a previous global gradient G, keep the K whose directions
    sigma*Z(seed) have the largest |cos(sigma Z, G)| on the LoRA tensors (discriminative sampling; ratio 1 = plain);
    run the 2K perturbed forwards (central; forward mode: K + 1) with edgelearn.zo.PerturbedForward -> g_k;
    head seeds are base + 0..K_head-1 (base from the client's generator) -> their projected gradients h_j;
    uplink "seed": the (seed, g_k) pairs (12 bytes each), the head base (8 bytes) and the h_j (4 bytes each);
    uplink "full": v = sum_k sigma g_k Z_k / K + sum_j sigma h_j Z_j / K_head (4n bytes);
    plus s2 = |v_even - v_odd|^2 / 4, the split-half variance of its own LoRA-group estimate (4 bytes).
Server:
    decode: rebuild v from the pairs with kernels.zo_replay_seeds_f32 (seed uplink);
    variance control: rho = V / (|m|^2 - V), m = sum_c w_c v_c, V = sum_c w_c^2 s2_c: the noise-to-signal ratio of
    the aggregated LoRA-group estimate (inf when the noise swamps it); while rho > var_threshold and the
    round's perturbations are below max_K, ask the same clients for as many perturbations again (new seeds, same
    batch, same model) in this round and merge, instead of rolling the model back; the next round starts from the
    K that sufficed (halved when rho < var_threshold / 4, within [min_K, max_K]);
    update: theta -= lr x sum_c w_c v_c on the LoRA group and head_lr x ... on the head (w_c ~ examples),
    G = sum_c w_c v_c.
Load allocation: client c is asked for K_c = K x speed_c / mean(speed of the sampled clients) (even, >= 2), so
fast devices do more perturbations and a round is not held by the slowest device.
"""

from __future__ import annotations

import math

import numpy as np

from ..client import ClientContext, Update
from .aggregate import cosine, relative_variance, split_half_variance, weighted_mean
from .base import Strategy

UPLINKS = ("seed", "full")


def _in_group(spec, group: str | None) -> bool:
    return group is None or getattr(spec, "group", "lora") == group


def rebuild(task, seeds: np.ndarray, coefs: np.ndarray, dist: str = "gaussian", group: str | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """sum_k coefs[k] sigma(t) Z(seeds[k], id(t), slot(t)) for every trained tensor t of `group` (None = all),
    as one flat vector (zero elsewhere; added into `out` when given)."""
    from ...kernels import zo_replay_seeds_f32

    out = np.zeros(task.n, dtype=np.float32) if out is None else out
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    for s in task.specs:
        if not _in_group(s, group):
            continue
        buf = np.zeros(s.shape, dtype=np.float32)
        if len(seeds):
            zo_replay_seeds_f32(buf, seeds, np.ascontiguousarray(coefs * s.sigma, dtype=np.float32), s.layer_id,
                                s.slot, dist)
        out[s.offset:s.offset + s.size] += buf.reshape(-1)
    return out


def group_mask(task, group: str) -> np.ndarray:
    """Boolean [n]: the entries of the flat vector that belong to `group`."""
    m = np.zeros(task.n, dtype=bool)
    for s in task.specs:
        if _in_group(s, group):
            m[s.offset:s.offset + s.size] = True
    return m


def directions(task, seeds: np.ndarray, dist: str = "gaussian", group: str | None = None) -> np.ndarray:
    """[len(seeds), n]: the flat perturbation direction sigma Z(seed) of each seed over `group` (zero elsewhere)."""
    from ...kernels import zo_noise

    out = np.zeros((len(seeds), task.n), dtype=np.float32)
    for i, sd in enumerate(seeds):
        for s in task.specs:
            if _in_group(s, group):
                out[i, s.offset:s.offset + s.size] = s.sigma * zo_noise(int(sd), s.layer_id, s.slot, s.shape,
                                                                        dist).reshape(-1)
    return out


def head_losses(task, pooled, labels, seeds: np.ndarray, eps: float, mode: str, dist: str) -> np.ndarray:
    """Stream losses [P] of head-only perturbations from the unperturbed pooled features [B, d]."""
    import torch

    from ...zo import Streams

    head = task.model.head
    st = Streams(seeds, eps, mode, dist)
    st.rows = pooled.shape[0]
    head._streams = st
    try:
        with torch.inference_mode():
            logits = head(pooled)
    finally:
        head._streams = None
    ce = torch.nn.functional.cross_entropy(logits.double(), labels.repeat(st.P), reduction="none")
    return ce.view(st.P, -1).mean(1).numpy()


class FwdLLM(Strategy):
    name = "fwdllm"

    def __init__(self, lr: float = 1e-2, eps: float = 1e-3, K: int = 16, batch: int = 8, uplink: str = "seed",
                 variance_control: bool = True, var_threshold: float = 50.0, min_K: int = 4, max_K: int = 64,
                 candidate_ratio: float = 1.0, load_allocation: bool = True, mode: str = "central",
                 chunk_streams: int = 2, dist: str = "gaussian", K_head: int = 0, head_lr: float | None = None):
        if uplink not in UPLINKS:
            raise ValueError(f"strategy.uplink: expected one of {UPLINKS}, got {uplink!r}")
        if mode not in ("central", "forward"):
            raise ValueError(f"strategy.mode: expected 'central' or 'forward', got {mode!r}")
        for k, v in (("lr", lr), ("eps", eps), ("K", K), ("batch", batch), ("var_threshold", var_threshold),
                     ("min_K", min_K), ("max_K", max_K), ("chunk_streams", chunk_streams)):
            if not v > 0:
                raise ValueError(f"strategy.{k}: must be > 0, got {v}")
        if not K_head >= 0:
            raise ValueError(f"strategy.K_head: must be >= 0, got {K_head}")
        if head_lr is not None and not head_lr > 0:
            raise ValueError(f"strategy.head_lr: must be > 0, got {head_lr}")
        if not candidate_ratio >= 1:
            raise ValueError(f"strategy.candidate_ratio: must be >= 1, got {candidate_ratio}")
        if not min_K <= K <= max_K:
            raise ValueError(f"strategy.K: must lie in [min_K, max_K] = [{min_K}, {max_K}], got {K}")
        self.lr, self.eps, self.batch, self.uplink = float(lr), float(eps), int(batch), uplink
        self.variance_control, self.var_threshold = bool(variance_control), float(var_threshold)
        self.min_K, self.max_K, self.K = int(min_K), int(max_K), int(K)
        self.candidate_ratio, self.load_allocation = float(candidate_ratio), bool(load_allocation)
        self.mode, self.chunk_streams, self.dist = mode, int(chunk_streams), dist
        self.K_head = int(K_head)
        self.head_lr = float(head_lr) if head_lr is not None else self.lr
        self.prev_grad: np.ndarray | None = None
        self._round: dict = {}
        self._bound_n: int | None = None  # the task bind() learned the groups of
        self._lora_mask: np.ndarray | None = None  # LoRA entries of the flat vector (None: one group)
        self._lr_vec: np.ndarray | None = None  # per-entry learning rate

    # -- groups ------------------------------------------------------------------------------------------------
    @staticmethod
    def _has(task, group: str) -> bool:
        return any(_in_group(s, group) for s in task.specs)

    def _head_separate(self, task) -> bool:
        """The head is trained by its own cheap perturbations (K_head > 0), not by the LoRA seeds."""
        return self.K_head > 0 and self._has(task, "head")

    def _lora_group(self, task) -> str | None:
        return "lora" if self._head_separate(task) else None

    # -- client ------------------------------------------------------------------------------------------------
    def feasible(self, task, device) -> bool:
        return task.mem_inference(self.batch, self.chunk_streams) <= device.mem_bytes

    def configure(self, rnd, contexts):
        speeds = np.array([c.device.speed for c in contexts]) if contexts else np.ones(1)
        for c in contexts:
            share = c.device.speed / speeds.mean() if self.load_allocation else 1.0
            c.instructions = {"K": max(2, 2 * int(round(self.K * share / 2))), "K_head": self.K_head, "iter": 0}
        self._round = {"K_start": self.K, "iters": 0, "rho": []}

    def _seeds(self, task, ctx: ClientContext, K: int) -> tuple[np.ndarray, float]:
        r = ctx.rng(100 + ctx.instructions.get("iter", 0))
        n_cand = max(K, int(math.ceil(self.candidate_ratio * K)))
        cand = r.integers(0, 2**63, size=n_cand, dtype=np.uint64)
        if n_cand == K or self.prev_grad is None:
            return cand, 0.0
        group = self._lora_group(task)
        D = directions(task, cand, self.dist, group)
        G = self.prev_grad.astype(np.float64)
        if group is not None:
            G = G * group_mask(task, group)
        cos = np.abs(D.astype(np.float64) @ G) / (np.linalg.norm(D, axis=1) * np.linalg.norm(G) + 1e-30)
        keep = np.sort(np.argsort(-cos, kind="stable")[:K])
        return cand[keep], float(n_cand) * task.n  # MACs of the cosines

    def _head_seeds(self, ctx: ClientContext, K_head: int) -> np.ndarray:
        base = ctx.rng(200 + ctx.instructions.get("iter", 0)).integers(0, 2**62, dtype=np.uint64)
        return base + np.arange(K_head, dtype=np.uint64)

    def fit(self, task, ctx: ClientContext, global_vec: np.ndarray) -> Update:
        from ...zo import PerturbedForward, projected_gradients

        task.set_vector(global_vec)
        idx = ctx.rng(1).choice(ctx.shard, size=min(self.batch, len(ctx.shard)), replace=False)
        b = len(idx)
        pre = task.prefix(idx)
        y = task.train.labels[np.asarray(idx, dtype=np.int64)]
        group = self._lora_group(task)
        has_lora = self._has(task, "lora")
        K = int(ctx.instructions["K"]) if has_lora or not self._head_separate(task) else 0
        Kh = int(ctx.instructions.get("K_head", 0)) if self._head_separate(task) else 0
        first = task.first_trained_layer()
        macs = task.macs_forward(b, 0) - task.macs_forward(b, first)  # the frozen prefix, charged every round
        v_even = np.zeros(task.n, dtype=np.float32)
        v_odd = np.zeros(task.n, dtype=np.float32)
        payload, up, losses = {}, 4, []
        seeds = np.zeros(0, dtype=np.uint64)
        if K:
            seeds, cos_macs = self._seeds(task, ctx, K)
            fwd = PerturbedForward(task.model, self.eps, self.mode, self.dist, head=group is None, chunk_bytes=None,
                                   chunk_streams=self.chunk_streams)
            g, L = fwd.gradients(None, None, y, seeds, pre=pre)
            coefs = g.astype(np.float64) / K
            rebuild(task, seeds[0::2], 2 * coefs[0::2], self.dist, group, out=v_even)
            rebuild(task, seeds[1::2], 2 * coefs[1::2], self.dist, group, out=v_odd)
            s2 = split_half_variance(v_even, v_odd)
            streams = 2 * K if self.mode == "central" else K + 1
            macs += streams * task.macs_forward(b, first) + cos_macs
            payload.update(seeds=seeds, g=g.astype(np.float32))
            up += 12 * K
            losses.append(float(L.mean()))
        if Kh:
            import torch

            with torch.inference_mode():
                pooled = task.features(pre)
            hseeds = self._head_seeds(ctx, Kh)
            Lh = head_losses(task, pooled, y, hseeds, self.eps, self.mode, self.dist)
            gh = projected_gradients(Lh, self.eps, self.mode)
            ch = gh.astype(np.float64) / Kh
            he = rebuild(task, hseeds[0::2], 2 * ch[0::2], self.dist, "head")
            ho = rebuild(task, hseeds[1::2], 2 * ch[1::2], self.dist, "head")
            if not K:
                s2 = split_half_variance(he, ho)
            v_even += he
            v_odd += ho
            d, C = pooled.shape[1], task.num_classes
            hstreams = 2 * Kh if self.mode == "central" else Kh + 1
            macs += task.macs_forward(b, first) + hstreams * b * d * C  # one unperturbed pass + the head streams
            payload.update(head_seeds=hseeds, head_g=gh.astype(np.float32))
            up += 8 + 4 * Kh  # head seeds are base + 0..K_head-1: only the base travels
            losses.append(float(Lh.mean()))
        payload["s2"] = s2
        if self.uplink == "full":
            payload, up = {"vector": (0.5 * (v_even + v_odd)).astype(np.float32), "s2": s2}, 4 * task.n + 4
        down = 4 * task.n * (2 if (self.candidate_ratio > 1 and self.prev_grad is not None and K) else 1)
        if ctx.instructions.get("iter", 0) > 0:
            down = 0  # same model, same round: nothing new to download
        streams_mem = max(self.chunk_streams, 1)
        return Update(ctx.cid, len(ctx.shard), payload, up, down, macs, task.mem_inference(b, streams_mem),
                      {"loss": losses[0], "K": K, "K_head": Kh})

    # -- server ------------------------------------------------------------------------------------------------
    def decode(self, task, update: Update) -> Update:
        if self._bound_n != task.n:
            self.bind(task)
        p = update.payload
        if "vector" in p:
            update.vector = np.asarray(p["vector"], dtype=np.float32)
            return update
        parts = [p[k] for k in ("g", "head_g") if k in p]
        if not all(np.all(np.isfinite(x)) for x in parts):
            update.vector = np.full(task.n, np.nan, np.float32)  # a broken reply: rejection drops it
            return update
        v = np.zeros(task.n, dtype=np.float32)
        head_separate = "head_g" in p
        if "g" in p and len(p["seeds"]):
            rebuild(task, p["seeds"], p["g"].astype(np.float64) / len(p["seeds"]), self.dist,
                    "lora" if head_separate else None, out=v)
        if head_separate:
            rebuild(task, p["head_seeds"], p["head_g"].astype(np.float64) / len(p["head_seeds"]), self.dist,
                    "head", out=v)
        update.vector = v
        return update

    def _rho(self, updates) -> float:
        w = [u.num_examples for u in updates]
        mean = weighted_mean([u.vector for u in updates], w)
        if self._lora_mask is not None:
            mean = mean[self._lora_mask]
        return relative_variance(mean, [u.payload["s2"] for u in updates], w)

    def refine(self, rnd, updates):
        if not self.variance_control or not updates:
            return {}
        rho = self._rho(updates)
        self._round["rho"].append(rho)
        K_now = self._round["K_start"] * 2 ** self._round["iters"]
        if rho <= self.var_threshold or 2 * K_now > self.max_K:
            return {}
        self._round["iters"] += 1
        it = self._round["iters"]
        return {u.cid: {"K": int(u.metrics["K"]), "K_head": int(u.metrics.get("K_head", 0)), "iter": it}
                for u in updates}

    @staticmethod
    def _mix(a: float, b: float, Ka: int, Kb: int) -> float:
        return (Ka * a + Kb * b) / (Ka + Kb) if Ka + Kb else 0.0

    def merge(self, old: Update, new: Update) -> Update:
        K1, K2 = old.metrics["K"], new.metrics["K"]
        H1, H2 = old.metrics.get("K_head", 0), new.metrics.get("K_head", 0)
        v = np.zeros_like(old.vector, dtype=np.float64)
        if self._lora_mask is None or not (H1 + H2):
            v += (K1 * old.vector.astype(np.float64) + K2 * new.vector.astype(np.float64)) / max(1, K1 + K2)
        else:  # the two groups are averaged over their own perturbation counts
            m = self._lora_mask
            v[m] = (K1 * old.vector[m].astype(np.float64) + K2 * new.vector[m]) / max(1, K1 + K2)
            v[~m] = (H1 * old.vector[~m].astype(np.float64) + H2 * new.vector[~m]) / (H1 + H2)
        v = v.astype(np.float32)
        Ks = (K1, K2) if K1 + K2 else (H1, H2)
        s2 = (Ks[0] ** 2 * old.payload["s2"] + Ks[1] ** 2 * new.payload["s2"]) / (Ks[0] + Ks[1]) ** 2
        if "vector" in old.payload:
            payload = {"vector": v, "s2": s2}
        else:  # the pairs of both replies: sum g_k Z_k / (K1 + K2) rebuilds v
            payload = {"s2": s2}
            for k in ("seeds", "g", "head_seeds", "head_g"):
                if k in old.payload:
                    payload[k] = np.concatenate([old.payload[k], new.payload[k]])
        return Update(old.cid, old.num_examples, payload, old.bytes_up + new.bytes_up,
                      old.bytes_down + new.bytes_down, old.macs + new.macs, max(old.mem_bytes, new.mem_bytes),
                      {**old.metrics, "K": K1 + K2, "K_head": H1 + H2}, v, old.weight)

    def bind(self, task) -> None:
        """Learn the task's tensor groups (decode calls it when the task changes)."""
        self._lora_mask = group_mask(task, "lora") if self._head_separate(task) else None
        lr = np.full(task.n, self.lr, dtype=np.float32)
        if self._lora_mask is not None:
            lr[~self._lora_mask] = self.head_lr
        self._lr_vec = lr
        self._bound_n = task.n

    def aggregate(self, rnd, global_vec, updates):
        if self.variance_control and self._round.get("rho"):
            first = self._round["rho"][0]
            self.K = int(min(self.max_K, self._round["K_start"] * 2 ** self._round["iters"]))
            if first < self.var_threshold / 4 and self._round["iters"] == 0:
                self.K = max(self.min_K, self.K // 2)
        if not updates:
            return global_vec
        G = weighted_mean([u.vector for u in updates], [u.num_examples for u in updates])
        self.prev_grad = G
        self._round["K_mean"] = float(np.mean([u.metrics["K"] for u in updates]))
        lr = self._lr_vec if self._lr_vec is not None and self._lr_vec.shape == G.shape else np.float32(self.lr)
        return (global_vec.astype(np.float32) - lr * G).astype(np.float32)

    def round_metrics(self):
        r = self._round
        return {"K_mean": r.get("K_mean"), "var_iters": r.get("iters", 0),
                "rel_variance": r["rho"][-1] if r.get("rho") else None, "K_next": self.K}

    def state_dict(self):
        return {"K": self.K, "prev_grad": None if self.prev_grad is None else self.prev_grad.copy()}

    def load_state_dict(self, state):
        self.K = int(state["K"])
        self.prev_grad = None if state["prev_grad"] is None else np.asarray(state["prev_grad"], np.float32)
