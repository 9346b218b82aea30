"""Greedy planner, step for step as tflite-micro's GreedyMemoryPlanner (greedy_memory_planner.cc).

1. Order: offline-planned buffers first, in id order; then the online ones, which the C++ code fills in from the
   tail of its array (so in reverse id order), bubble-sorted by size, largest first. The bubble sort only swaps a
   strictly smaller size ahead, so among equal sizes the reverse id order stays: this decides ties and therefore
   byte-exactness.
2. The first buffer goes at offset 0 (or its offline offset).
3. Each next buffer walks the list of already placed buffers in offset order, looking only at those whose
   lifetime overlaps its own; it takes the first gap (between the end of the previous overlapping buffer and the
   start of the next) that is large enough, or else the end of the last overlapping buffer. Offline-planned
   buffers keep their offset.
4. Arena size = max(offset + size) over all buffers.
Sizes arrive already rounded up to the arena alignment (16 bytes) by the caller (`memory.arena`).
"""

from __future__ import annotations

from firmware_sim.memory.planner import ONLINE, Buffer, MemoryPlanner


class GreedyMemoryPlanner(MemoryPlanner):
    name = "greedy"

    def plan(self, buffers: list[Buffer]) -> list[int]:
        n = len(buffers)
        if n == 0:
            return []
        head = [i for i in range(n) if buffers[i].offline_offset != ONLINE]
        online = [i for i in range(n) if buffers[i].offline_offset == ONLINE][::-1]
        # Stable sort, descending size: the same order as the C++ bubble sort (which is stable too).
        online.sort(key=lambda i: -buffers[i].size)
        order = head + online

        offsets = [ONLINE] * n
        placed: list[tuple[int, int]] = []   # (offset, buffer id), kept sorted by offset, ties: insertion order
        for k, bid in enumerate(order):
            b = buffers[bid]
            if k == 0:
                cand = b.offline_offset if b.offline_offset != ONLINE else 0
            elif b.offline_offset != ONLINE:
                cand = b.offline_offset
            else:
                cand = 0
                for off, pid in placed:
                    p = buffers[pid]
                    if p.first > b.last or b.first > p.last:
                        continue              # not alive at the same time
                    if off - cand >= b.size:
                        break                 # the gap before this buffer is large enough
                    cand = max(cand, off + p.size)
            offsets[bid] = cand
            self._insert(placed, cand, bid)
        return offsets

    @staticmethod
    def _insert(placed: list[tuple[int, int]], offset: int, bid: int) -> None:
        # C++: a new entry with an offset smaller than the first entry's becomes the head; otherwise it goes after
        # the last entry whose offset is <= its own.
        if not placed or placed[0][0] > offset:
            placed.insert(0, (offset, bid))
            return
        i = 1
        while i < len(placed) and placed[i][0] <= offset:
            i += 1
        placed.insert(i, (offset, bid))
