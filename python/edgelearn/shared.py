"""Where the shared data, models and calibration live: $EDGELEARN_SHARED, else ../shared beside the repository."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path | None:
    """The shared folder, or None when it cannot be found (callers skip or fail with a clear message)."""
    env = os.environ.get("EDGELEARN_SHARED")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        cand = base / "shared"
        if (cand / "DESIGN.md").is_file():
            return cand
        if (base / "pyproject.toml").is_file() and (base.parent / "shared" / "DESIGN.md").is_file():
            return base.parent / "shared"
    return None


def require_shared(*parts: str) -> Path:
    """Path of a file or folder under the shared folder; FileNotFoundError naming the setting when missing."""
    root = shared_dir()
    if root is None:
        raise FileNotFoundError("shared folder not found: set EDGELEARN_SHARED=/path/to/shared")
    p = root.joinpath(*parts)
    if not p.exists():
        raise FileNotFoundError(f"{p} not found under the shared folder (EDGELEARN_SHARED={root})")
    return p
