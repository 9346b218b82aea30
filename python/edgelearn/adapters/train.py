"""Apps, training and evaluation of adapters over the int8 backbone (and the same adapter on the fp32 backbone).

Methods:
    backprop  AdamW on LoRA + head; gradients through the dequantised base (x fake-quantised on the same grid)
    zo        forward gradients (edgelearn.zo.ZOTrainer): every perturbed LoRA layer runs qlinear_lora_s8
    int8      LoRA A/B kept as int8 with per-row scales, stepped by qadapter_update_s8 (SGD, stochastic
              rounding from the Philox stream) with backprop gradients; the head is float (AdamW)

The encoder blocks below the first LoRA layer are frozen, so their output for each batch is computed once (int8
on the int8 backbone) and reused every epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..data import TextDataset, ag_news, load_text_csv, stratified_split, tokenize
from ..kernels import quant
from ..zo.lora import LoRALinear

APPS = ("ag_news", "sst2")
METHODS = ("backprop", "zo", "int8")


@dataclass
class TrainConfig:
    steps: int = 200
    batch: int = 16
    max_len: int = 64
    lr: float = 2e-3
    train_size: int = 1024
    eval_size: int = 400
    seed: int = 0
    K: int = 16  # zo: seeds per step
    eps: float = 1e-3


QUICK = TrainConfig()


def app_data(app: str, cfg: TrainConfig) -> tuple[TextDataset, TextDataset]:
    """(train, eval) datasets of an app: seeded, stratified subsets of the shared files."""
    if app == "ag_news":
        ds = ag_news()
        tr, te = stratified_split(ds.labels, cfg.eval_size, seed=cfg.seed)
        tr = tr[:cfg.train_size]
        return ds.subset(tr), ds.subset(te)
    if app == "sst2":
        from ..shared import require_shared

        train = load_text_csv(require_shared("data", "sst2", "train.tsv"), "label", "sentence")
        dev = load_text_csv(require_shared("data", "sst2", "dev.tsv"), "label", "content")
        _, tr = stratified_split(train.labels, cfg.train_size, seed=cfg.seed)
        _, te = stratified_split(dev.labels, min(cfg.eval_size, len(dev) - 2), seed=cfg.seed)
        return train.subset(tr), dev.subset(te)
    raise ValueError(f"app: expected one of {APPS}, got {app!r}")


class Prefixes:
    """The frozen prefix (blocks below the first LoRA layer) of each batch, computed once."""

    def __init__(self, model, enc, batch: int):
        self.batch, self.labels = batch, enc.labels
        with torch.no_grad():  # not inference_mode: the packing indices are reused under autograd
            self.items = [model.prefix(enc.input_ids[i:i + batch], enc.attention_mask[i:i + batch])
                          for i in range(0, len(enc), batch)]

    def __len__(self) -> int:
        return len(self.items)

    def labels_of(self, j: int) -> torch.Tensor:
        return self.labels[j * self.batch:(j + 1) * self.batch]


def logits_of(model, pre) -> torch.Tensor:
    h = model.bert.run(pre.h, pre.pk, pre.start)
    return model.head(model.pool(h, pre.pk))


@torch.inference_mode()
def evaluate(model, pres: Prefixes) -> float:
    correct = sum(int((logits_of(model, p).argmax(1) == pres.labels_of(j)).sum()) for j, p in enumerate(pres.items))
    return correct / len(pres.labels)


def _lora_modules(model) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def train_backprop(model, pres: Prefixes, cfg: TrainConfig, int8_adapters: bool = False, log=None) -> list[float]:
    """AdamW on LoRA + head (int8_adapters: LoRA stepped by qadapter_update_s8 instead). Returns step losses."""
    loras = _lora_modules(model)
    head = [model.head.weight, model.head.bias]
    lora_params = [t for m in loras for t in (m.lora_A, m.lora_B)]
    for t in head + lora_params:
        t.requires_grad_(True)
    opt = torch.optim.AdamW(head if int8_adapters else head + lora_params, lr=cfg.lr, weight_decay=0.0)
    q8 = []
    if int8_adapters:  # int8 copies with fixed per-row scales: A from its init range, B a range it may grow to
        for m in loras:
            for t, rng_ in ((m.lora_A, None), (m.lora_B, 0.05)):
                amax = t.detach().abs().amax(1).clamp_min(1e-3) if rng_ is None else torch.full((t.shape[0],), rng_)
                s = (amax / 127).float().numpy().astype(np.float32)
                q = np.clip(np.rint(t.detach().numpy() / s[:, None]), -127, 127).astype(np.int8)
                q8.append((t, q, s))
                with torch.no_grad():
                    t.copy_(torch.from_numpy(q.astype(np.float32) * s[:, None]))
    order = np.random.Generator(np.random.Philox(cfg.seed + 7))
    losses = []
    sgd_lr = cfg.lr * 25  # plain SGD on the int8 adapter needs a larger step than Adam's normalised one
    for step in range(cfg.steps):
        j = int(order.integers(len(pres)))
        loss = F.cross_entropy(logits_of(model, pres.items[j]), pres.labels_of(j))
        opt.zero_grad(set_to_none=True)
        for t in lora_params:
            t.grad = None
        loss.backward()
        opt.step()
        if int8_adapters:
            qs = [q for _, q, _ in q8]
            quant.qadapter_update_s8(qs, [s for _, _, s in q8], [t.grad.numpy() for t, _, _ in q8], sgd_lr,
                                     seed=cfg.seed * 1_000_003 + step)
            with torch.no_grad():
                for t, q, s in q8:
                    t.copy_(torch.from_numpy(q.astype(np.float32) * s[:, None]))
        losses.append(float(loss.detach()))
        if log and (step + 1) % 25 == 0:
            log({"step": step + 1, "loss": float(np.mean(losses[-25:]))})
    for t in head + lora_params:
        t.grad = None
    return losses


def train_zo(model, enc, cfg: TrainConfig, log=None) -> list[float]:
    """Forward-gradient steps (ZOTrainer) on raw batches: the perturbed LoRA layers run the int8 kernels."""
    from ..zo.trainer import ZOTrainer

    trainer = ZOTrainer(model, lr=cfg.lr * 10, eps=cfg.eps, K=cfg.K, mode="forward", seed=cfg.seed)
    order = np.random.Generator(np.random.Philox(cfg.seed + 7))
    losses = []
    for step in range(cfg.steps):
        idx = torch.from_numpy(order.integers(0, len(enc), cfg.batch))
        res = trainer.step(enc.input_ids[idx], enc.attention_mask[idx], enc.labels[idx])
        losses.append(res.loss)
        if log and (step + 1) % 25 == 0:
            log({"step": step + 1, "loss": float(np.mean(losses[-25:]))})
    return losses


def run_app(model, app: str, cfg: TrainConfig, method: str = "backprop", tokenizer=None, log=None) -> dict:
    """Train `model` (adapter attached) on `app` with `method`; returns accuracies, losses and wall time."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    from ..zo.bert import load_tokenizer

    tok = tokenizer or load_tokenizer()
    train_ds, eval_ds = app_data(app, cfg)
    tr, te = tokenize(train_ds, tok, cfg.max_len), tokenize(eval_ds, tok, cfg.max_len)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    ev = Prefixes(model, te, 64)
    acc0 = evaluate(model, ev)
    if method == "zo":
        losses = train_zo(model, tr, cfg, log)
    else:
        losses = train_backprop(model, Prefixes(model, tr, cfg.batch), cfg, method == "int8", log)
    acc = evaluate(model, ev)
    return {"app": app, "method": method, "acc_before": acc0, "acc": acc, "loss_first": float(np.mean(losses[:10])),
            "loss_last": float(np.mean(losses[-10:])), "wall_s": time.perf_counter() - t0,
            "classes": list(train_ds.classes), "num_labels": train_ds.num_classes, "eval_size": len(eval_ds)}


__all__ = ["APPS", "METHODS", "QUICK", "Prefixes", "TrainConfig", "app_data", "evaluate", "run_app",
           "train_backprop", "train_zo"]


def fp32_model(num_labels: int, spec, seed: int = 0):
    """The same adapter on the fp32 backbone: MiniLM fp32 + add_lora (same targets, layers, r, alpha, seed)."""
    from ..zo.bert import load_minilm_classifier
    from ..zo.lora import add_lora

    model = load_minilm_classifier(num_labels, seed=seed)
    add_lora(model, spec.targets, spec.layers, r=spec.r, alpha=spec.alpha, seed=seed)
    return model


def quick_compare(backbone_path, bank_dir, apps=APPS, cfg: TrainConfig = QUICK, method: str = "backprop",
                  log=None) -> dict:
    """For each app: the same adapter trained on the fp32 backbone and on the int8 backbone (saved to the bank);
    returns per-app accuracies and the claim rows (|int8 - fp32| <= 1 point)."""
    from ..zo.bert import load_tokenizer
    from .backbone import Int8Backbone
    from .bank import AdapterBank, AdapterSpec

    tok = load_tokenizer()
    bank = AdapterBank(Int8Backbone(backbone_path), bank_dir)
    spec = AdapterSpec()
    rows, claims = [], []
    for app in apps:
        n = app_data(app, TrainConfig(train_size=8, eval_size=8))[0].num_classes
        r32 = run_app(fp32_model(n, spec, cfg.seed), app, cfg, "backprop", tok, log)
        model = bank.new_model(app, n, spec, cfg.seed)
        r8 = run_app(model, app, cfg, method, tok, log)
        bank.save(app, r8["classes"], spec, {"acc": r8["acc"], "method": method, "steps": cfg.steps})
        rows += [{**r32, "backbone": "fp32"}, {**r8, "backbone": "int8"}]
        diff = 100 * (r32["acc"] - r8["acc"])
        claims.append({"name": f"{app}: fp32-backbone acc - int8-backbone acc (points, {cfg.steps} steps)",
                       "value": diff, "target": "<= 1", "ok": bool(diff <= 1.0)})
        if log:
            log({"app": app, "fp32_acc": r32["acc"], "int8_acc": r8["acc"]})
    return {"results": rows, "claims": claims, "settings": cfg.__dict__, "backbone_sha256": bank.backbone.sha256}
