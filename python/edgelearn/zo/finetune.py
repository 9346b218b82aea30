"""The main job: backpropagation-free fine-tuning of MiniLM-L6 (+ LoRA + head) on AG News with forward gradients.

    from edgelearn.zo.finetune import finetune
    out = finetune(steps=300)        # held-out accuracy before / during / after, wall time

The held-out set is a seeded stratified split of the AG News file; training batches are drawn (seeded) from the
rest. The encoder layers below the first LoRA layer are frozen, so their output for the held-out set is computed
once and reused by every evaluation.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch

from ..data import ag_news, stratified_split, tokenize
from .bert import load_minilm_classifier, load_tokenizer
from .lora import add_lora
from .trainer import Schedule, ZOTrainer


class PrefixEvaluator:
    """Held-out accuracy / loss with the frozen prefix of each eval batch computed once."""

    def __init__(self, model, enc, batch: int = 64):
        self.model, self.labels = model, enc.labels
        with torch.inference_mode():
            self.prefixes = [model.prefix(enc.input_ids[i:i + batch], enc.attention_mask[i:i + batch])
                             for i in range(0, len(enc), batch)]
            self.batch = batch

    @torch.inference_mode()
    def __call__(self) -> tuple[float, float]:
        correct, loss = 0, 0.0
        for j, pre in enumerate(self.prefixes):
            y = self.labels[j * self.batch:(j + 1) * self.batch]
            h = self.model.bert.run(pre.h, pre.pk, pre.start)
            logits = self.model.head(self.model.pool(h, pre.pk))
            correct += int((logits.argmax(1) == y).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        return correct / len(self.labels), loss / len(self.labels)


def finetune(steps: int = 150, batch: int = 8, max_len: int = 64, K: int = 16, lr: float = 2e-2,
             eps: float = 1e-3, lora_layers: Sequence[int] | None = (4, 5), r: int = 8, mode: str = "forward",
             schedule: str = "cosine", warmup: int = 0, train_head: bool = True, seed: int = 0,
             eval_size: int = 400, eval_points: int = 4, chunk_bytes: int | None = 64 << 20,
             progress: bool = True, log: Callable[[dict], None] | None = None, data=None,
             eval_on: str = "test", normalize: bool = False, lora_scale: float = 0.1) -> dict:
    """Fine-tune on AG News with forward gradients; returns {"history": [{step, loss, acc}], "acc_before",
    "acc_after", "wall_s", "settings"}.

    lora_layers: encoder blocks with LoRA (r on query and value); None = all six, () = head only.
    The loss in the history is the running mean of the training loss since the previous evaluation.
    data: a TextDataset to use instead of AG News (same label mapping rules).
    eval_on: "test" (the held-out split) or "val" (a split of the training part: tune settings with this, so the
    held-out split is never looked at while tuning).
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    emit = log or (lambda rec: None)
    ds = data if data is not None else ag_news()
    train_idx, test_idx = stratified_split(ds.labels, int(eval_size), seed=seed)
    if eval_on == "val":
        tr, va = stratified_split(ds.labels[train_idx], int(eval_size), seed=seed + 1)
        train_idx, test_idx = train_idx[tr], train_idx[va]
    elif eval_on != "test":
        raise ValueError(f"eval_on: expected 'test' or 'val', got {eval_on!r}")
    tok = load_tokenizer()
    test = tokenize(ds.subset(test_idx), tok, max_len)
    model = load_minilm_classifier(ds.num_classes, seed=seed, normalize=normalize)
    if lora_layers is None or len(lora_layers):
        add_lora(model, ("query", "value"), lora_layers, r=r, alpha=2 * r, seed=seed)
    sched = Schedule(lr, schedule, warmup=warmup, total=steps)
    trainer = ZOTrainer(model, lr=sched, eps=eps, K=K, mode=mode, train_head=train_head, chunk_bytes=chunk_bytes,
                        seed=seed, lora_scale=lora_scale)
    evaluate = PrefixEvaluator(model, test)
    rng = np.random.Generator(np.random.Philox(seed + 1))
    order = rng.permutation(train_idx)
    need = steps * batch
    order = np.concatenate([order] * (need // len(order) + 1))[:need]
    train = tokenize(ds.subset(order), tok, max_len)

    def say(msg):
        if progress:
            print(msg, flush=True)

    acc, eloss = evaluate()
    history = [{"step": 0, "loss": eloss, "acc": acc, "t": time.perf_counter() - t0}]
    acc_before = acc
    emit({"step": 0, "acc": acc, "eval_loss": eloss})
    say(f"untrained head: held-out acc {acc:.3f} (n={len(test)}), loss {eloss:.3f}")
    marks = sorted({max(1, round(steps * (i + 1) / eval_points)) for i in range(eval_points)})
    run, n_run = 0.0, 0
    for step in range(1, steps + 1):
        sl = slice((step - 1) * batch, step * batch)
        res = trainer.step(train.input_ids[sl], train.attention_mask[sl], train.labels[sl])
        run, n_run = run + res.loss, n_run + 1
        emit({"step": step, "loss": res.loss, "lr": res.lr})
        if progress and step % 10 == 0:
            say(f"step {step:4d}  loss(running) {run / n_run:.3f}  lr {res.lr:.3g}  {time.perf_counter() - t0:.0f}s")
        if step in marks:
            acc, eloss = evaluate()
            rec = {"step": step, "loss": run / n_run, "acc": acc, "eval_loss": eloss, "t": time.perf_counter() - t0}
            history.append(rec)
            emit(rec)
            say(f"step {step:4d}  train loss {run / n_run:.3f}  held-out acc {acc:.3f}  eval loss {eloss:.3f}")
            run, n_run = 0.0, 0
    wall = time.perf_counter() - t0
    say(f"done: held-out acc {acc_before:.3f} -> {history[-1]['acc']:.3f} in {wall:.0f}s")
    return {"history": history, "acc_before": acc_before, "acc_after": history[-1]["acc"], "wall_s": wall,
            "settings": {"steps": steps, "batch": batch, "max_len": max_len, "K": K, "lr": lr, "eps": eps,
                         "lora_layers": None if lora_layers is None else list(lora_layers), "r": r, "mode": mode,
                         "schedule": schedule, "train_head": train_head, "seed": seed, "eval_size": len(test), "eval_on": eval_on, "normalize": normalize, "lora_scale": lora_scale}}
