"""FedAvg over LoRA + head trained by backpropagation: the baseline.

Each client loads the global LoRA + head, takes `local_steps` optimizer steps (SGD or Adam, state reset every
round) on batches of its shard, and uploads the full float32 delta. The server adds `server_lr` x the mean of the
deltas weighted by the clients' example counts. A client joins only if its device's memory holds a backprop step
(weights + activations + gradients + optimizer state; TextTask.mem_backprop).
"""

from __future__ import annotations

import numpy as np

from ..client import ClientContext, Update
from .aggregate import apply_delta, weighted_mean
from .base import Strategy


class FedAvg(Strategy):
    name = "fedavg"

    def __init__(self, lr: float = 1e-3, local_steps: int = 1, batch: int = 8, optimizer: str = "adam",
                 server_lr: float = 1.0):
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"strategy.optimizer: expected 'sgd' or 'adam', got {optimizer!r}")
        for k, v in (("lr", lr), ("local_steps", local_steps), ("batch", batch), ("server_lr", server_lr)):
            if not v > 0:
                raise ValueError(f"strategy.{k}: must be > 0, got {v}")
        self.lr, self.local_steps, self.batch = float(lr), int(local_steps), int(batch)
        self.optimizer, self.server_lr = optimizer, float(server_lr)

    def feasible(self, task, device) -> bool:
        return task.mem_backprop(self.batch, self.optimizer) <= device.mem_bytes

    def fit(self, task, ctx: ClientContext, global_vec: np.ndarray) -> Update:
        import torch

        task.set_vector(global_vec)
        params = task.tensors
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        r = ctx.rng(1)
        for step in range(1, self.local_steps + 1):
            idx = r.choice(ctx.shard, size=min(self.batch, len(ctx.shard)), replace=False)
            pre = task.prefix(idx)  # the frozen layers below the first LoRA layer: no gradient flows there
            y = task.train.labels[np.asarray(idx, dtype=np.int64)]
            for p in params:
                p.grad = None
            loss = torch.nn.functional.cross_entropy(task.model.head(task.features(pre, grad=True)), y)
            loss.backward()
            with torch.no_grad():  # plain SGD / Adam (torch.optim's first use imports dynamo: seconds)
                for p, mi, vi in zip(params, m, v):
                    if self.optimizer == "sgd":
                        p.sub_(self.lr * p.grad)
                        continue
                    mi.mul_(0.9).add_(p.grad, alpha=0.1)
                    vi.mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
                    denom = (vi / (1 - 0.999 ** step)).sqrt_().add_(1e-8)
                    p.addcdiv_(mi, denom, value=-self.lr / (1 - 0.9 ** step))
        for p in params:
            p.grad = None
        delta = task.get_vector() - global_vec
        first = task.first_trained_layer()
        macs = self.local_steps * (task.macs_forward(self.batch, 0) + 2 * task.macs_forward(self.batch, first))
        n4 = 4 * task.n
        return Update(ctx.cid, len(ctx.shard), {"vector": delta}, n4, n4, macs,
                      task.mem_backprop(self.batch, self.optimizer), {"loss": float(loss.detach())})

    def aggregate(self, rnd, global_vec, updates):
        if not updates:
            return global_vec
        return apply_delta(global_vec, weighted_mean([u.vector for u in updates], [u.num_examples for u in updates]),
                           self.server_lr)
