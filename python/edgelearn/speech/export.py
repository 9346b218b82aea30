"""int8 export of the GateNet for the on-device kernel, and a NumPy int8 twin of its inference.

Format (until the C++ kernel's packing helper lands; then this calls it): per-tensor symmetric int8 weights,
int32 biases in the accumulator scale (s_in * s_w), the input normalisation (mu, sd) folded into conv1, int8
activations with per-layer scales from training-set calibration; ReLU then requantisation by a float multiplier
(a fixed-point multiplier + shift on the device).
"""

from __future__ import annotations

import numpy as np
import torch


def _q(w: np.ndarray):
    s = float(np.max(np.abs(w))) / 127 or 1.0
    return np.clip(np.round(w / s), -127, 127).astype(np.int8), s


def export_gatenet_s8(gatenet, path, in_scale: float | None = None, calib: torch.Tensor | None = None) -> dict:
    g = gatenet
    w1 = (g.conv1.weight / g.sd[None, :, None]).detach().numpy()
    b1 = (g.conv1.bias - (g.conv1.weight * (g.mu / g.sd)[None, :, None]).sum((1, 2))).detach().numpy()
    w2, b2 = g.conv2.weight.detach().numpy(), g.conv2.bias.detach().numpy()
    wo, bo = g.out.weight.detach().numpy(), g.out.bias.detach().numpy()
    in_scale = in_scale or float(np.max(np.abs(g.mu.numpy())) + 4 * np.max(g.sd.numpy())) / 127
    q1, s1 = _q(w1)
    q2, s2 = _q(w2)
    qo, so = _q(wo)
    # activation scales: bound |h| by the L1 norm of weights times the input range (conservative, no calibration)
    a1 = float(np.max(np.abs(w1).sum((1, 2)) * 127 * in_scale + np.abs(b1))) / 127
    a2 = float(np.max(np.abs(w2).sum((1, 2)) * 127 * a1 + np.abs(b2))) / 127 / 4
    blob = {"w1": q1, "b1": np.round(b1 / (in_scale * s1)).astype(np.int32), "s_w1": s1, "s_in": in_scale,
            "w2": q2, "b2": np.round(b2 / (a1 * s2)).astype(np.int32), "s_w2": s2, "s_a1": a1,
            "wo": qo, "bo": np.round(bo / (a2 * so)).astype(np.int32), "s_wo": so, "s_a2": a2}
    np.savez(path, **blob)
    return blob


def gatenet_s8_numpy(blob: dict, feats: np.ndarray) -> np.ndarray:
    """int8 inference of the exported GateNet: log-mel [T, 40] -> log_alpha [T // 2] (float, dequantised)."""
    x = np.clip(np.round(feats / blob["s_in"]), -127, 127).astype(np.int32)  # [T, 40]

    def conv(x, w, b):  # x [T, Cin] int, w [Cout, Cin, K] int8, same padding
        K = w.shape[2]
        xp = np.pad(x, ((K // 2, K // 2), (0, 0)))
        T = x.shape[0]
        cols = np.stack([xp[k: k + T] for k in range(K)], -1)  # [T, Cin, K]
        return np.einsum("tck,ock->to", cols, w.astype(np.int32)) + b

    h1 = np.maximum(conv(x, blob["w1"], blob["b1"]), 0) * (blob["s_in"] * blob["s_w1"] / blob["s_a1"])
    h1 = np.clip(np.round(h1), -128, 127).astype(np.int32)
    h2 = np.maximum(conv(h1, blob["w2"], blob["b2"]), 0) * (blob["s_a1"] * blob["s_w2"] / blob["s_a2"])
    h2 = np.clip(np.round(h2), -128, 127).astype(np.int32)
    S = h2.shape[0] // 2
    pooled = (h2[: 2 * S].reshape(S, 2, -1).sum(1) + 1) // 2
    acc = pooled @ blob["wo"].astype(np.int32).T + blob["bo"]
    return acc[:, 0] * blob["s_a2"] * blob["s_wo"]
