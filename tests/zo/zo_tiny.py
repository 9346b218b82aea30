"""Tiny 2-layer encoder classifier with LoRA on query/value + head, and batches (fast estimator tests)."""

from __future__ import annotations

import torch

from edgelearn.zo import BertConfig, SentenceClassifier, add_lora

TINY = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                  max_position_embeddings=16)


def make_tiny(seed: int = 0, r: int = 2, layers=None, num_labels: int = 3) -> SentenceClassifier:
    torch.manual_seed(seed)
    model = SentenceClassifier(TINY, num_labels)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    add_lora(model, targets=("query", "value"), layers=layers, r=r, alpha=2 * r, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-zero B so that gradients reach A too
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def make_batch(seed: int = 0, B: int = 4, T: int = 10, num_labels: int = 3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY.vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for b in range(B):  # varied lengths: packing and padding are exercised
        mask[b, T - b * 2:] = 0
    ids = ids * mask
    return ids, mask, torch.randint(0, num_labels, (B,), generator=g)
