"""Accuracy against rounds and against simulated device time, one line per variant."""

from __future__ import annotations

from pathlib import Path


def plot_histories(histories: dict[str, list[dict]], path: str, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, hist in histories.items():
        up, pts = 0, []
        for h in hist:
            up += h.get("bytes_up", 0)
            if h.get("accuracy") is not None:
                pts.append((h["round"], h["sim_time_s"], max(up, 1), h["accuracy"]))
        if not pts:
            continue
        r, t, b, a = zip(*pts)
        a1.plot(r, a, marker=".", label=name)
        a2.plot(t, a, marker=".", label=name)
        a3.plot(b, a, marker=".", label=name)
    a3.set(xlabel="bytes uploaded (all clients)", ylabel="test accuracy", title="against upload", xscale="log")
    a1.set(xlabel="round", ylabel="test accuracy", title=title)
    a2.set(xlabel="simulated device time (s)", ylabel="test accuracy", title="against simulated time")
    for a in (a1, a2, a3):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
