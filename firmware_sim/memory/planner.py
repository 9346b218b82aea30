"""The memory-planner interface, as tflite-micro's `micro_memory_planner.h`.

A planner receives buffers, each with a size in bytes and a lifetime [first_time_used, last_time_used] in
"allocation scopes" (0 = before the first op; op i runs in scope i + 1), optionally with an offset fixed by an
offline plan. It returns an offset for every buffer such that buffers alive at the same time do not overlap, and
the arena size = max(offset + size). Planners differ in how compact the layout is.
"""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = -1  # tflite-micro's kOnlinePlannedBuffer


@dataclass
class Buffer:
    size: int
    first: int
    last: int
    offline_offset: int = ONLINE
    label: str = ""          # what the buffer holds, e.g. "tensor 22" or "scratch op 3"

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return not (other.first > self.last or self.first > other.last)


class MemoryPlanner:
    name = "base"

    def plan(self, buffers: list[Buffer]) -> list[int]:
        """Offsets, one per buffer in the given order."""
        raise NotImplementedError

    @staticmethod
    def arena_size(buffers: list[Buffer], offsets: list[int]) -> int:
        return max((o + b.size for b, o in zip(buffers, offsets)), default=0)
