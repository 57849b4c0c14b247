"""Why a job cannot run on any pool of the fleet, in words a user can act on."""

from __future__ import annotations

import numpy as np

from transfer_operator.api.enums import Reason
from transfer_operator.scheduler.costmap import (
    CLASSES,
    FleetFacts,
    PoolTable,
    Ranking,
    gang_fits_empty,
    placement_cost,
    within_price_cap,
)
from transfer_operator.scheduler.types import JobRequest


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
