"""The rolling pass over the jobs that hold GPUs (handlers/running.py): each job has a fixed place on
a circle, and each cycle takes the arc the time since the last cycle covers, one whole turn per
reconcile interval."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def place_of(key: str) -> float:
    """A job's fixed place on the rolling pass's circle, in [0, 1)."""
    return zlib.crc32(key.encode()) / 2**32


@dataclass(frozen=True)
class Arc:
    """The part of the circle one cycle reconciles: `length` from `start` (1: all of it)."""

    start: float
    length: float

    @property
    def whole(self) -> bool:
        return self.length >= 1.0

    def __contains__(self, key: str) -> bool:
        return self.whole or (place_of(key) - self.start) % 1.0 < self.length


@dataclass
class RollingPass:
    """Where the rolling pass stands: the end of the last cycle's arc, and when that was."""

    position: float = 0.0
    at_s: float | None = None  # None: no cycle yet (the first one takes the whole circle)
    turns: int = 0  # whole turns completed (the orphan sweep runs once per turn)

    def advance(self, now_s: float, interval_s: float) -> Arc:
        """The arc of this cycle: as much of the circle as `now_s` is past the last cycle, one
        turn per `interval_s`."""
        length = 1.0 if self.at_s is None or interval_s <= 0 else max(0.0, now_s - self.at_s) / interval_s
        arc = Arc(self.position, length)
        self.turns += int(self.position + min(length, 1.0) >= 1.0)
        self.position = (self.position + min(length, 1.0)) % 1.0
        self.at_s = now_s
        return arc
