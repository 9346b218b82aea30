"""Updates by seed replay, (seed, g) pairs, schedules, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgelearn.kernels import zo_noise
from edgelearn.zo import Schedule, ZOTrainer, apply_pairs, trainable_tensors

from zo_tiny import make_batch, make_tiny


def test_replay_update_equals_manual():
    model = make_tiny()
    seeds = np.array([5, 6, 7], dtype=np.uint64)
    g = np.array([0.5, -1.25, 2.0], dtype=np.float32)
    lr = 0.1
    before = {n: t.detach().clone() for n, t, _l, _s in trainable_tensors(model)}
    apply_pairs(model, seeds, g, lr)
    for n, t, lid, slot in trainable_tensors(model):
        want = before[n].double().clone()
        for s, gk in zip(seeds, g):
            want += (-lr * float(gk) / 3) * torch.from_numpy(zo_noise(int(s), lid, slot, tuple(t.shape))).double()
        torch.testing.assert_close(t.detach().double(), want, rtol=1e-6, atol=1e-6)


def test_step_pairs_rebuild_the_update():
    a, b = make_tiny(), make_tiny()
    tr = ZOTrainer(a, lr=0.05, eps=1e-3, K=4, seed=3)
    res = tr.step(*make_batch())
    assert len(res.pairs()) == 4 and res.g.dtype == np.float32
    apply_pairs(b, [s for s, _ in res.pairs()], [gk for _, gk in res.pairs()], res.lr)
    for (n, ta, _, _), (_, tb, _, _) in zip(trainable_tensors(a), trainable_tensors(b)):
        assert torch.equal(ta, tb), n


@pytest.mark.parametrize("mode", ["central", "forward"])
def test_same_seed_bit_identical(mode):
    params = []
    for _ in range(2):
        model = make_tiny()
        tr = ZOTrainer(model, lr=Schedule(0.05, "cosine", warmup=1, total=4), eps=1e-3, K=5, mode=mode, seed=9,
                       chunk_streams=4)
        for step in range(4):
            tr.step(*make_batch(step))
        params.append([t.detach().clone() for _n, t, _l, _s in trainable_tensors(model)])
    assert all(torch.equal(x, y) for x, y in zip(*params))
    other = make_tiny()
    ZOTrainer(other, lr=0.05, K=5, mode=mode, seed=10).step(*make_batch(0))
    assert not torch.equal(params[0][0], trainable_tensors(other)[0][1])


def test_training_lowers_loss():
    model, batch = make_tiny(), make_batch()
    tr = ZOTrainer(model, lr=0.2, eps=1e-3, K=16, seed=0)
    first = tr.step(*batch).loss
    for _ in range(30):
        last = tr.step(*batch).loss
    assert last < first


def test_schedule():
    s = Schedule(1.0, "cosine", warmup=2, total=12)
    assert s(0) == pytest.approx(0.5) and s(1) == pytest.approx(1.0) and s(2) == pytest.approx(1.0)
    assert s(12) == pytest.approx(0.0, abs=1e-12)
    lin = Schedule(2.0, "linear", total=10, final=0.5)
    assert lin(5) == pytest.approx(1.5) and lin(10) == pytest.approx(1.0)
    assert Schedule(0.3)(1000) == 0.3
    with pytest.raises(ValueError, match="total"):
        Schedule(1.0, "cosine")
    with pytest.raises(ValueError, match="schedule"):
        Schedule(1.0, "step")


def test_bad_arguments():
    model = make_tiny()
    with pytest.raises(ValueError, match="g:"):
        apply_pairs(model, [1, 2], [0.1], 0.1)
    with pytest.raises(ValueError, match="K"):
        ZOTrainer(model, K=0)
    with pytest.raises(ValueError, match="mode"):
        ZOTrainer(model, mode="sideways")


def test_perturbation_scale_streams_and_update():
    import copy

    from torch.nn import functional as F

    from edgelearn.zo import PerturbedForward, set_perturbation_scale
    from edgelearn.zo.lora import tensor_scales

    model, (ids, mask, y) = make_tiny(), make_batch()
    set_perturbation_scale(model, lora=0.25)
    seeds, eps = np.array([3, 4], dtype=np.uint64), 1e-2
    got = PerturbedForward(model, eps, "central", chunk_bytes=None).losses(ids, mask, y, seeds)
    want = []
    for k in range(2):
        for sigma in (1.0, -1.0):
            m = copy.deepcopy(model)
            with torch.no_grad():
                for (_n, t, lid, slot), sc in zip(trainable_tensors(m), tensor_scales(m)):
                    t += sigma * sc * eps * torch.from_numpy(zo_noise(int(seeds[k]), lid, slot, tuple(t.shape)))
                want.append(float(F.cross_entropy(m(ids, mask).double(), y)))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert sorted(set(tensor_scales(model))) == [0.25, 1.0]

    before = {n: t.detach().clone() for n, t, _l, _s in trainable_tensors(model)}
    g = np.array([1.0, -2.0], dtype=np.float32)
    apply_pairs(model, seeds, g, 0.1)
    for (n, t, lid, slot), sc in zip(trainable_tensors(model), tensor_scales(model)):
        want_t = before[n].double().clone()
        for s, gk in zip(seeds, g):
            want_t += (-0.1 * sc * float(gk) / 2) * torch.from_numpy(zo_noise(int(s), lid, slot, tuple(t.shape))).double()
        torch.testing.assert_close(t.detach().double(), want_t, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        set_perturbation_scale(model, lora=0.0)
