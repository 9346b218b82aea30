"""Linear planner (tflite-micro's LinearMemoryPlanner): every buffer after the previous one, no reuse.

The arena is the sum of all buffer sizes: the upper bound the greedy planner is compared with.
"""

from __future__ import annotations

from firmware_sim.memory.planner import Buffer, MemoryPlanner


class LinearMemoryPlanner(MemoryPlanner):
    name = "linear"

    def plan(self, buffers: list[Buffer]) -> list[int]:
        offsets, head = [], 0
        for b in buffers:
            offsets.append(head)
            head += b.size
        return offsets
