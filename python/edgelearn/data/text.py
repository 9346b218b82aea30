"""Text-classification corpora from CSV/TSV files: any columns, labels mapped to 0..C-1, seeded stratified splits,
tokenisation with a model's own tokenizer."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class TextDataset:
    """Texts and integer labels 0..C-1; `classes[i]` is the original label value of class i."""

    texts: list[str]
    labels: np.ndarray  # int64 [n]
    classes: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index) -> "TextDataset":
        index = np.asarray(index, dtype=np.int64)
        return TextDataset([self.texts[i] for i in index], self.labels[index], self.classes, self.source)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)


def _sort_key(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def load_text_csv(path, label: str, text: str | Sequence[str], delimiter: str | None = None,
                  joiner: str = ". ", classes: Sequence[str] | None = None, limit: int | None = None) -> TextDataset:
    """Read a CSV/TSV corpus with a header row.

    label: label column; text: one text column or several (joined with `joiner`, empty parts skipped);
    delimiter: None = tab for .tsv/.tab files, else comma; classes: label values in class order (default: the
    values found, numbers sorted numerically, e.g. AG News 1..4 -> 0..3). Raises ValueError naming missing columns,
    or the line of a row with a missing/empty label or an unknown class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    cols = [text] if isinstance(text, str) else list(text)
    if not cols:
        raise ValueError("text: need at least one text column")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    texts, raw = [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else
                                csv.QUOTE_MINIMAL)
        header = reader.fieldnames or []
        missing = [c for c in [label, *cols] if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the header has {header}")
        for row in reader:
            line = reader.line_num
            lab = row.get(label)
            if lab is None or lab.strip() == "":
                raise ValueError(f"{path}:{line}: empty or missing value in label column {label!r}")
            parts = [row.get(c) for c in cols]
            if any(p is None for p in parts):
                raise ValueError(f"{path}:{line}: row has fewer fields than the header")
            texts.append(joiner.join(p.strip() for p in parts if p.strip()))
            raw.append(lab.strip())
            if limit is not None and len(texts) >= limit:
                break
    if not texts:
        raise ValueError(f"{path}: no data rows")
    found = sorted(set(raw), key=_sort_key)
    classes = list(classes) if classes is not None else found
    index = {c: i for i, c in enumerate(classes)}
    unknown = [v for v in found if v not in index]
    if unknown:
        raise ValueError(f"{path}: label value(s) {unknown[:5]} not in classes {classes}")
    labels = np.array([index[v] for v in raw], dtype=np.int64)
    return TextDataset(texts, labels, [str(c) for c in classes], str(path))


def stratified_split(labels, test_size: float | int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx): each class split in the same proportion, shuffled by `seed`.

    test_size: a fraction in (0, 1) or a number of examples.
    """
    labels = np.asarray(labels)
    n = len(labels)
    frac = test_size / n if isinstance(test_size, (int, np.integer)) else float(test_size)
    if not 0 < frac < 1:
        raise ValueError(f"test_size: must be a fraction in (0, 1) or a count in [1, {n - 1}], got {test_size}")
    rng = np.random.Generator(np.random.Philox(seed))
    train, test = [], []
    classes = np.unique(labels)
    want = int(round(frac * n))
    # largest-remainder allocation of the test examples over classes
    sizes = np.array([(labels == c).sum() for c in classes])
    exact = sizes * frac
    alloc = np.floor(exact).astype(int)
    rest = want - alloc.sum()
    alloc[np.argsort(-(exact - alloc), kind="stable")[:rest]] += 1
    for c, k in zip(classes, alloc):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:k])
        train.append(idx[k:])
    train, test = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train), rng.permutation(test)


@dataclass
class Encoded:
    """Token ids and attention masks [n, max_len] (int64), labels [n]."""

    input_ids: "object"
    attention_mask: "object"
    labels: "object"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index):
        return self.input_ids[index], self.attention_mask[index], self.labels[index]


def tokenize(ds: TextDataset, tokenizer, max_len: int = 64) -> Encoded:
    """Tokenise with the model's tokenizer (truncate and pad to max_len) into torch int64 tensors."""
    import torch

    enc = tokenizer(ds.texts, truncation=True, max_length=max_len, padding="max_length", return_tensors="pt")
    return Encoded(enc["input_ids"].long(), enc["attention_mask"].long(), torch.as_tensor(ds.labels),
                   {"max_len": max_len, "source": ds.source})


def ag_news(limit: int | None = None) -> TextDataset:
    """AG News test split from the shared folder (label 1..4 -> 0..3; title + description)."""
    from ..shared import require_shared

    return load_text_csv(require_shared("data", "ag_news", "ag_news_test.csv"), "label", ["title", "description"],
                         limit=limit)
