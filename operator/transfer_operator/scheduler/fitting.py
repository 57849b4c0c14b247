"""Which pools can still take which gang shapes, as capacity is taken during one cycle.

Within a cycle capacity only shrinks (admissions take it; preemption frees it only in a later
cycle), so a pool that cannot fit a gang of w workers x g GPUs never fits it again. Three things
follow, all kept here:

- per GPU-per-worker g, how many workers of g GPUs each pool still fits (`workers_that_fit`);
- per gang shape, how many open pools of each (GPU type, region) still fit it: when none of a
  job's groups has one, the job waits without looking at a single option;
- per (signature, shape), the ranking positions whose pool still fits, best first, from which
  pools that stopped fitting are dropped as they are met.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from transfer_operator.scheduler.capacity import PoolCapacity
from transfer_operator.scheduler.costmap import PoolTable, Ranking

Shape = tuple[int, int]  # (workers, GPUs per worker), GPUs per worker > 0
FIRST_READ = 64  # ranking positions read at first per (signature, shape); each later read doubles them


def _workers_that_fit(
    capacities: Sequence[PoolCapacity], gpus_per_worker: list[int]
) -> dict[int, np.ndarray]:
    """PoolCapacity.workers_that_fit of every pool, for each of these GPUs per worker (all > 0)."""
    width = max((len(c.nodes_with_free) for c in capacities), default=1)
    histogram = np.zeros((len(capacities), width), dtype=np.int64)
    for row, capacity in enumerate(capacities):
        histogram[row, : len(capacity.nodes_with_free)] = capacity.nodes_with_free
    free = np.arange(width)
    return {gpus: histogram @ (free // gpus) for gpus in gpus_per_worker}


class FitTracker:
    def __init__(self, table: PoolTable, capacities: Sequence[PoolCapacity], shapes: Sequence[Shape]):
        self.capacities = capacities
        self.shapes = list(shapes)  # distinct
        self.shape_index = {shape: index for index, shape in enumerate(self.shapes)}
        self.workers_of: dict[int, list[int]] = {}  # GPUs per worker -> workers of the shapes, ascending
        for workers, gpus in self.shapes:
            self.workers_of.setdefault(gpus, []).append(workers)
        fit = _workers_that_fit(capacities, list(self.workers_of))
        self.workers_that_fit = {gpus: column.tolist() for gpus, column in fit.items()}
        self.fit_arrays = fit  # the same, as arrays
        # Open pools per (GPU type, region) group; type and region codes have an extra "any" value.
        types = sorted(set(table.gpu_type.tolist()))
        self.regions = len(table.regions)
        self.any_type = len(types)
        self.type_code = {gpu: code for code, gpu in enumerate(types)}
        type_of = np.array([self.type_code[g] for g in table.gpu_type.tolist()], dtype=np.int64)
        # The four groups a pool counts in: its type or any type, in its region or any region.
        groups = np.stack(
            [
                np.broadcast_to(self.group(t, r), len(type_of))
                for t in (type_of, self.any_type)
                for r in (table.region_code, self.regions)
            ],
            axis=1,
        )
        self.groups_of_row = [
            tuple(g) if is_open else ()
            for g, is_open in zip(groups.tolist(), table.open.tolist(), strict=True)
        ]
        size = (self.any_type + 1) * (self.regions + 1)
        self.alive = [
            np.bincount(groups[(fit[gpus] >= workers) & table.open].ravel(), minlength=size).tolist()
            for workers, gpus in self.shapes
        ]
        self._positions: dict[tuple[int, int], list[int]] = {}  # (signature, shape) -> read so far
        self._unread: dict[tuple[int, int], np.ndarray] = {}  # (signature, shape) -> not read yet

    def group(self, type_code: Any, region_code: Any) -> Any:
        """Index of a (GPU type, region) group; works on codes and on arrays of codes."""
        return type_code * (self.regions + 1) + region_code

    def any_fits(self, shape: int, groups: Sequence[int]) -> bool:
        """Whether some open pool of these groups still fits the shape."""
        alive = self.alive[shape]
        return any(alive[group] for group in groups)

    def taken(self, row: int, levels: list[int], gpus_per_worker: int) -> None:
        """Workers of `gpus_per_worker` GPUs went to nodes of pool `row` that had `levels` free GPUs."""
        for gpus, shape_workers in self.workers_of.items():
            if gpus_per_worker % gpus == 0:  # each worker takes exactly gpus_per_worker / gpus slots
                change = -(gpus_per_worker // gpus) * len(levels)
            else:
                change = 0
                for level in levels:
                    change += (level - gpus_per_worker) // gpus - level // gpus
            if not change:
                continue
            fit = self.workers_that_fit[gpus]
            before = fit[row]
            fit[row] = after = before + change
            self.fit_arrays[gpus][row] = after
            for workers in shape_workers:  # ascending
                if workers > before:
                    break
                if after < workers:
                    alive = self.alive[self.shape_index[workers, gpus]]
                    for group in self.groups_of_row[row]:
                        alive[group] -= 1

    def fitting_positions(self, signature: int, ranking: Ranking, shape: int) -> list[int]:
        """The first ranking positions whose pool fits the shape, best first. Positions whose pool
        has stopped fitting since may still be in it (the walk deletes those it meets); `read_more`
        appends the next ones."""
        key = (signature, shape)
        found = self._positions.get(key)
        if found is None:
            self._unread[key] = np.flatnonzero(self._fits(ranking.pool, shape))
            found = self._positions[key] = []
            self.read_more(signature, ranking, shape, found)
        return found

    def read_more(self, signature: int, ranking: Ranking, shape: int, positions: list[int]) -> bool:
        """Append to `positions` the next chunk of positions whose pool fits the shape (as many as
        it holds, at least FIRST_READ); False when there are none left."""
        unread = self._unread[signature, shape]
        while len(unread):
            chunk, unread = (
                unread[: max(FIRST_READ, len(positions))],
                unread[max(FIRST_READ, len(positions)) :],
            )
            chunk = chunk[self._fits(ranking.pool[chunk], shape)]
            if len(chunk):
                self._unread[signature, shape] = unread
                positions.extend(chunk.tolist())
                return True
        self._unread[signature, shape] = unread
        return False

    def _fits(self, rows: np.ndarray, shape: int) -> np.ndarray:
        workers, gpus = self.shapes[shape]
        return self.fit_arrays[gpus][rows] >= workers
