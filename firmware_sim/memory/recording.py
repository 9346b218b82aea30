"""What the tflite-micro Python interpreter (`tflite-micro` on PyPI) records about its arena.

Its RecordingMicroAllocator prints the report to stderr (it is not returned), so the interpreter runs in a
child process whose stderr is captured and parsed; a model that crashes the interpreter cannot take the caller
down with it.
"""

from __future__ import annotations

import re
import subprocess
import sys

_CHILD = r"""
import sys
from tflite_micro.python.tflite_micro import runtime
data = sys.stdin.buffer.read()
it = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[1]))
it.print_allocations()
"""

_LINE = re.compile(r"\[RecordingMicroAllocator\] (?:Arena allocation (total|head|tail) (\d+) bytes|"
                   r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+))")


def have_tflite_micro() -> bool:
    try:
        import tflite_micro.python.tflite_micro.runtime  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def parse_report(text: str) -> dict:
    """{'total', 'head', 'tail', 'parts': {name: {'used', 'requested', 'count'}}} from the printed report."""
    out: dict = {"parts": {}}
    for m in _LINE.finditer(text):
        if m.group(1):
            out[m.group(1)] = int(m.group(2))
        else:
            out["parts"][m.group(3)] = {"used": int(m.group(4)), "requested": int(m.group(5)),
                                        "count": int(m.group(6))}
    return out


def record_tflm_arena(model: bytes, arena_size: int = 4 << 20, timeout: float = 60.0) -> dict:
    """Run tflite-micro on `model` (bytes of a .tflite) and return its parsed allocation report."""
    if not have_tflite_micro():
        raise ImportError("recording the arena needs tflite-micro: pip install 'edgelearn[litert]'")
    r = subprocess.run([sys.executable, "-c", _CHILD, str(arena_size)], input=model, capture_output=True,
                       timeout=timeout)
    rep = parse_report(r.stderr.decode("utf-8", "replace") + r.stdout.decode("utf-8", "replace"))
    if r.returncode != 0 or "head" not in rep:
        tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"tflite-micro could not allocate the model (exit {r.returncode}): {' | '.join(tail)}")
    return rep
