"""Helpers of tests/fl: a synthetic keyword corpus (CSV) and tiny configs that run in seconds."""

from __future__ import annotations

import csv

import numpy as np

WORDS = [["alpha", "apple", "amber", "arrow"], ["bravo", "banana", "blue", "bridge"],
         ["charlie", "cherry", "cyan", "castle"]]
FILLER = ["the", "a", "of", "news", "today", "report", "said", "new", "on", "in", "for", "and"]


def make_csv(path, n: int = 600, seed: int = 0) -> str:
    """n rows, label 1..3; each text has 2 class keywords among 6 filler words."""
    r = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "title", "body"])
        for _ in range(n):
            c = int(r.integers(3))
            words = list(r.choice(FILLER, 6)) + list(r.choice(WORDS[c], 2))
            r.shuffle(words)
            w.writerow([c + 1, " ".join(words[:3]), " ".join(words[3:])])
    return str(path)


def tiny_toml(csv_path, strategy: str = "name = \"fwdllm\"\nlr = 0.5\nK = 8\nbatch = 16", rounds: int = 6,
              extra: str = "", clients: int = 20, per_round: int = 5) -> str:
    return f"""
[run]
seed = 3
rounds = {rounds}
clients_per_round = {per_round}
eval_every = 2

[data]
path = "{csv_path}"
label = "label"
text = ["title", "body"]
test_size = 150
max_len = 16

[partition]
kind = "dirichlet"
alpha = 1.0
num_clients = {clients}

[model]
kind = "tiny"
lora_layers = [1]
r = 2

[strategy]
{strategy}
{extra}
"""


def tiny_config(corpus, directory, strategy: str, rounds: int):
    """A tiny config written to directory/tiny.toml and loaded, and its task: (Config, TextTask)."""
    from edgelearn.fl.config import build_task, load_config

    p = directory / "tiny.toml"
    p.write_text(tiny_toml(corpus, strategy, rounds=rounds))
    cfg = load_config(p)
    return cfg, build_task(cfg.variants[0].cfg, cfg.path.parent)
