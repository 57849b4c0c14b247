"""Growing running elastic gangs into capacity the queue does not want. Pure.

After a cycle's admissions, a running job of `min_workers`..`max_workers` that holds fewer than its
most may grow in its own pool (the objective's second rule: the most GPUs placed), on ready nodes
only (a node to buy would make the restarted gang wait for it). The operator performs a growth as a
restart of the gang at the new size from its latest checkpoint, so it pays a restart:

- the queue comes first: no job grows on a pool that a job of its priority or higher, left waiting
  for capacity this cycle, could run on (its GPU type and regions allow the pool);
- a growth is worth its restart only when it adds at least a quarter of the gang (`MIN_GAIN`), or
  takes the gang to its most;
- the budget left bounds the new size as it bounds an admission (elastic.affordable_workers).

Jobs are considered by priority (highest first), then the oldest admission, then key; each growth
takes its capacity before the next job looks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from transfer_operator.scheduler.capacity import build_capacity
from transfer_operator.scheduler.elastic import affordable_workers
from transfer_operator.scheduler.types import ClusterSnapshot, JobRequest, PoolState

MIN_GAIN = 0.25  # a growth restarts the gang: below a quarter more workers it is not worth it


@dataclass(frozen=True, slots=True)
class Running:
    """A running elastic gang, as the growth step sees it."""

    key: str
    pool: str
    workers: int  # held now
    max_workers: int
    gpus_per_worker: int
    usd_per_gpu_hour: float  # of its placement
    priority: int = 0
    admitted_at_s: float = 0.0
    budget_usd: float | None = None  # what is left of it
    hours: float = 1.0  # expected run hours at its placement (the budget's horizon)


@dataclass(frozen=True, slots=True)
class Growth:
    key: str
    pool: str
    workers_from: int
    workers_to: int
    gpus_per_worker: int

    @property
    def gpus(self) -> int:
        return self.workers_to * self.gpus_per_worker


def grow(snapshot: ClusterSnapshot, running: Sequence[Running], waiting: Iterable[JobRequest]) -> list[Growth]:
    """The growths to perform. `snapshot.allocations` hold every job's GPUs, this cycle's
    admissions and the running jobs' current sizes included; `waiting` are the pending jobs the
    cycle left waiting for capacity (not those no pool can ever take)."""
    candidates = [r for r in running if r.workers < r.max_workers and r.gpus_per_worker > 0]
    if not candidates:
        return []
    pools = {pool.name: pool for pool in snapshot.pools if pool.parent is None}
    wanted = _wanted_priority(pools.values(), waiting)
    capacity = build_capacity(snapshot.pools, snapshot.allocations, snapshot.policy)
    growths = []
    for job in sorted(candidates, key=lambda r: (-r.priority, r.admitted_at_s, r.key)):
        free = capacity.get(job.pool)
        if free is None or job.pool not in pools or wanted.get(job.pool, -math.inf) >= job.priority:
            continue
        most = min(
            job.max_workers,
            job.workers + free.workers_that_fit(job.gpus_per_worker),
            affordable_workers(job.budget_usd, job.usd_per_gpu_hour, job.hours, job.gpus_per_worker),
        )
        extra = most - job.workers
        if extra <= 0 or (most < job.max_workers and extra < math.ceil(job.workers * MIN_GAIN)):
            continue
        free.take(extra, job.gpus_per_worker, snapshot.policy)
        growths.append(Growth(job.key, job.pool, job.workers, most, job.gpus_per_worker))
    return growths


def _wanted_priority(pools: Iterable[PoolState], waiting: Iterable[JobRequest]) -> dict[str, int]:
    """Per pool, the highest priority of a waiting job that could run there (its GPU type and
    regions allow it; an empty region set allows any). Grouped by (type, regions): few groups."""
    top: dict[tuple[str | None, frozenset[str]], int] = {}
    for job in waiting:
        if job.gang_gpus <= 0:
            continue
        group = (None if job.gpu_type is None else job.gpu_type.upper(), job.regions)
        top[group] = max(top.get(group, job.priority), job.priority)
    wanted: dict[str, int] = {}
    for pool in pools:
        for (gpu_type, regions), priority in top.items():
            if (gpu_type is None or gpu_type == pool.gpu_type.upper()) and (not regions or pool.region in regions):
                wanted[pool.name] = max(wanted.get(pool.name, priority), priority)
    return wanted
