"""What one job costs on one pool: hours, price class and expected dollars.

Assumptions, stated once:
- `estimatedHours` of a job are hours on an A100-class GPU; other GPU types scale by their
  relative throughput in `GPU_SPEED` (a rough public-benchmark ratio for transformer fine-tuning).
- A spot interruption costs `SPOT_RESTART_HOURS` of rework (reschedule, restore, lost steps since
  the last checkpoint), so spot's expected hours are `hours * (1 + rate * SPOT_RESTART_HOURS)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from transfer_operator.api.enums import Preference, PriceClass
from transfer_operator.scheduler.types import JobRequest, Placement, PoolState

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


def gpu_speed(gpu_type: str) -> float:
    return GPU_SPEED.get(gpu_type.upper(), DEFAULT_GPU_SPEED)


def estimate_hours(job: JobRequest, pool: PoolState, price_class: PriceClass) -> float:
    hours = job.estimated_hours / gpu_speed(pool.gpu_type)
    if price_class is PriceClass.SPOT:
        hours *= 1.0 + pool.spot_interruptions_per_hour * SPOT_RESTART_HOURS
    return hours


def price_classes(job: JobRequest, pool: PoolState) -> list[tuple[PriceClass, float]]:
    """Price classes the job may buy on this pool, with their $/GPU-hour."""
    classes = [(PriceClass.ON_DEMAND, pool.on_demand_usd_per_gpu_hour)]
    if job.spot and pool.spot_usd_per_gpu_hour is not None:
        classes.append((PriceClass.SPOT, pool.spot_usd_per_gpu_hour))
    return classes


def estimate_placement(job: JobRequest, pool: PoolState, price_class: PriceClass, usd: float) -> Placement:
    hours = estimate_hours(job, pool, price_class)
    gpus = job.gang_gpus
    return Placement(
        pool=pool.name,
        region=pool.region,
        zone=pool.zone,
        gpu_type=pool.gpu_type,
        price_class=price_class,
        usd_per_gpu_hour=usd,
        gpus=gpus,
        expected_hours=hours,
        expected_cost_usd=usd * gpus * hours,
    )


def score(placement: Placement, prefer: Preference) -> float:
    """Lower is better. `cheapest` is expected dollars, `fastest` expected hours (dollars break
    ties), `balanced` the product of both, so halving either counts the same."""
    if prefer is Preference.FASTEST:
        return placement.expected_hours * 1e6 + placement.expected_cost_usd
    if prefer is Preference.BALANCED:
        return placement.expected_cost_usd * placement.expected_hours
    return placement.expected_cost_usd


@dataclass(frozen=True, slots=True)
class Option:
    """One way to run a job: a pool, a price class, and its score."""

    pool_index: int
    placement: Placement
    score: float
