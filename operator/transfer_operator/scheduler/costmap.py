"""The cost map: what a job would cost on each pool, and every static limit, as columns.

One module owns the cost model and the limits no amount of waiting changes; the batched
estimate, the per-job view, preemption, the wait explanations, `transferctl validate` and the
exact solver all read them from here (SkyPilot's task -> resources -> cost map, in NumPy).

Assumptions, stated once:
- `estimatedHours` of a job are hours on an A100-class GPU; other GPU types scale by their
  relative throughput in `GPU_SPEED` (a rough public-benchmark ratio for transformer fine-tuning).
  Hours do not depend on the gang size: the job states its own run time.
- A spot interruption costs `SPOT_RESTART_HOURS` of rework (reschedule, restore, lost steps since
  the last checkpoint), so spot's expected hours are `hours * (1 + rate * SPOT_RESTART_HOURS)`.
- Expected cost = $/GPU-hour of the price class x gang GPUs x expected hours. A job of zero GPUs
  costs nothing and holds no GPU capacity.

Static limits (a job's option survives all of them or it is not an option): GPU type, allowed
regions, cordon, the gang against the *empty* pool, the price cap and the budget left.

Everything below works on NumPy arrays (and on plain numbers where a caller has one value).
A job's options, ranked, depend only on its signature (GPU type, spot, preference): hours and
gang size scale every option alike, so the ranking is computed once per signature and each job
applies its own limits to it as masks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import Any

import numpy as np

from transfer_operator.api.enums import Preference, PriceClass
from transfer_operator.scheduler.types import JobRequest, PoolState

GPU_SPEED: dict[str, float] = {
    "H200": 3.2,
    "H100": 2.6,
    "A100": 1.0,
    "L40S": 0.9,
    "A10G": 0.45,
    "L4": 0.4,
    "V100": 0.55,
    "T4": 0.2,
}
DEFAULT_GPU_SPEED = 1.0
SPOT_RESTART_HOURS = 0.25
BUDGET_SLACK = 1e-12  # relative: a budget equal to the cost, up to rounding, is enough
CLASSES = (PriceClass.ON_DEMAND, PriceClass.SPOT)
PREFERENCES = (Preference.CHEAPEST, Preference.FASTEST, Preference.BALANCED)
NO_LIMIT = np.inf


def gpu_speed(gpu_type: str) -> float:
    return GPU_SPEED.get(gpu_type.upper(), DEFAULT_GPU_SPEED)


def spot_hours_factor(interruptions_per_hour: float) -> float:
    """Expected hours on spot per hour of work: each interruption costs SPOT_RESTART_HOURS of rework."""
    return 1.0 + interruptions_per_hour * SPOT_RESTART_HOURS


def expected_hours(estimated_hours: float, gpu_type: str, spot: bool, interruptions_per_hour: float) -> float:
    """Expected run hours of a job on one pool and price class (a ranking's `hours_per_hour` x
    the job's estimated hours, for one option)."""
    factor = spot_hours_factor(interruptions_per_hour) if spot else 1.0
    return estimated_hours * factor / gpu_speed(gpu_type)


# --- the cost model ---------------------------------------------------------------------------


def score(cost: Any, hours: Any, prefer: Preference) -> Any:
    """The one score (lower is better) of expected dollars and expected hours, for one
    preference: `cheapest` is dollars, `fastest` hours (dollars break ties), `balanced` their
    product, so halving either counts the same. Works on numbers and on arrays alike."""
    if prefer is Preference.FASTEST:
        return hours * 1e6 + cost
    if prefer is Preference.BALANCED:
        return cost * hours
    return cost


def scores(cost: np.ndarray, hours: np.ndarray, prefer: np.ndarray) -> np.ndarray:
    """`score` element-wise, with a preference (index into PREFERENCES) per element."""
    out = np.empty(np.broadcast(cost, hours, prefer).shape)
    cost, hours, prefer = np.broadcast_arrays(cost, hours, prefer)
    for code, preference in enumerate(PREFERENCES):
        mask = prefer == code
        if mask.any():
            out[mask] = score(cost[mask], hours[mask], preference)
    return out


def score_falls_with_rank(prefer: Preference) -> bool:
    """Whether, along a ranking, the score never falls (options are ranked by it): `cheapest`
    by cost; `fastest` by hours first. `balanced` ranks by hours, then cost x hours, so not."""
    return prefer is not Preference.BALANCED


def placement_cost(usd_per_gpu_hour: float, gpus: int, hours: float) -> float:
    """Expected dollars of a placement, as its `expected_cost_usd` states them."""
    return usd_per_gpu_hour * gpus * hours


# --- the static limits ------------------------------------------------------------------------


def workers_on_empty(nodes: Any, gpus_per_node: Any, gpus_per_worker: Any) -> Any:
    """Workers of `gpus_per_worker` GPUs an empty pool takes: a worker needs its GPUs on one node."""
    return nodes * (gpus_per_node // np.maximum(gpus_per_worker, 1))


def gang_fits_empty(workers: Any, gpus_per_worker: Any, nodes: Any, gpus_per_node: Any) -> Any:
    """The gang limit: every worker on some node of the empty pool; a zero-GPU gang always fits."""
    return (gpus_per_worker == 0) | (workers_on_empty(nodes, gpus_per_node, gpus_per_worker) >= workers)


def within_price_cap(usd: Any, cap: Any) -> Any:
    """`maxPricePerGpuHour` (NO_LIMIT when unset)."""
    return usd <= cap


def budget_limit(budget_usd: float | None) -> float:
    return NO_LIMIT if budget_usd is None else budget_usd * (1 + BUDGET_SLACK)


def within_budget(cost_per_gpu_hour: Any, gang_hours: Any, limit: Any) -> Any:
    """Expected dollars (cost per GPU per estimated hour x GPUs x estimated hours) within the
    budget left (`budget_limit`)."""
    return cost_per_gpu_hour * gang_hours <= limit


def pool_matches(job: JobRequest, pool: PoolState) -> bool:
    """GPU type, regions and cordon of one job on one pool (the table's masks, for one pair)."""
    if job.gpu_type is not None and job.gpu_type.upper() != pool.gpu_type.upper():
        return False
    if job.regions and pool.region not in job.regions:
        return False
    return not pool.cordoned


# --- the pools as columns ---------------------------------------------------------------------


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
                [spot_hours_factor(p.spot_interruptions_per_hour) for p in pools], dtype=float
            ),
            speed=np.array([gpu_speed(p.gpu_type) for p in pools], dtype=float),
            name=np.array([p.name for p in pools], dtype=object),
            region_code=np.array([region_index[p.region] for p in pools], dtype=np.int64),
            regions=region_index,
        )

    def allowed_regions(self, regions: frozenset[str]) -> np.ndarray:
        """Per region code (plus a last "unknown" entry, never allowed): whether a job of these
        regions may run there; every region when the set is empty."""
        allowed = np.zeros(len(self.regions) + 1, dtype=bool)
        if not regions:
            allowed[:-1] = True
        else:
            allowed[[self.regions[r] for r in regions if r in self.regions]] = True
        return allowed

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
                    int(workers_on_empty(self.pools[r].nodes, self.pools[r].gpus_per_node, gpus_per_worker))
                    for r in self.open_rows.get((gpu, region), ())
                ),
                default=-1,
            )
        return found


# --- options of one signature, ranked ---------------------------------------------------------

Signature = tuple[str | None, bool, Preference]  # (GPU type in upper case or None, spot, preference)


def signature_of(job: JobRequest) -> Signature:
    """What the order of a job's options depends on; regions and gang size only filter it."""
    return (None if job.gpu_type is None else job.gpu_type.upper(), job.spot, job.prefer)


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


def rank(signature: Signature, table: PoolTable) -> Ranking:
    """Every (open pool of the GPU type, price class the job may buy) by score, best first; pool
    name and class break exact ties deterministically."""
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
        keys = (hours_all, score(cost, hours_all, prefer))
    else:
        keys = (hours_all, cost)
    order = np.lexsort((price_class, table.name[pool].astype(str), *keys))  # last key sorts first
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


# --- the jobs as columns ----------------------------------------------------------------------


@dataclass(frozen=True)
class JobColumns:
    """Jobs as columns (row i is jobs[i]): what the limits and the score read of each."""

    jobs: Sequence[JobRequest]
    signatures: list[Signature]
    signature: np.ndarray  # index into `signatures`
    region_sets: list[frozenset[str]]
    region_set: np.ndarray  # index into `region_sets`; the empty set is "any region"
    workers: np.ndarray
    gpus_per_worker: np.ndarray
    has_cap: np.ndarray
    cap: np.ndarray  # NO_LIMIT where unset
    has_budget: np.ndarray
    budget_limit: np.ndarray  # `budget_limit` of each, NO_LIMIT where unset
    gang_hours: np.ndarray  # gang GPUs x estimated hours
    estimated_hours: np.ndarray
    prefer: np.ndarray  # index into PREFERENCES
    priority: np.ndarray
    created_at: np.ndarray

    @classmethod
    def of(cls, jobs: Sequence[JobRequest]) -> JobColumns:
        count = len(jobs)

        def column(field: str) -> list[Any]:
            return list(map(attrgetter(field), jobs))

        # Signatures: first per distinct (GPU type, spot, preference) as given, then upper-cased.
        given: dict[tuple[str | None, bool, Preference], int] = {}
        given_index = [
            given.setdefault(key, len(given)) for key in map(attrgetter("gpu_type", "spot", "prefer"), jobs)
        ]
        signature_index: dict[Signature, int] = {}
        signature_of_given = [
            signature_index.setdefault((None if g is None else g.upper(), s, p), len(signature_index))
            for g, s, p in given
        ]
        prefer_index = {p: i for i, p in enumerate(PREFERENCES)}
        region_index: dict[frozenset[str], int] = {frozenset(): 0}
        region_set = [region_index.setdefault(r, len(region_index)) for r in map(attrgetter("regions"), jobs)]
        cap = np.array(column("max_usd_per_gpu_hour"), dtype=float)  # None -> NaN
        budget = np.array(column("budget_usd"), dtype=float)
        has_cap, has_budget = ~np.isnan(cap), ~np.isnan(budget)
        workers = np.fromiter(map(attrgetter("workers"), jobs), dtype=np.int64, count=count)
        gpus_per_worker = np.fromiter(map(attrgetter("gpus_per_worker"), jobs), dtype=np.int64, count=count)
        estimated_hours = np.fromiter(map(attrgetter("estimated_hours"), jobs), dtype=float, count=count)
        given_array = np.array(given_index, dtype=np.int64)
        return cls(
            jobs=jobs,
            signatures=list(signature_index),
            signature=np.array(signature_of_given, dtype=np.int64)[given_array],
            region_sets=list(region_index),
            region_set=np.array(region_set, dtype=np.int64),
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            has_cap=has_cap,
            cap=np.where(has_cap, cap, NO_LIMIT),
            has_budget=has_budget,
            budget_limit=np.where(has_budget, budget * (1 + BUDGET_SLACK), NO_LIMIT),
            gang_hours=(workers * gpus_per_worker).astype(float) * estimated_hours,
            estimated_hours=estimated_hours,
            prefer=np.array([prefer_index[p] for _, _, p in given], dtype=np.int64)[given_array],
            priority=np.fromiter(map(attrgetter("priority"), jobs), dtype=np.int64, count=count),
            created_at=np.fromiter(map(attrgetter("created_at_s"), jobs), dtype=float, count=count),
        )


@dataclass(frozen=True)
class OptionColumns:
    """Options as columns (several rankings concatenated, or one): what the limits read of each."""

    usd: np.ndarray
    cost_per_gpu_hour: np.ndarray
    hours_per_hour: np.ndarray
    nodes: np.ndarray
    gpus_per_node: np.ndarray

    @classmethod
    def of(cls, ranking: Ranking) -> OptionColumns:
        return cls(ranking.usd, ranking.cost_per_gpu_hour, ranking.hours_per_hour, ranking.nodes, ranking.gpus_per_node)


def within_limits(
    jobs: JobColumns,
    rows: np.ndarray,
    options: OptionColumns,
    option: np.ndarray,
    gang_table: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Gang size, price cap and budget of jobs rows[k] against options option[k, :] (regions and
    GPU type are the rankings' and streams' business). `gang_table` (size of each job, and
    `workers_on_empty` per size and option) replaces the gang arithmetic by a lookup."""
    workers = jobs.workers[rows][:, None]
    if gang_table is not None:
        size_of, largest = gang_table
        ok = largest[size_of[rows][:, None], option] >= workers
    else:
        ok = gang_fits_empty(
            workers, jobs.gpus_per_worker[rows][:, None], options.nodes[option], options.gpus_per_node[option]
        )
    capped = np.flatnonzero(jobs.has_cap[rows])
    if len(capped):
        ok[capped] &= within_price_cap(options.usd[option[capped]], jobs.cap[rows[capped]][:, None])
    budgeted = np.flatnonzero(jobs.has_budget[rows])
    if len(budgeted):
        ok[budgeted] &= within_budget(
            options.cost_per_gpu_hour[option[budgeted]],
            jobs.gang_hours[rows[budgeted]][:, None],
            jobs.budget_limit[rows[budgeted]][:, None],
        )
    return ok


def gang_table(gpus_per_worker: np.ndarray, options: OptionColumns) -> tuple[np.ndarray, np.ndarray]:
    """Per job its size index, and per distinct GPUs per worker the workers each option's empty
    pool takes (`within_limits`' lookup); zero GPUs per worker take any number."""
    sizes, size_of = np.unique(gpus_per_worker, return_inverse=True)
    largest = [
        np.full(len(options.nodes), np.iinfo(np.int64).max, dtype=np.int64)
        if g == 0
        else workers_on_empty(options.nodes, options.gpus_per_node, int(g))
        for g in sizes.tolist()
    ]
    return size_of, np.stack(largest) if largest else np.zeros((0, len(options.nodes)), dtype=np.int64)


def option_scores(jobs: JobColumns, rows: np.ndarray, options: OptionColumns, option: np.ndarray) -> np.ndarray:
    """Scores of jobs rows[k] at options option[k] (element-wise)."""
    cost = options.cost_per_gpu_hour[option] * jobs.gang_hours[rows]
    hours = options.hours_per_hour[option] * jobs.estimated_hours[rows]
    return scores(cost, hours, jobs.prefer[rows])
