"""Every (job, pool, price class) that passes the static limits, ranked — vectorised with NumPy.

A job's ranking depends only on its signature (GPU type, regions, spot, gang shape, preference):
its hours and its GPU count scale every option alike. So the ranked options are computed once per
signature and shared; each job then only applies its own max price and budget as masks (here one
job at a time; batch.py does the same for all pending jobs of a cycle at once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from transfer_operator.api.enums import Preference, PriceClass, Reason
from transfer_operator.scheduler.pricing import SPOT_RESTART_HOURS, Option, gpu_speed
from transfer_operator.scheduler.types import JobRequest, Placement, PoolState

CLASSES = (PriceClass.ON_DEMAND, PriceClass.SPOT)
RUNNER_UPS = 3  # placements a decision lists besides its own


@dataclass(frozen=True)
class PoolTable:
    """The fleet as columns. Row i is pools[i]."""

    pools: tuple[PoolState, ...]
    gpu_type: np.ndarray
    region: np.ndarray
    open: np.ndarray
    nodes: np.ndarray
    gpus_per_node: np.ndarray
    on_demand_usd: np.ndarray
    spot_usd: np.ndarray  # NaN where the pool sells no spot
    spot_hours_factor: np.ndarray
    speed: np.ndarray
    name: np.ndarray
    region_code: np.ndarray  # int index into `regions`
    regions: dict[str, int]

    @classmethod
    def of(cls, pools: Sequence[PoolState]) -> PoolTable:
        region_index: dict[str, int] = {}
        for pool in pools:
            region_index.setdefault(pool.region, len(region_index))
        return cls(
            pools=tuple(pools),
            gpu_type=np.array([p.gpu_type.upper() for p in pools], dtype=object),
            region=np.array([p.region for p in pools], dtype=object),
            open=np.array([not p.cordoned for p in pools], dtype=bool),
            nodes=np.array([p.nodes for p in pools], dtype=np.int64),
            gpus_per_node=np.array([p.gpus_per_node for p in pools], dtype=np.int64),
            on_demand_usd=np.array([p.on_demand_usd_per_gpu_hour for p in pools], dtype=float),
            spot_usd=np.array(
                [np.nan if p.spot_usd_per_gpu_hour is None else p.spot_usd_per_gpu_hour for p in pools],
                dtype=float,
            ),
            spot_hours_factor=np.array(
                [1.0 + p.spot_interruptions_per_hour * SPOT_RESTART_HOURS for p in pools], dtype=float
            ),
            speed=np.array([gpu_speed(p.gpu_type) for p in pools], dtype=float),
            name=np.array([p.name for p in pools], dtype=object),
            region_code=np.array([region_index[p.region] for p in pools], dtype=np.int64),
            regions=region_index,
        )

    @cached_property
    def facts(self) -> FleetFacts:
        return FleetFacts(self.pools)


class FleetFacts:
    """Pools grouped by (GPU type, region), so that a job's static limits cost no scan of the fleet.
    A GPU type of None stands for "any type"; types are upper case."""

    def __init__(self, pools: Sequence[PoolState]):
        self.pools = pools
        self.offered = sorted({p.gpu_type for p in pools}) or ["none"]
        rows: defaultdict[tuple[str | None, str], list[int]] = defaultdict(list)
        for row, pool in enumerate(pools):
            rows[pool.gpu_type.upper(), pool.region].append(row)
            rows[None, pool.region].append(row)
        self.rows = dict(rows)  # every pool, cordoned too; rows ascending
        self.open_rows = {key: [r for r in found if not pools[r].cordoned] for key, found in rows.items()}
        served: defaultdict[str | None, set[str]] = defaultdict(set)
        for gpu, region in rows:
            served[gpu].add(region)
        self.served = {gpu: sorted(regions) for gpu, regions in served.items()}
        # The first open pool with the most GPUs, per group.
        self.largest_open = {
            key: max(found, key=lambda r: pools[r].capacity_gpus)
            for key, found in self.open_rows.items()
            if found
        }
        self._largest_gang: dict[tuple[str | None, str, int], int] = {}

    def largest_gang(self, gpu: str | None, region: str, gpus_per_worker: int) -> int:
        """Most workers of `gpus_per_worker` GPUs that one empty open pool of the group can take."""
        key = (gpu, region, gpus_per_worker)
        found = self._largest_gang.get(key)
        if found is None:
            found = self._largest_gang[key] = max(
                (
                    self.pools[r].nodes * (self.pools[r].gpus_per_node // gpus_per_worker)
                    for r in self.open_rows.get((gpu, region), ())
                ),
                default=-1,
            )
        return found


@dataclass(frozen=True)
class Ranking:
    """Options of one signature, best first, per unit of job size."""

    pool: np.ndarray  # pool row
    price_class: np.ndarray  # index into CLASSES
    usd: np.ndarray  # $/GPU-hour
    hours_per_hour: np.ndarray  # expected hours per estimated (A100) hour
    cost_per_gpu_hour: np.ndarray  # expected $ per GPU per estimated hour
    region_code: np.ndarray
    nodes: np.ndarray
    gpus_per_node: np.ndarray

    def __len__(self) -> int:
        return len(self.pool)

    @cached_property
    def lists(self) -> RankingLists:
        return RankingLists(
            self.pool.tolist(),
            [CLASSES[c] for c in self.price_class.tolist()],
            self.usd.tolist(),
            self.hours_per_hour.tolist(),
            self.cost_per_gpu_hour.tolist(),
            self.region_code.tolist(),
            self.nodes.tolist(),
            self.gpus_per_node.tolist(),
            bool(
                np.isfinite(self.cost_per_gpu_hour).all()
                and (self.cost_per_gpu_hour >= 0).all()
                and np.isfinite(self.hours_per_hour).all()
                and (self.hours_per_hour >= 0).all()
            ),
        )


@dataclass(frozen=True, slots=True)
class RankingLists:
    """The same columns as Python lists: indexing a list is much cheaper than a NumPy scalar, and
    arithmetic on its floats gives the same doubles as NumPy's."""

    pool: list[int]
    price_class: list[PriceClass]
    usd: list[float]
    hours_per_hour: list[float]
    cost_per_gpu_hour: list[float]
    region_code: list[int]
    nodes: list[int]
    gpus_per_node: list[int]
    non_negative: bool  # every cost and hours finite and >= 0


Signature = tuple[str | None, bool, Preference]  # (GPU type in upper case or None, spot, preference)


def signature_of(job: JobRequest) -> Signature:
    """What the order of a job's options depends on; regions and gang size only filter it."""
    return (None if job.gpu_type is None else job.gpu_type.upper(), job.spot, job.prefer)


def _rank(signature: Signature, table: PoolTable) -> Ranking:
    gpu_type, spot, prefer = signature
    mask = table.open.copy()
    if gpu_type is not None:
        mask &= table.gpu_type == gpu_type
    rows = np.flatnonzero(mask)
    pools, classes, usd, hours = (
        [rows],
        [np.zeros(len(rows), dtype=np.int64)],
        [table.on_demand_usd[rows]],
        [1.0 / table.speed[rows]],
    )
    if spot:
        spot_rows = rows[~np.isnan(table.spot_usd[rows])]
        pools.append(spot_rows)
        classes.append(np.ones(len(spot_rows), dtype=np.int64))
        usd.append(table.spot_usd[spot_rows])
        hours.append(table.spot_hours_factor[spot_rows] / table.speed[spot_rows])
    pool = np.concatenate(pools)
    price_class = np.concatenate(classes)
    usd_all = np.concatenate(usd)
    hours_all = np.concatenate(hours)
    cost = usd_all * hours_all
    if prefer is Preference.FASTEST:
        keys = (cost, hours_all)
    elif prefer is Preference.BALANCED:
        keys = (hours_all, cost * hours_all)
    else:
        keys = (hours_all, cost)
    # Last key sorts first; pool name and class break exact ties deterministically.
    order = np.lexsort((price_class, table.name[pool].astype(str), *keys))
    pool = pool[order]
    return Ranking(
        pool,
        price_class[order],
        usd_all[order],
        hours_all[order],
        cost[order],
        table.region_code[pool],
        table.nodes[pool],
        table.gpus_per_node[pool],
    )


@dataclass
class JobOptions:
    """What one job may buy, best first; `options` materialises Option objects on demand."""

    job: JobRequest
    table: PoolTable
    ranking: Ranking
    keep: np.ndarray  # positions in `ranking` that pass this job's price cap and budget
    static_reason: tuple[Reason, str] | None = None
    _materialised: list[Option] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.keep)

    def score_at(self, position: int) -> float:
        index = self.keep[position]
        gang_hours = self.job.gang_gpus * self.job.estimated_hours
        cost = self.ranking.cost_per_gpu_hour[index] * gang_hours
        hours = self.ranking.hours_per_hour[index] * self.job.estimated_hours
        if self.job.prefer is Preference.FASTEST:
            return float(hours * 1e6 + cost)
        if self.job.prefer is Preference.BALANCED:
            return float(cost * hours)
        return float(cost)

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
            expected_hours=hours,
            expected_cost_usd=usd * job.gang_gpus * hours,
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
            ranking = self._rankings[signature] = _rank(signature, self.table)
        return ranking

    def estimate(self, job: JobRequest) -> JobOptions:
        ranking = self.ranking(signature_of(job))
        keep = np.ones(len(ranking.pool), dtype=bool)
        if job.regions:
            allowed = np.zeros(len(self.table.regions) + 1, dtype=bool)
            allowed[[self.table.regions.get(r, len(self.table.regions)) for r in job.regions]] = True
            allowed[-1] = False
            keep &= allowed[ranking.region_code]
        if job.gpus_per_worker > 0:
            per_node = ranking.gpus_per_node // job.gpus_per_worker
            keep &= ranking.nodes * per_node >= job.workers
        if job.max_usd_per_gpu_hour is not None:
            keep &= ranking.usd <= job.max_usd_per_gpu_hour
        if job.budget_usd is not None:
            gang_hours = job.gang_gpus * job.estimated_hours
            keep &= ranking.cost_per_gpu_hour * gang_hours <= job.budget_usd * (1 + 1e-12)
        return JobOptions(job, self.table, ranking, np.flatnonzero(keep))
