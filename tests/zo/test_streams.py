"""Perturbed forward streams equal naive in-place perturbed forwards; chunking changes nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from edgelearn.kernels import zo_noise
from edgelearn.zo import PerturbedForward, Streams, add_lora, trainable_tensors
from edgelearn.zo.trainer import chunks

from zo_tiny import make_batch, make_tiny

SEEDS = np.array([11, 2**40 + 3, 77], dtype=np.uint64)


def naive_losses(model, batch, seeds, eps, mode, head=True):
    """Loss of each stream by perturbing a copy of the parameters in place with zo_noise."""
    ids, mask, y = batch
    if mode == "central":
        streams = [(k, s) for k in range(len(seeds)) for s in (1.0, -1.0)]
    else:
        streams = [(0, 0.0)] + [(k, 1.0) for k in range(len(seeds))]
    out = []
    for k, sigma in streams:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for _n, t, lid, slot in trainable_tensors(m, head):
                t += sigma * eps * torch.from_numpy(zo_noise(int(seeds[k]), lid, slot, tuple(t.shape)))
            out.append(float(F.cross_entropy(m(ids, mask).double(), y)))
    return np.array(out)


@pytest.mark.parametrize("mode", ["central", "forward"])
@pytest.mark.parametrize("layers", [None, [1]])
def test_streams_match_naive(mode, layers):
    model, batch = make_tiny(layers=layers), make_batch()
    eps = 1e-2
    got = PerturbedForward(model, eps, mode, chunk_bytes=None).losses(*batch, SEEDS)
    want = naive_losses(model, batch, SEEDS, eps, mode)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_head_only_and_no_head():
    model, batch = make_tiny(), make_batch()
    for head in (True, False):
        got = PerturbedForward(model, 1e-2, "central", head=head, chunk_bytes=None).losses(*batch, SEEDS)
        np.testing.assert_allclose(got, naive_losses(model, batch, SEEDS, 1e-2, "central", head), rtol=2e-5,
                                   atol=2e-6)


@pytest.mark.parametrize("mode", ["central", "forward"])
@pytest.mark.parametrize("per_chunk", [2, 3, 5])
def test_chunked_equals_unchunked(mode, per_chunk):
    model, batch = make_tiny(), make_batch()
    seeds = np.arange(100, 107, dtype=np.uint64)
    full = PerturbedForward(model, 1e-3, mode, chunk_bytes=None).losses(*batch, seeds)
    fwd = PerturbedForward(model, 1e-3, mode, chunk_streams=per_chunk)
    part = fwd.losses(*batch, seeds)
    assert len(fwd.last_chunks) > 1
    np.testing.assert_allclose(part, full, rtol=1e-6, atol=1e-7)


def test_chunks_keep_pairs_together():
    for K in range(1, 20):
        for m in (2, 3, 4, 7, 64):
            cs = chunks(K, "central", m)
            assert sum(c.stop - c.start for c in cs) == K
            assert all(2 * (c.stop - c.start) <= max(2, m) for c in cs)
            cf = chunks(K, "forward", m)
            assert all((c.stop - c.start) + 1 <= max(2, m) for c in cf)


def test_unperturbed_forward_unchanged_by_zero_lora():
    torch.manual_seed(0)
    from edgelearn.zo import BertConfig, SentenceClassifier

    from zo_tiny import TINY

    base = SentenceClassifier(TINY, 3).eval()
    ids, mask, _ = make_batch()
    with torch.no_grad():
        before = base(ids, mask)
        add_lora(base, r=2)
        after = base(ids, mask)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_streams_validate():
    with pytest.raises(ValueError, match="mode"):
        Streams(SEEDS, 1e-3, "backward")
    with pytest.raises(ValueError, match="eps"):
        Streams(SEEDS, 0.0)
    st = Streams(SEEDS, 1e-3, rows=4)
    with pytest.raises(ValueError, match="neither shared"):
        st.split(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(make_tiny(), targets=("nope",))


class _Generic(torch.nn.Module):
    """A model not written for streams: embedding -> query/value/out linears -> mean pool -> ZOLinear head."""

    def __init__(self):
        super().__init__()
        from edgelearn.zo import ZOLinear

        torch.manual_seed(3)
        self.emb = torch.nn.Embedding(50, 8)
        self.layer = torch.nn.ModuleList([torch.nn.Module()])
        self.layer[0].query = torch.nn.Linear(8, 8)
        self.layer[0].value = torch.nn.Linear(8, 8)
        self.head = ZOLinear(8, 3)

    def forward(self, ids, mask):
        h = self.emb(ids)
        h = torch.tanh(self.layer[0].query(h)) * self.layer[0].value(h)
        m = mask.unsqueeze(-1).float()
        return self.head((h * m).sum(1) / m.sum(1))


@pytest.mark.parametrize("mode", ["central", "forward"])
def test_generic_model_stacked_from_the_start(mode):
    from edgelearn.zo import StackedModel

    model = _Generic()
    add_lora(model, r=2)
    with torch.no_grad():
        model.layer[0].query.lora_B.normal_()
    wrapped = StackedModel(model)
    batch = make_batch()
    got = PerturbedForward(wrapped, 1e-2, mode, chunk_streams=4).losses(*batch, SEEDS)
    np.testing.assert_allclose(got, naive_losses(model, batch, SEEDS, 1e-2, mode), rtol=2e-5, atol=2e-6)


def test_dense_batch_fast_path():
    model = make_tiny()
    ids, mask, y = make_batch()
    mask = torch.ones_like(mask)
    ids = ids.clamp(min=1)
    got = PerturbedForward(model, 1e-2, "central", chunk_bytes=None).losses(ids, mask, y, SEEDS)
    np.testing.assert_allclose(got, naive_losses(model, (ids, mask, y), SEEDS, 1e-2, "central"), rtol=2e-5,
                               atol=2e-6)


def test_kernels_are_native():
    from edgelearn.zo import _ops

    assert _ops.native(), "the compiled zo kernels must be bound (edgelearn._kernels)"
