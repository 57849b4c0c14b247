"""Why a job waits, in words a user can act on: the static misfits (no pool of the fleet can ever
take the job), and step 5 of a cycle, every job's decision with its reason and message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from transfer_operator.scheduler.waiting import FreeHistory, most_free

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
    """What steps 3-4 settled: the admissions (in the walk's order), the jobs that fit no pool
    with the epoch (admissions made) at which each was looked at, and the other decisions."""

    admitted: list[tuple[int, Placement]]
    waiting: list[tuple[int, int]]
    admissions: list[tuple[int, int]]  # (pool row, GPUs) in order; an epoch counts them
    decided: dict[int, Decision]


def explain(walk: Walk, outcome: Outcome) -> list[Decision]:
    """Every job's decision, in the order the jobs were considered."""
    decided = dict(outcome.decided)
    decided.update(_waits(walk, outcome))
    for index, placement in outcome.admitted:
        decided[index] = new_decision(
            walk.jobs[index].key,
            Action.ADMIT,
            Fit.FITS,
            Reason.ADMITTED,
            f"admitted to {placement.pool} ({placement.region}, {placement.price_class.value}, "
            f"${placement.usd_per_gpu_hour * placement.gpus:.2f}/h, est. ${placement.expected_cost_usd:.2f})",
            placement,
        )
    return [decided[index] for index in walk.order]


def _waits(walk: Walk, outcome: Outcome) -> dict[int, Decision]:
    """Decisions of the jobs that fit no pool: the pool with the most free GPUs among their options
    when they were looked at, and where they would run once capacity frees up (their best option)."""
    if not outcome.waiting:
        return {}
    history = FreeHistory(walk.initial_free, outcome.admissions)
    indices = np.array([i for i, _ in outcome.waiting], dtype=np.int64)
    epochs = np.array([e for _, e in outcome.waiting], dtype=np.int64)
    rows = most_free(walk.estimates, indices, epochs, history)
    free = history.at(epochs, rows)
    best = np.array([walk.rankings[walk.signature[i]].lists.pool[walk.head[i][0]] for i in indices.tolist()])
    best_free = history.at(epochs, best)
    usd = [walk.rankings[walk.signature[i]].lists.usd[walk.head[i][0]] for i in indices.tolist()]
    names, jobs = walk.names, walk.jobs
    regions_text: dict[frozenset[str], str] = {}
    decisions = {}
    for index, most_free_gpus, row, best_row, best_free_gpus, best_usd in zip(
        indices.tolist(), free.tolist(), rows.tolist(), best.tolist(), best_free.tolist(), usd, strict=True
    ):
        job = jobs[index]
        gpus = job.workers * job.gpus_per_worker
        regions = regions_text.get(job.regions)
        if regions is None:
            regions = regions_text[job.regions] = ", ".join(sorted(job.regions)) or "any region"
        short = gpus - best_free_gpus
        once = (
            f"once {short} GPUs free up there"
            if short > 0
            else f"once {job.workers} worker(s) x {job.gpus_per_worker} GPUs fit on its nodes"
        )
        message = (
            f"no pool in {regions} has {job.workers} worker(s) x {job.gpus_per_worker} free "
            f"{job.gpu_type or 'GPU'} ({gpus} GPUs); most free: {most_free_gpus} on {names[row]}; "
            f"would run on {names[best_row]} (${best_usd * gpus:.2f}/h) {once}"
        )
        decisions[index] = new_decision(job.key, Action.WAIT, Fit.NO_FIT, Reason.NO_FITTING_POOL, message, None)
    return decisions


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
