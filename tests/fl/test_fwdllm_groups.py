"""FwdLLM's two perturbation groups (LoRA seeds, cheap head-only seeds), the cached frozen prefix, and variants
run side by side in processes."""

import json

import numpy as np
import pytest
import torch

from edgelearn.fl.client import ClientContext
from edgelearn.fl.config import build_engine, run_config
from edgelearn.fl.devices import Device
from edgelearn.fl.strategies import FwdLLM
from edgelearn.fl.strategies.fwdllm import group_mask
from fl_tiny import tiny_config, tiny_toml

GROUPS = ('name = "fwdllm"\nlr = 0.5\nK = 4\nmin_K = 4\nmax_K = 8\nbatch = 16\nK_head = 64\nhead_lr = 2.0\n'
          'candidate_ratio = 2.0\nvar_threshold = 5.0')


@pytest.fixture(scope="module")
def tiny(corpus, tmp_path_factory):
    return tiny_config(corpus, tmp_path_factory.mktemp("groups"), GROUPS, rounds=4)


@pytest.fixture(scope="module")
def cfg(tiny):
    return tiny[0]


@pytest.fixture(scope="module")
def task(tiny):
    return tiny[1]


def test_cached_prefix_equals_the_models_own_prefix(task):
    idx = np.array([5, 0, 17, 3, 42])
    pre = task.prefix(idx)
    ids, mask, _y = task.batch(idx)
    with torch.inference_mode():
        ref = task.model.prefix(ids, mask)
    assert pre.start == ref.start == task.first_trained_layer()
    assert torch.equal(pre.pk.lengths, ref.pk.lengths) and torch.equal(pre.pk.idx, ref.pk.idx)
    torch.testing.assert_close(pre.h, ref.h, rtol=1e-5, atol=1e-6)
    logits = task.model.head(task.features(pre))
    with torch.inference_mode():
        torch.testing.assert_close(logits, task.model(ids, mask), rtol=1e-4, atol=1e-5)


def _ctx(task, cid=3, K=4, K_head=64):
    shard = np.arange(cid * 10, cid * 10 + 30)
    c = ClientContext(cid, 1, Device("d", 1e9, 1 << 40, 1e6, 1e6), shard, 0)
    c.instructions = {"K": K, "K_head": K_head, "iter": 0}
    return c


def test_head_seeds_touch_only_the_head_and_seed_uplink_decodes_to_the_full_vector(task):
    init = task.get_vector()
    seed_s, full_s = FwdLLM(K=4, min_K=4, K_head=64), FwdLLM(K=4, min_K=4, K_head=64, uplink="full")
    u_seed = seed_s.decode(task, seed_s.fit(task, _ctx(task), init))
    u_full = full_s.decode(task, full_s.fit(task, _ctx(task), init))
    np.testing.assert_allclose(u_seed.vector, u_full.vector, rtol=1e-5, atol=1e-7)
    assert u_seed.bytes_up == 12 * 4 + 8 + 4 * 64 + 4 < u_full.bytes_up == 4 * task.n + 4
    head = ~group_mask(task, "lora")
    assert head.any() and (~head).any()
    # the head-only part of the update equals what the 64 head seeds alone rebuild
    only_head = FwdLLM(K=4, min_K=4, K_head=64)
    p = dict(u_seed.payload)
    p["g"] = np.zeros_like(p["g"])
    from edgelearn.fl.client import Update

    v = only_head.decode(task, Update(3, 30, p, 0, 0, 0.0, 0)).vector
    assert np.all(v[~head] == 0) and np.array_equal(v[head], u_seed.vector[head])


def test_head_group_estimate_points_along_the_true_head_gradient(task):
    """Many head-only perturbations: the forward-gradient estimate of the head aligns with backprop's."""
    init = task.get_vector()
    s = FwdLLM(K=4, min_K=4, K_head=2048)
    u = s.decode(task, s.fit(task, _ctx(task, K_head=2048), init))
    idx = _ctx(task).rng(1).choice(_ctx(task).shard, size=16, replace=False)
    pre = task.prefix(idx)
    y = task.train.labels[idx]
    head = task.model.head
    for p in (head.weight, head.bias):
        p.grad = None
    loss = torch.nn.functional.cross_entropy(head(task.features(pre)), y)
    loss.backward()
    g = np.concatenate([head.weight.grad.reshape(-1).numpy(), head.bias.grad.numpy()])
    est = u.vector[~group_mask(task, "lora")]
    cos = float(est @ g / (np.linalg.norm(est) * np.linalg.norm(g)))
    assert cos > 0.6, cos


def test_head_group_learns_and_is_thread_and_resume_exact(cfg, task, tmp_path):
    init = task.get_vector()
    runs = []
    for threads in (1, 2):
        n = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            task.set_vector(init)
            eng = build_engine(cfg.variants[0].cfg, task)
            runs.append((eng, eng.run()))
        finally:
            torch.set_num_threads(n)
    (e1, s1), (e2, s2) = runs
    assert s1["model_sha1"] == s2["model_sha1"]
    assert s1["accuracy_final"] > s1["accuracy_initial"] + 0.1
    task.set_vector(init)


def test_variants_in_processes_equal_the_sequential_run(corpus, tmp_path):
    p = tmp_path / "two.toml"
    p.write_text(tiny_toml(corpus, GROUPS, rounds=2, extra='\n[variants.a]\n[variants.b]\nstrategy = { K_head = 32 }\n'))
    seq = run_config(p, json_path=tmp_path / "seq.jsonl")
    par = run_config(p, json_path=tmp_path / "par.jsonl", jobs=2)
    for v in ("a", "b"):
        assert seq["variants"][v]["model_sha1"] == par["variants"][v]["model_sha1"]
    lines = [json.loads(x) for x in (tmp_path / "par.jsonl").read_text().splitlines()]
    assert lines[-1]["summary"] and {x.get("variant") for x in lines[:-1]} == {"a", "b"}
    assert seq["variants"]["a"]["model_sha1"] != seq["variants"]["b"]["model_sha1"]


def test_bad_group_settings_name_the_field():
    with pytest.raises(ValueError, match="strategy.K_head"):
        FwdLLM(K_head=-1)
    with pytest.raises(ValueError, match="strategy.head_lr"):
        FwdLLM(head_lr=0.0)
