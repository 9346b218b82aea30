"""Reports of an Estimate: a text summary with the per-layer table, JSON (DESIGN.md's contract), a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from firmware_sim.estimate import Estimate


def text(e: Estimate, layers: bool = True) -> str:
    lines = [
        f"model {e.model} on {e.target} ({e.stack}, {e.clock_mhz:g} MHz)"
        + ("" if e.calibrated else "  [uncalibrated constants]"),
        f"  latency {e.latency_ms:.3f} ms   energy {e.energy_uj:.1f} uJ   cycles {e.cycles:,.0f}",
        f"  arena {e.arena_bytes:,} B (planned {e.planned_arena_bytes:,} + persistent {e.persistent_arena_bytes:,})"
        f"   flash {e.flash_bytes:,} B",
        f"  {e.placement.verdict()}",
    ]
    if layers:
        total = e.cycles or 1.0
        lines.append(f"  {'#':>3} {'op':18s} {'MACs':>11s} {'bytes':>9s} {'cycles':>11s} {'%':>5s} bound")
        for c in e.layers:
            lines.append(f"  {c.index:>3} {c.op[:18]:18s} {c.macs:>11,} {c.bytes:>9,} {c.cycles:>11,.0f} "
                         f"{100 * c.cycles / total:>5.1f} {c.bound}")
    lines += [f"  note: {n}" for n in e.notes]
    return "\n".join(lines)


def write_json(e: Estimate, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(e.to_json(), indent=2) + "\n")


def plot(e: Estimate, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [c.cycles / (e.clock_mhz * 1e3) for c in e.layers]
    colors = ["tab:blue" if c.bound == "compute" else "tab:orange" for c in e.layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(ms) + 2), 3.8))
    ax.bar(range(len(ms)), ms, color=colors)
    ax.set_xticks(range(len(ms)))
    ax.set_xticklabels([f"{c.index} {c.op.replace('_2D', '').replace('DEPTHWISE_', 'DW_')[:10]}" for c in e.layers],
                       rotation=70, fontsize=7)
    ax.set(ylabel="ms", title=f"{e.model} on {e.target} ({e.stack}): {e.latency_ms:.2f} ms, "
                              f"{e.energy_uj:.0f} uJ  (blue compute-, orange memory-bound)")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
