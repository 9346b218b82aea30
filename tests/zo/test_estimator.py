"""The forward-gradient estimator: g_k are directional derivatives (jvp) and their mean recovers the gradient."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn import functional as F

from edgelearn.kernels import zo_noise
from edgelearn.zo import PerturbedForward, trainable_tensors

from zo_tiny import make_batch, make_tiny


def _loss_fn(model, batch, names):
    ids, mask, y = batch
    base = {n: p for n, p in model.named_parameters()}

    def f(*vals):
        params = dict(base)
        params.update(dict(zip(names, vals)))
        return F.cross_entropy(functional_call(model, params, (ids, mask)), y)

    return f


def _param_names(model):
    ptr = {t.data_ptr(): n for n, t in model.named_parameters()}
    return [ptr[t.data_ptr()] for _n, t, _l, _s in trainable_tensors(model)]


def test_central_differences_match_jvp():
    model, batch = make_tiny(), make_batch()
    seeds = np.arange(1, 9, dtype=np.uint64) * np.uint64(7919)
    g, _ = PerturbedForward(model, 1e-3, "central", chunk_bytes=None).gradients(*batch, seeds)  # float32 kernel path

    m64 = copy.deepcopy(model).double()
    names = _param_names(m64)
    f = _loss_fn(m64, batch, names)
    tt = trainable_tensors(m64)
    primals = tuple(t.detach() for _n, t, _l, _s in tt)
    for k, s in enumerate(seeds):
        tangents = tuple(torch.from_numpy(zo_noise(int(s), lid, slot, tuple(t.shape))).double()
                         for _n, t, lid, slot in tt)
        with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention has no forward-mode AD
            _, d = jvp(f, primals, tangents)
        assert abs(g[k] - float(d)) <= 1e-2 * abs(float(d)) + 1e-4, (k, g[k], float(d))


def test_mean_estimate_aligns_with_autograd():
    model, batch = make_tiny(), make_batch()
    K = 2000
    seeds = np.arange(K, dtype=np.uint64) + np.uint64(12345)
    g, _ = PerturbedForward(model, 1e-3, "central", chunk_streams=1000).gradients(*batch, seeds)

    tt = trainable_tensors(model)
    ids, mask, y = batch
    with torch.enable_grad():
        loss = F.cross_entropy(model(ids, mask), y)
        grads = torch.autograd.grad(loss, [t for _n, t, _l, _s in tt])
    true = torch.cat([gr.reshape(-1) for gr in grads]).double()
    est = torch.zeros_like(true)
    for k, s in enumerate(seeds):
        z = torch.cat([torch.from_numpy(zo_noise(int(s), lid, slot, tuple(t.shape))).reshape(-1)
                       for _n, t, lid, slot in tt]).double()
        est += float(g[k]) * z
    est /= K
    cos = float(est @ true / (est.norm() * true.norm()))
    assert true.numel() < 300  # keeps (d+1)/K small enough for cos >= 0.9 in expectation
    assert cos >= 0.9, cos
