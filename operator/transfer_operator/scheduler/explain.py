"""Why a job waits, in words a user can act on: the static misfits (no pool of the fleet can ever
take the job), and step 5 of a cycle, every job's decision with its reason and message."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np

from transfer_operator.api.enums import Reason
from transfer_operator.scheduler.capacity import build_capacity
from transfer_operator.scheduler.costmap import (
    CLASSES,
    FleetFacts,
    PoolTable,
    Ranking,
    gang_fits_empty,
    placement_cost,
    within_price_cap,
)
from transfer_operator.scheduler.options import OptionCache
from transfer_operator.scheduler.types import (
    Action,
    Allocation,
    ClusterSnapshot,
    Decision,
    Fit,
    JobRequest,
    Placement,
    new_decision,
)
from transfer_operator.scheduler.waiting import free_after, most_free

if TYPE_CHECKING:
    from transfer_operator.scheduler.admit import Walk


def _where(job: JobRequest) -> str:
    gpu = job.gpu_type or "GPU"
    regions = f" in {', '.join(sorted(job.regions))}" if job.regions else ""
    return f"{gpu}{regions}"


def explain_static_misfit(job: JobRequest, table: PoolTable, ranking: Ranking) -> tuple[Reason, str]:
    """Walk the static limits in the order a user would fix them; the first one that empties
    the candidate list is the reason. Reasons here need a spec change (or a new pool)."""
    return _limit_misfit(job, table.facts) or _price_misfit(job, table, ranking)


def _limit_misfit(job: JobRequest, facts: FleetFacts) -> tuple[Reason, str] | None:
    """The reason when GPU type, regions, cordons or the gang size leave no pool; None if some pool
    passes them all (then the price cap or the budget is the reason)."""
    gpu = None if job.gpu_type is None else job.gpu_type.upper()
    served = facts.served.get(gpu)
    if not served:
        return (
            Reason.INVALID_SPEC,
            f"no GPUPool offers GPU type {job.gpu_type}; set resources.gpuType to one of: {', '.join(facts.offered)}",
        )
    regions = [r for r in served if r in job.regions] if job.regions else served
    if not regions:
        return (
            Reason.INVALID_SPEC,
            f"no {job.gpu_type or 'GPU'} pool in placement.regions [{', '.join(sorted(job.regions))}]; "
            f"{job.gpu_type or 'GPUs'} are served in: {', '.join(served)}",
        )
    if not any(facts.open_rows[gpu, region] for region in regions):
        names = sorted(facts.pools[row].name for region in regions for row in facts.rows[gpu, region])
        return Reason.NO_FITTING_POOL, f"every {_where(job)} pool is cordoned: {', '.join(names)}"
    if job.gpus_per_worker == 0 or any(
        facts.largest_gang(gpu, region, job.gpus_per_worker) >= job.workers for region in regions
    ):
        return None
    rows = sorted(
        facts.largest_open[gpu, region] for region in regions if (gpu, region) in facts.largest_open
    )
    largest = max((facts.pools[row] for row in rows), key=lambda p: p.capacity_gpus)
    return (
        Reason.INVALID_SPEC,
        f"gang of {job.gang_gpus} GPUs ({job.workers} workers x {job.gpus_per_worker}) fits no "
        f"{_where(job)} pool even when empty (largest: {largest.name} with {largest.nodes} nodes x "
        f"{largest.gpus_per_node} GPUs); lower resources.workers or resources.gpusPerWorker",
    )


def _price_misfit(job: JobRequest, table: PoolTable, ranking: Ranking) -> tuple[Reason, str]:
    """What is left is a price: options that pass every limit but the job's price cap and budget."""
    pools = table.pools
    fitting = gang_fits_empty(job.workers, job.gpus_per_worker, ranking.nodes, ranking.gpus_per_node)
    fitting &= table.allowed_regions(job.regions)[ranking.region_code]
    positions = np.flatnonzero(fitting)
    usd = ranking.usd[positions]
    if job.max_usd_per_gpu_hour is not None:
        cheapest = positions[int(np.argmin(usd))]
        affordable = positions[within_price_cap(usd, job.max_usd_per_gpu_hour)]
        if len(affordable) == 0:
            spot_hint = "" if job.spot else " or allow placement.spot"
            return (
                Reason.INVALID_SPEC,
                f"placement.maxPricePerGpuHour ${job.max_usd_per_gpu_hour:.2f} is below every fitting "
                f"{_where(job)} pool (cheapest: {pools[ranking.pool[cheapest]].name} at "
                f"${ranking.usd[cheapest]:.2f} {CLASSES[ranking.price_class[cheapest]].value}); raise it{spot_hint}",
            )
        positions = affordable
    assert job.budget_usd is not None, "only the budget is left to exclude every option"
    best = positions[int(np.argmin(ranking.cost_per_gpu_hour[positions]))]
    hours = float(ranking.hours_per_hour[best]) * job.estimated_hours
    cost = placement_cost(float(ranking.usd[best]), job.gang_gpus, hours)
    return (
        Reason.BUDGET_TOO_LOW,
        f"budget ${job.budget_usd:.2f} < ${cost:.2f}, the estimated cost on the cheapest fitting pool "
        f"{pools[ranking.pool[best]].name} ({hours:.2f} h x {job.gang_gpus} GPUs at "
        f"${ranking.usd[best]:.2f}/GPU-h {CLASSES[ranking.price_class[best]].value}); raise budget.maxDollars "
        f"or lower resources.estimatedHours",
    )


# --- step 5 of a cycle: every job's decision, with a reason and a message ---------------------


@dataclass
class Outcome:
    """What steps 3-4 settled: the admitted jobs (in the walk's order) and where each goes, the
    jobs that fit no pool (in the walk's order), the jobs no pool can ever take, and the other
    decisions."""

    admitted: list[int]
    placement: Callable[[int], Placement]  # of an admitted job
    waiting: list[int]
    admissions: list[tuple[int, int]]  # (pool row, GPUs) of the admitted jobs
    static: list[int]
    decided: dict[int, Decision]


ADMITTED, WAITING, STATIC, DECIDED = range(4)


class Decisions(Sequence[Decision]):
    """Every job's decision, in the order the jobs were considered, kept as columns: a Decision
    (with its message) is built when it is first read, so a caller that reads only some of them
    (the admissions, the waits whose reason changed) pays for those only."""

    def __init__(self, walk: Walk, outcome: Outcome):
        self._walk = walk
        self._outcome = outcome
        self._order = walk.order
        count = len(walk.jobs)
        self._kind = np.full(count, DECIDED, dtype=np.int8)
        self._slot = np.zeros(count, dtype=np.int64)
        admitted = np.array(outcome.admitted, dtype=np.int64)
        self._kind[admitted] = ADMITTED
        self._kind[np.array(outcome.static, dtype=np.int64)] = STATIC
        self._waits = _WaitColumns.of(walk, outcome)
        self._kind[self._waits.index] = WAITING
        self._slot[self._waits.index] = np.arange(len(self._waits.index))
        self._built: dict[int, Decision] = {}

    @classmethod
    def none(cls) -> Decisions:
        """No job pending."""
        empty = cls.__new__(cls)
        empty._order = []
        empty._kind = np.zeros(0, dtype=np.int8)
        return empty

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, position: int) -> Decision: ...

    @overload
    def __getitem__(self, position: slice) -> list[Decision]: ...

    def __getitem__(self, position: int | slice) -> Decision | list[Decision]:
        if isinstance(position, slice):
            return [self._decision(index) for index in self._order[position]]
        return self._decision(self._order[position])

    def __iter__(self) -> Iterator[Decision]:
        return map(self._decision, self._order)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def actions(self) -> np.ndarray:
        """Per decision (in order), 0 admit, 1 wait for capacity, 2 never fits, 3 other: without
        building a Decision."""
        return self._kind[np.array(self._order, dtype=np.int64)]

    def _decision(self, index: int) -> Decision:
        found = self._built.get(index)
        if found is None:
            found = self._built[index] = self._build(index)
        return found

    def _build(self, index: int) -> Decision:
        kind = self._kind[index]
        walk = self._walk
        if kind == ADMITTED:
            placement = self._outcome.placement(index)
            return new_decision(
                walk.jobs[index].key,
                Action.ADMIT,
                Fit.FITS,
                Reason.ADMITTED,
                f"admitted to {placement.pool} ({placement.region}, {placement.price_class.value}, "
                f"${placement.usd_per_gpu_hour * placement.gpus:.2f}/h, est. ${placement.expected_cost_usd:.2f})",
                placement,
            )
        if kind == WAITING:
            return self._waits.decision(walk, int(self._slot[index]))
        if kind == STATIC:
            return walk.static_misfit(index)
        return self._outcome.decided[index]


@dataclass(frozen=True)
class _WaitColumns:
    """The jobs that fit no pool: the pool with the most free GPUs among their options once the
    cycle's admissions are placed, and where they would run once capacity frees up (their best
    option)."""

    index: np.ndarray
    most_free_row: np.ndarray
    most_free_gpus: np.ndarray
    best_row: np.ndarray
    best_free_gpus: np.ndarray
    best_usd: np.ndarray

    @classmethod
    def of(cls, walk: Walk, outcome: Outcome) -> _WaitColumns:
        indices = np.array(outcome.waiting, dtype=np.int64)
        if not len(indices):
            empty = np.zeros(0, dtype=np.int64)
            return cls(indices, empty, empty, empty, empty, np.zeros(0))
        free = free_after(walk.initial_free, outcome.admissions)
        rows = most_free(walk.estimates, indices, free)
        streams = walk.estimates.streams
        signature = walk.estimates.columns.signature[indices]
        best_option = streams.offset[signature] + walk.estimates.best[indices]
        best = streams.pool[best_option]
        return cls(indices, rows, free[rows], best, free[best], streams.usd[best_option])

    def decision(self, walk: Walk, slot: int) -> Decision:
        job = walk.jobs[int(self.index[slot])]
        gpus = job.workers * job.gpus_per_worker
        regions = ", ".join(sorted(job.regions)) or "any region"
        short = gpus - int(self.best_free_gpus[slot])
        once = (
            f"once {short} GPUs free up there"
            if short > 0
            else f"once {job.workers} worker(s) x {job.gpus_per_worker} GPUs fit on its nodes"
        )
        message = (
            f"no pool in {regions} has {job.workers} worker(s) x {job.gpus_per_worker} free "
            f"{job.gpu_type or 'GPU'} ({gpus} GPUs); most free: {int(self.most_free_gpus[slot])} on "
            f"{walk.names[int(self.most_free_row[slot])]}; would run on {walk.names[int(self.best_row[slot])]} "
            f"(${float(self.best_usd[slot]) * gpus:.2f}/h) {once}"
        )
        return new_decision(job.key, Action.WAIT, Fit.NO_FIT, Reason.NO_FITTING_POOL, message, None)


# --- one job in full, for `transferctl explain` -----------------------------------------------


@dataclass(frozen=True)
class OptionView:
    """One of a job's options, as a user asks about it: where, at what price, and how far it is
    from fitting now."""

    placement: Placement
    score: float
    free_gpus: int
    short_gpus: int  # GPUs that must free up there before the gang fits; 0 when it fits now
    fits_now: bool


def options_of(
    snapshot: ClusterSnapshot, job: JobRequest, held: Sequence[Allocation] = (), limit: int = 5
) -> tuple[tuple[Reason, str] | None, list[OptionView]]:
    """The job's static reason (None when some pool could take it), and its best `limit` options
    against the capacity the snapshot's allocations and `held` (say, a plan's admissions) leave."""
    cache = OptionCache(snapshot.pools)
    entry = cache.estimate(job)
    if entry.count == 0:
        return explain_static_misfit(job, cache.table, entry.ranking), []
    capacity = build_capacity(snapshot.pools, [*snapshot.allocations, *held], snapshot.policy)
    views = []
    for position in range(min(limit, entry.count)):
        option = entry.option_at(position)
        pool = capacity[option.placement.pool]
        fits = pool.fits(job.workers, job.gpus_per_worker)
        short = 0 if fits else max(0, job.gang_gpus - pool.free_gpus)
        views.append(OptionView(option.placement, option.score, pool.free_gpus, short, fits))
    return None, views
