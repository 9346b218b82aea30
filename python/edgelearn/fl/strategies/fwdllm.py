"""FwdLLM: backpropagation-free federated fine-tuning with forward gradients (Xu et al., 2023), seed-only
uplink as in FedKSeed.

Client (one batch of its shard per round, FedSGD-style):
    draw ceil(candidate_ratio x K) seeds; with a previous global gradient G, keep the K whose perturbation
    directions sigma*Z(seed) have the largest |cos(sigma Z, G)| (discriminative sampling; ratio 1 = plain);
    run the 2K perturbed forwards (central; forward mode: K + 1) with edgelearn.zo.PerturbedForward -> g_k;
    uplink "seed": the (seed, g_k) pairs (12 bytes each); uplink "full": v = sum_k sigma g_k Z_k / K (4n bytes);
    plus s2 = |v_even - v_odd|^2 / 4, the split-half variance of its own estimate (4 bytes).
Server:
    decode: rebuild v from the pairs with kernels.zo_replay_seeds_f32 (seed uplink);
    variance control: rho = sum_c w_c^2 s2_c / |sum_c w_c v_c|^2; while rho > var_threshold and the round's
    perturbations are below max_K, ask the same clients for as many perturbations again (new seeds, same batch,
    same model) in this round and merge, instead of rolling the model back; the next round starts from the K that
    sufficed (halved when rho < var_threshold / 4, within [min_K, max_K]);
    update: theta -= lr x sum_c w_c v_c (w_c ~ examples), G = sum_c w_c v_c.
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


def rebuild(task, seeds: np.ndarray, coefs: np.ndarray, dist: str = "gaussian") -> np.ndarray:
    """sum_k coefs[k] sigma(t) Z(seeds[k], id(t), slot(t)) for every trained tensor t, as one flat vector."""
    from ...kernels import zo_replay_seeds_f32

    out = np.zeros(task.n, dtype=np.float32)
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    for s in task.specs:
        buf = np.zeros(s.shape, dtype=np.float32)
        if len(seeds):
            zo_replay_seeds_f32(buf, seeds, np.ascontiguousarray(coefs * s.sigma, dtype=np.float32), s.layer_id,
                                s.slot, dist)
        out[s.offset:s.offset + s.size] = buf.reshape(-1)
    return out


def directions(task, seeds: np.ndarray, dist: str = "gaussian") -> np.ndarray:
    """[len(seeds), n]: the flat perturbation direction sigma Z(seed) of each seed."""
    from ...kernels import zo_noise

    out = np.empty((len(seeds), task.n), dtype=np.float32)
    for i, sd in enumerate(seeds):
        for s in task.specs:
            out[i, s.offset:s.offset + s.size] = s.sigma * zo_noise(int(sd), s.layer_id, s.slot, s.shape,
                                                                    dist).reshape(-1)
    return out


class FwdLLM(Strategy):
    name = "fwdllm"

    def __init__(self, lr: float = 1e-2, eps: float = 1e-3, K: int = 16, batch: int = 8, uplink: str = "seed",
                 variance_control: bool = True, var_threshold: float = 50.0, min_K: int = 4, max_K: int = 64,
                 candidate_ratio: float = 1.0, load_allocation: bool = True, mode: str = "central",
                 chunk_streams: int = 2, dist: str = "gaussian"):
        if uplink not in UPLINKS:
            raise ValueError(f"strategy.uplink: expected one of {UPLINKS}, got {uplink!r}")
        if mode not in ("central", "forward"):
            raise ValueError(f"strategy.mode: expected 'central' or 'forward', got {mode!r}")
        for k, v in (("lr", lr), ("eps", eps), ("K", K), ("batch", batch), ("var_threshold", var_threshold),
                     ("min_K", min_K), ("max_K", max_K), ("chunk_streams", chunk_streams)):
            if not v > 0:
                raise ValueError(f"strategy.{k}: must be > 0, got {v}")
        if not candidate_ratio >= 1:
            raise ValueError(f"strategy.candidate_ratio: must be >= 1, got {candidate_ratio}")
        if not min_K <= K <= max_K:
            raise ValueError(f"strategy.K: must lie in [min_K, max_K] = [{min_K}, {max_K}], got {K}")
        self.lr, self.eps, self.batch, self.uplink = float(lr), float(eps), int(batch), uplink
        self.variance_control, self.var_threshold = bool(variance_control), float(var_threshold)
        self.min_K, self.max_K, self.K = int(min_K), int(max_K), int(K)
        self.candidate_ratio, self.load_allocation = float(candidate_ratio), bool(load_allocation)
        self.mode, self.chunk_streams, self.dist = mode, int(chunk_streams), dist
        self.prev_grad: np.ndarray | None = None
        self._round: dict = {}

    # -- client ------------------------------------------------------------------------------------------------
    def feasible(self, task, device) -> bool:
        return task.mem_inference(self.batch, self.chunk_streams) <= device.mem_bytes

    def configure(self, rnd, contexts):
        speeds = np.array([c.device.speed for c in contexts]) if contexts else np.ones(1)
        for c in contexts:
            share = c.device.speed / speeds.mean() if self.load_allocation else 1.0
            c.instructions = {"K": max(2, 2 * int(round(self.K * share / 2))), "iter": 0}
        self._round = {"K_start": self.K, "iters": 0, "rho": []}

    def _seeds(self, task, ctx: ClientContext, K: int) -> tuple[np.ndarray, float]:
        r = ctx.rng(100 + ctx.instructions.get("iter", 0))
        n_cand = max(K, int(math.ceil(self.candidate_ratio * K)))
        cand = r.integers(0, 2**63, size=n_cand, dtype=np.uint64)
        if n_cand == K or self.prev_grad is None:
            return cand, 0.0
        D = directions(task, cand, self.dist)
        G = self.prev_grad.astype(np.float64)
        cos = np.abs(D.astype(np.float64) @ G) / (np.linalg.norm(D, axis=1) * np.linalg.norm(G) + 1e-30)
        keep = np.sort(np.argsort(-cos, kind="stable")[:K])
        return cand[keep], float(n_cand) * task.n  # MACs of the cosines

    def fit(self, task, ctx: ClientContext, global_vec: np.ndarray) -> Update:
        from ...zo import PerturbedForward

        K = int(ctx.instructions["K"])
        task.set_vector(global_vec)
        idx = ctx.rng(1).choice(ctx.shard, size=min(self.batch, len(ctx.shard)), replace=False)
        ids, mask, y = task.batch(idx)
        seeds, cos_macs = self._seeds(task, ctx, K)
        fwd = PerturbedForward(task.model, self.eps, self.mode, self.dist, True, chunk_bytes=None,
                               chunk_streams=self.chunk_streams)
        g, L = fwd.gradients(ids, mask, y, seeds)
        coefs = g.astype(np.float64) / K
        v_even = rebuild(task, seeds[0::2], 2 * coefs[0::2], self.dist)
        v_odd = rebuild(task, seeds[1::2], 2 * coefs[1::2], self.dist)
        s2 = split_half_variance(v_even, v_odd)
        first = task.first_trained_layer()
        b = len(idx)
        streams = 2 * K if self.mode == "central" else K + 1
        macs = (task.macs_forward(b, 0) - task.macs_forward(b, first)) + streams * task.macs_forward(b, first) + cos_macs
        if self.uplink == "seed":
            payload, up = {"seeds": seeds, "g": g.astype(np.float32), "s2": s2}, 12 * K + 4
        else:
            payload, up = {"vector": (0.5 * (v_even + v_odd)).astype(np.float32), "s2": s2}, 4 * task.n + 4
        down = 4 * task.n * (2 if (self.candidate_ratio > 1 and self.prev_grad is not None) else 1)
        if ctx.instructions.get("iter", 0) > 0:
            down = 0  # same model, same round: nothing new to download
        return Update(ctx.cid, len(ctx.shard), payload, up, down, macs, task.mem_inference(b, self.chunk_streams),
                      {"loss": float(L.mean()), "K": K})

    # -- server ------------------------------------------------------------------------------------------------
    def decode(self, task, update: Update) -> Update:
        p = update.payload
        if "seeds" in p and not np.all(np.isfinite(p["g"])):
            update.vector = np.full(task.n, np.nan, np.float32)  # a broken reply: rejection drops it
        elif "seeds" in p:
            update.vector = rebuild(task, p["seeds"], p["g"].astype(np.float64) / len(p["seeds"]), self.dist)
        else:
            update.vector = np.asarray(p["vector"], dtype=np.float32)
        return update

    def _rho(self, updates) -> float:
        w = [u.num_examples for u in updates]
        mean = weighted_mean([u.vector for u in updates], w)
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
        return {u.cid: {"K": int(u.metrics["K"]), "iter": it} for u in updates}

    def merge(self, old: Update, new: Update) -> Update:
        K1, K2 = old.metrics["K"], new.metrics["K"]
        v = ((K1 * old.vector.astype(np.float64) + K2 * new.vector.astype(np.float64)) / (K1 + K2)).astype(np.float32)
        s2 = (K1 ** 2 * old.payload["s2"] + K2 ** 2 * new.payload["s2"]) / (K1 + K2) ** 2
        if "seeds" in old.payload:
            # the pairs of both replies, g rescaled so that sum g_k Z_k / (K1 + K2) rebuilds v
            payload = {"seeds": np.concatenate([old.payload["seeds"], new.payload["seeds"]]),
                       "g": np.concatenate([old.payload["g"], new.payload["g"]]), "s2": s2}
        else:
            payload = {"vector": v, "s2": s2}
        return Update(old.cid, old.num_examples, payload, old.bytes_up + new.bytes_up,
                      old.bytes_down + new.bytes_down, old.macs + new.macs, max(old.mem_bytes, new.mem_bytes),
                      {**old.metrics, "K": K1 + K2}, v, old.weight)

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
        return (global_vec.astype(np.float32) - np.float32(self.lr) * G).astype(np.float32)

    def round_metrics(self):
        r = self._round
        return {"K_mean": r.get("K_mean"), "var_iters": r.get("iters", 0),
                "rel_variance": r["rho"][-1] if r.get("rho") else None, "K_next": self.K}

    def state_dict(self):
        return {"K": self.K, "prev_grad": None if self.prev_grad is None else self.prev_grad.copy()}

    def load_state_dict(self, state):
        self.K = int(state["K"])
        self.prev_grad = None if state["prev_grad"] is None else np.asarray(state["prev_grad"], np.float32)
