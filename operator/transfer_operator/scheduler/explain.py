"""Why a job cannot run on any pool of the fleet, in words a user can act on."""

from __future__ import annotations

from collections.abc import Sequence

from transfer_operator.api.enums import Reason
from transfer_operator.scheduler.fit import gang_fits_empty_pool
from transfer_operator.scheduler.pricing import estimate_placement, price_classes
from transfer_operator.scheduler.types import JobRequest, PoolState


def _where(job: JobRequest) -> str:
    gpu = job.gpu_type or "GPU"
    regions = f" in {', '.join(sorted(job.regions))}" if job.regions else ""
    return f"{gpu}{regions}"


def explain_static_misfit(job: JobRequest, pools: Sequence[PoolState]) -> tuple[Reason, str]:
    """Walk the static limits in the order a user would fix them; the first one that empties
    the candidate list is the reason. Reasons here need a spec change (or a new pool)."""
    typed = [p for p in pools if job.gpu_type is None or p.gpu_type.upper() == job.gpu_type.upper()]
    if not typed:
        offered = sorted({p.gpu_type for p in pools}) or ["none"]
        return (
            Reason.INVALID_SPEC,
            f"no GPUPool offers GPU type {job.gpu_type}; set resources.gpuType to one of: {', '.join(offered)}",
        )
    placed = [p for p in typed if not job.regions or p.region in job.regions]
    if not placed:
        served = sorted({p.region for p in typed})
        return (
            Reason.INVALID_SPEC,
            f"no {job.gpu_type or 'GPU'} pool in placement.regions [{', '.join(sorted(job.regions))}]; "
            f"{job.gpu_type or 'GPUs'} are served in: {', '.join(served)}",
        )
    open_pools = [p for p in placed if not p.cordoned]
    if not open_pools:
        return (
            Reason.NO_FITTING_POOL,
            f"every {_where(job)} pool is cordoned: {', '.join(sorted(p.name for p in placed))}",
        )
    big_enough = [p for p in open_pools if gang_fits_empty_pool(job, p)]
    if not big_enough:
        largest = max(open_pools, key=lambda p: p.capacity_gpus)
        return (
            Reason.INVALID_SPEC,
            f"gang of {job.gang_gpus} GPUs ({job.workers} workers x {job.gpus_per_worker}) fits no "
            f"{_where(job)} pool even when empty (largest: {largest.name} with {largest.nodes} nodes x "
            f"{largest.gpus_per_node} GPUs); lower resources.workers or resources.gpusPerWorker",
        )
    priced = [
        estimate_placement(job, pool, price_class, usd)
        for pool in big_enough
        for price_class, usd in price_classes(job, pool)
    ]
    if job.max_usd_per_gpu_hour is not None:
        cheapest_rate = min(priced, key=lambda p: p.usd_per_gpu_hour)
        affordable = [p for p in priced if p.usd_per_gpu_hour <= job.max_usd_per_gpu_hour]
        if not affordable:
            spot_hint = "" if job.spot else " or allow placement.spot"
            return (
                Reason.INVALID_SPEC,
                f"placement.maxPricePerGpuHour ${job.max_usd_per_gpu_hour:.2f} is below every fitting "
                f"{_where(job)} pool (cheapest: {cheapest_rate.pool} at ${cheapest_rate.usd_per_gpu_hour:.2f} "
                f"{cheapest_rate.price_class.value}); raise it{spot_hint}",
            )
        priced = affordable
    cheapest = min(priced, key=lambda p: p.expected_cost_usd)
    assert job.budget_usd is not None, "only the budget is left to exclude every option"
    return (
        Reason.BUDGET_TOO_LOW,
        f"budget ${job.budget_usd:.2f} < ${cheapest.expected_cost_usd:.2f}, the estimated cost on the "
        f"cheapest fitting pool {cheapest.pool} ({cheapest.expected_hours:.2f} h x {cheapest.gpus} GPUs at "
        f"${cheapest.usd_per_gpu_hour:.2f}/GPU-h {cheapest.price_class.value}); raise budget.maxDollars "
        f"or lower resources.estimatedHours",
    )
