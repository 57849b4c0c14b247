"""One job's options, best first: the per-job view of the cost map (costmap.py).

The cycle reads the batched view (batch.py) for all jobs at once; this view serves what looks at
one job in full: preemption, local search, the exact solver and `transferctl validate`/`explain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from transfer_operator.api.enums import Reason
from transfer_operator.scheduler.costmap import (
    CLASSES,
    JobColumns,
    OptionColumns,
    PoolTable,
    Ranking,
    Signature,
    placement_cost,
    rank,
    score,
    signature_of,
    within_limits,
)
from transfer_operator.scheduler.types import JobRequest, Placement, PoolState


@dataclass(frozen=True, slots=True)
class Option:
    """One way to run a job: a pool, a price class, and its score."""

    pool_index: int
    placement: Placement
    score: float


@dataclass
class JobOptions:
    """What one job may buy, best first; `options` materialises Option objects on demand."""

    job: JobRequest
    table: PoolTable
    ranking: Ranking
    keep: np.ndarray  # positions in `ranking` that pass this job's limits
    static_reason: tuple[Reason, str] | None = None
    _materialised: list[Option] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.keep)

    def score_at(self, position: int) -> float:
        index = self.keep[position]
        job = self.job
        cost = self.ranking.cost_per_gpu_hour[index] * (job.gang_gpus * job.estimated_hours)
        hours = self.ranking.hours_per_hour[index] * job.estimated_hours
        return float(score(cost, hours, job.prefer))

    def option_at(self, position: int) -> Option:
        index = self.keep[position]
        row = int(self.ranking.pool[index])
        pool = self.table.pools[row]
        job = self.job
        usd = float(self.ranking.usd[index])
        hours = float(self.ranking.hours_per_hour[index]) * job.estimated_hours
        placement = Placement(
            pool=pool.name,
            region=pool.region,
            zone=pool.zone,
            gpu_type=pool.gpu_type,
            price_class=CLASSES[int(self.ranking.price_class[index])],
            usd_per_gpu_hour=usd,
            gpus=job.gang_gpus,
            expected_hours=hours + pool.startup_hours,  # a node to buy starts later, at no charge
            expected_cost_usd=placement_cost(usd, job.gang_gpus, hours),
        )
        return Option(row, placement, self.score_at(position))

    @cached_property
    def regret(self) -> float:
        if self.count < 2:
            return float("inf")
        return self.score_at(1) - self.score_at(0)

    @property
    def options(self) -> list[Option]:
        if self._materialised is None:
            self._materialised = [self.option_at(i) for i in range(self.count)]
        return self._materialised


class OptionCache:
    """Rankings per job signature, over one fleet."""

    def __init__(self, pools: Sequence[PoolState]):
        self.table = PoolTable.of(pools)
        self._rankings: dict[Signature, Ranking] = {}

    def ranking(self, signature: Signature) -> Ranking:
        ranking = self._rankings.get(signature)
        if ranking is None:
            ranking = self._rankings[signature] = rank(signature, self.table)
        return ranking

    def estimate(self, job: JobRequest) -> JobOptions:
        ranking = self.ranking(signature_of(job))
        every = np.arange(len(ranking))[None, :]
        keep = within_limits(JobColumns.of([job]), np.zeros(1, dtype=np.int64), OptionColumns.of(ranking), every)[0]
        keep &= self.table.allowed_regions(job.regions)[ranking.region_code]
        return JobOptions(job, self.table, ranking, np.flatnonzero(keep))
