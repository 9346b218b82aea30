"""Wrappers: dropout, fault injection, rejection (counted), clipping; on no-op clients and a vector task."""

import numpy as np
import pytest

from edgelearn.data.partition import Partition
from edgelearn.fl import DevicePool, Engine, Update
from edgelearn.fl.strategies import Clipping, Dropout, FaultInjection, NoOp, Rejection, l2, wrap
from edgelearn.fl.task import VectorTask


def _engine(strategy, rounds=20, m=20, pop=200, n=64):
    part = Partition(np.zeros(0, np.int64), np.zeros(pop + 1, np.int64))
    return Engine(VectorTask(n), strategy, part, DevicePool(), seed=1, rounds=rounds, clients_per_round=m,
                  eval_every=10**6)


def _up(cid, vec):
    return Update(cid, 1, {"vector": vec}, 0, 0, 0.0, 0, vector=np.asarray(vec, np.float32))


def test_dropout_rate_and_determinism():
    s = _engine(wrap(NoOp(), dropout=0.3), rounds=50).run()
    assert 0.22 < s["dropped_total"] / (50 * 20) < 0.38
    assert s["client_updates"] + s["dropped_total"] == 1000
    assert _engine(wrap(NoOp(), dropout=0.3), rounds=50).run()["dropped_total"] == s["dropped_total"]


def test_rejection_drops_non_finite_and_absurd_updates_and_counts_them():
    r = Rejection(NoOp(), factor=100)
    ups = [_up(i, np.ones(4)) for i in range(5)] + [_up(5, [np.nan, 0, 0, 0]), _up(6, np.full(4, 1e9)),
                                                   _up(7, [np.inf, 1, 1, 1])]
    kept = r.filter(1, ups)
    assert [u.cid for u in kept] == [0, 1, 2, 3, 4]
    assert r.round_metrics()["rejected"] == 3 and r.rejected_total == 3
    r2 = Rejection(NoOp(), max_norm=1.5)
    assert [u.cid for u in r2.filter(1, [_up(0, np.ones(4)), _up(1, [1, 0, 0, 0])])] == [1]


def test_clipping_scales_to_max_norm():
    c = Clipping(NoOp(), max_norm=1.0)
    out = c.filter(1, [_up(0, [3.0, 4.0]), _up(1, [0.3, 0.4])])
    assert l2(out[0].vector) == pytest.approx(1.0, rel=1e-6)
    assert np.allclose(out[1].vector, [0.3, 0.4])
    assert c.round_metrics()["clipped"] == 1


def test_faults_are_rejected_and_counted_end_to_end():
    strat = wrap(NoOp(), dropout=0.3, faults=0.05, reject=True)
    eng = _engine(strat, rounds=40)
    s = eng.run()
    inj = eng.strategy.inner.inner.inner.injected if False else None
    f = strat
    while not isinstance(f, FaultInjection):
        f = f.inner
    assert f.injected > 0
    assert s["rejected_total"] == f.injected
    assert np.all(np.isfinite(eng.vec)) and np.all(eng.vec == 0)


def test_wrapper_order_and_describe():
    s = wrap(NoOp(), dropout=0.1, faults=0.1, reject=True, clip=1.0)
    assert isinstance(s, Clipping) and isinstance(s.inner, Rejection) and isinstance(s.inner.inner, Dropout)
    assert "FaultInjection(noop)" in s.describe()
    with pytest.raises(ValueError, match="dropout.rate"):
        Dropout(NoOp(), 1.0)
