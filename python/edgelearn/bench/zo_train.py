"""Bench "zo": a forward-gradient training step on MiniLM-L6 + LoRA, against the plain-torch way (FwdLLM/MeZO
style), its peak memory, and the seed-only upload.

Workload: a batch of 8 AG News texts tokenised to 64 tokens (padding="max_length", as FwdLLM's code does), K = 16
seeds, central differences, LoRA r=8 on query and value.

* Baseline (``TorchLoRAStep``): transformers' BertModel with plain torch LoRA modules and a mean-pool head; for each
  seed: perturb every trainable tensor in place by +eps v (v = torch.randn), forward under no_grad, -2 eps, forward,
  restore; then the SGD update from the stored v's.
* edgelearn (``ZOTrainer.step``): all 2K streams stacked along the batch dimension in chunks under a memory budget,
  packed tokens, the frozen prefix before the first LoRA layer computed once, perturbations regenerated from seeds
  by the zo kernels, update by seed replay.
Times are best-of-N, the two interleaved (the machine is shared).

Memory: each measurement runs in a fresh subprocess: load the model, warm up on a tiny batch (library
initialisation is not working set), malloc_trim, reset the peak (clear_refs 5), read RSS, run one step, read the
peak (VmHWM). Reported memory = model weights + (peak - RSS before the step): the memory a device needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from . import Report

K_SEEDS, EPS, LR, R = 16, 1e-3, 1e-3, 8
ALL_LAYERS, TOP2 = None, [4, 5]


# ---------------------------------------------------------------------------------------------- the baseline
def _torch_lora_model(layers, num_labels: int = 4):
    """HF BertModel + plain torch LoRA on query/value + mean-pool head (the FwdLLM-style model)."""
    import torch
    from torch import nn
    from transformers import BertModel

    from ..zo.bert import minilm_dir
    from ..zo.lora import layer_index

    class TorchLoRA(nn.Module):
        def __init__(self, base: nn.Linear, r: int, alpha: float):
            super().__init__()
            self.base, self.scale = base, alpha / r
            self.lora_A = nn.Parameter(torch.empty(r, base.in_features).uniform_(-base.in_features ** -0.5,
                                                                                  base.in_features ** -0.5))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))

        def forward(self, x):
            return self.base(x) + self.scale * (x @ self.lora_A.t()) @ self.lora_B.t()

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel.from_pretrained(str(minilm_dir()), add_pooling_layer=False).eval()
            self.head = nn.Linear(self.bert.config.hidden_size, num_labels)

        def forward(self, ids, mask):
            h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            return self.head((h * m).sum(1) / m.sum(1))

    model = Model()
    for p in model.bert.parameters():
        p.requires_grad_(False)
    for name, mod in list(model.bert.named_modules()):
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in ("query", "value") and (
                layers is None or layer_index(name) in layers):
            parent = model.bert.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, name.rsplit(".", 1)[-1], TorchLoRA(mod, R, 2 * R))
    return model


class TorchLoRAStep:
    """One MeZO/FwdLLM-style central-difference step with in-place perturbations."""

    def __init__(self, model, K=K_SEEDS, eps=EPS, lr=LR):
        self.model, self.K, self.eps, self.lr = model, K, eps, lr
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __call__(self, ids, mask, y):
        import torch
        from torch.nn import functional as F

        gs, vs = [], []
        with torch.no_grad():
            for _ in range(self.K):
                v = [torch.randn_like(p) for p in self.params]
                for p, vi in zip(self.params, v):
                    p.add_(vi, alpha=self.eps)
                lp = F.cross_entropy(self.model(ids, mask), y)
                for p, vi in zip(self.params, v):
                    p.add_(vi, alpha=-2 * self.eps)
                lm = F.cross_entropy(self.model(ids, mask), y)
                for p, vi in zip(self.params, v):
                    p.add_(vi, alpha=self.eps)
                gs.append(float(lp - lm) / (2 * self.eps))
                vs.append(v)
            for g, v in zip(gs, vs):
                for p, vi in zip(self.params, v):
                    p.add_(vi, alpha=-self.lr * g / self.K)
        return gs


# ---------------------------------------------------------------------------------------------- workload
def ag_batch(batch: int = 8, max_len: int = 64, seed: int = 0, dense: bool = False):
    """(ids, mask, labels) of `batch` AG News texts padded to max_len; dense: every sequence full length."""
    import numpy as np
    import torch

    from ..data import ag_news, tokenize
    from ..zo.bert import load_tokenizer

    ds = ag_news()
    idx = np.random.Generator(np.random.Philox(seed)).choice(len(ds), batch, replace=False)
    enc = tokenize(ds.subset(idx), load_tokenizer(), max_len)
    if dense:
        g = torch.Generator().manual_seed(seed)
        enc.input_ids = torch.randint(1000, 20000, enc.input_ids.shape, generator=g)
        enc.attention_mask = torch.ones_like(enc.attention_mask)
    return enc.input_ids, enc.attention_mask, enc.labels


def zo_model(layers):
    from ..zo import add_lora, load_minilm_classifier

    model = load_minilm_classifier(4, normalize=False)  # the same model as the baseline (no L2 normalisation)
    add_lora(model, ("query", "value"), layers, r=R, alpha=2 * R)
    return model


def lora_config_bytes(layers) -> tuple[int, int]:
    """(trainable params, fp32 gradient bytes) of LoRA(+head) for MiniLM-L6."""
    d, n_layers, C = 384, 6, 4
    n = len(layers) if layers is not None else n_layers
    params = n * 2 * (R * d + d * R) + (C * d + C)
    return params, 4 * params


# ---------------------------------------------------------------------------------------------- memory (subprocess)
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure_memory(kind: str, layers_arg: str, chunk_mb: float) -> dict:
    """Run in a fresh process: working set of one step of `kind` (zo | infer | backprop)."""
    import torch

    layers = None if layers_arg == "all" else [int(x) for x in layers_arg.split(",")]
    ids, mask, y = ag_batch()
    tiny = (ids[:1, :8], mask[:1, :8], y[:1])
    if kind == "zo":
        from ..zo import ZOTrainer

        model = zo_model(layers)
        tr = ZOTrainer(model, lr=LR, eps=EPS, K=K_SEEDS, chunk_bytes=int(chunk_mb * 2**20))
        step = lambda b: tr.step(*b)  # noqa: E731
    else:
        model = _torch_lora_model(layers)
        if kind == "infer":
            def step(b):
                with torch.no_grad():
                    model(b[0], b[1])
        else:
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)

            def step(b):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(b[0], b[1]), b[2]).backward()
                opt.step()
    weights = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    step(tiny)
    _reset_peak()
    before = _rss_bytes()
    step((ids, mask, y))
    peak = _peak_bytes()
    return {"kind": kind, "weights": weights, "working_set": max(0, peak - before), "rss_before": before}


def _memory_in_subprocess(kind: str, layers_arg: str, chunk_mb: float) -> dict:
    code = ("import json, sys; from edgelearn.bench.zo_train import measure_memory; "
            f"print(json.dumps(measure_memory({kind!r}, {layers_arg!r}, {chunk_mb})))")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- run
def _interleaved_best(fns: dict, rounds: int) -> dict:
    best = {k: float("inf") for k in fns}
    for f in fns.values():
        f()  # warm up
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def run(quick: bool = True) -> Report:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from torch.nn import functional as F

    from ..kernels import zo_noise
    from ..zo import ZOTrainer, trainable_tensors

    rep = Report("zo")
    rounds = 2 if quick else 5
    chunk_mb = 48
    batch = ag_batch()
    rep.add(name="workload", batch=8, max_len=64, real_tokens=int(batch[1].sum()), K=K_SEEDS, mode="central",
            r=R, chunk_budget_mb=chunk_mb, threads=torch.get_num_threads())

    speed = {}
    for label, layers in (("all6", ALL_LAYERS), ("top2", TOP2)):
        base_model = _torch_lora_model(layers)
        base = TorchLoRAStep(base_model)
        model = zo_model(layers)
        tr = ZOTrainer(model, lr=LR, eps=EPS, K=K_SEEDS, chunk_bytes=chunk_mb << 20)
        cases = [("ag_news", batch)] + ([] if quick else [("dense64", ag_batch(dense=True))])
        for case, b in cases:
            t = _interleaved_best({"torch": lambda: base(*b), "edgelearn": lambda: tr.step(*b)}, rounds)
            sp = t["torch"] / t["edgelearn"]
            speed[(label, case)] = sp
            rep.add(name=f"step_{label}_{case}", torch_s=t["torch"], edgelearn_s=t["edgelearn"], speedup=sp,
                    chunks=len(tr.fwd.last_chunks))
        # correctness: stream +0 of edgelearn == the HF baseline model perturbed in place by the same Z
        with torch.no_grad():
            for (n1, t1, _l, _s), t2 in zip(trainable_tensors(model), [p for p in base_model.parameters()
                                                                       if p.requires_grad]):
                t2.copy_(t1.view_as(t2))
            seed = np.array([12345], dtype=np.uint64)
            L = tr.fwd.losses(*batch, seed)
            for (n1, t1, lid, slot), t2 in zip(trainable_tensors(model), [p for p in base_model.parameters()
                                                                           if p.requires_grad]):
                t2.add_(EPS * torch.from_numpy(zo_noise(12345, lid, slot, tuple(t1.shape))).view_as(t2))
            ref = float(F.cross_entropy(base_model(batch[0], batch[1]).double(), batch[2]))
        rep.add(name=f"check_{label}_stream_vs_hf", edgelearn_loss=float(L[0]), hf_loss=ref,
                abs_diff=abs(float(L[0]) - ref), ok=abs(float(L[0]) - ref) <= 1e-4)
        del base_model, base, model, tr
    rep.claim("zo_step_speedup_all6_lora_vs_torch", speed[("all6", "ag_news")], ">= 1.5")
    rep.claim("zo_step_speedup_top2_lora_vs_torch", speed[("top2", "ag_news")], ">= 3")

    mem = {k: _memory_in_subprocess(k, "all", chunk_mb) for k in ("zo", "infer", "backprop")}
    tot = {k: v["weights"] + v["working_set"] for k, v in mem.items()}
    for k, v in mem.items():
        rep.add(name=f"memory_{k}_all6", weights_mb=v["weights"] / 2**20, working_set_mb=v["working_set"] / 2**20,
                total_mb=tot[k] / 2**20)
    rep.claim("zo_step_memory_over_inference", tot["zo"] / tot["infer"], "<= 1.3")
    rep.add(name="zo_step_memory_over_backprop_adamw", ratio=tot["zo"] / tot["backprop"])

    params, grad_bytes = lora_config_bytes(ALL_LAYERS)
    up = K_SEEDS * (8 + 4)
    rep.add(name="upload_per_step", seed_bytes=up, gradient_bytes=grad_bytes, trainable_params=params,
            ratio=grad_bytes / up)
    rep.claim("upload_gradient_over_seed_pairs", grad_bytes / up, ">= 100")
    return rep
