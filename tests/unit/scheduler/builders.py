"""Fluent-ish builders for scheduler values, so a test states only what it is about."""

from __future__ import annotations

from transfer_operator.api.enums import Preference, UtilizationPolicy
from transfer_operator.scheduler import Allocation, ClusterSnapshot, JobRequest, PoolState, QueueQuota


def a_pool(
    name: str = "eu-a100",
    *,
    region: str = "eu-west",
    gpu: str = "A100",
    nodes: int = 2,
    gpus_per_node: int = 8,
    usd: float = 3.0,
    spot_usd: float | None = None,
    spot_rate: float = 0.0,
    cordoned: bool = False,
) -> PoolState:
    return PoolState(name, region, gpu, nodes, gpus_per_node, usd, spot_usd, spot_rate, None, cordoned)


def a_job(
    key: str = "ns/job",
    *,
    workers: int = 1,
    gpus: int = 8,
    gpu: str | None = None,
    regions: tuple[str, ...] = (),
    spot: bool = False,
    max_usd: float | None = None,
    budget: float | None = None,
    hours: float = 1.0,
    priority: int = 0,
    queue: str = "default",
    created: float = 0.0,
    prefer: Preference = Preference.CHEAPEST,
) -> JobRequest:
    return JobRequest(
        key,
        workers,
        gpus,
        gpu,
        frozenset(regions),
        spot,
        max_usd,
        budget,
        hours,
        priority,
        queue,
        created,
        prefer,
    )


def held(
    job_key: str,
    pool: str,
    *,
    workers: int = 1,
    gpus: int = 8,
    priority: int = 0,
    queue: str = "default",
    at: float = 0.0,
    min_workers: int | None = None,
) -> Allocation:
    return Allocation(job_key, pool, workers, gpus, priority, queue, at, min_workers)


def snapshot_of(
    *pools: PoolState,
    allocations: tuple[Allocation, ...] = (),
    quotas: tuple[QueueQuota, ...] = (),
    policy: UtilizationPolicy = UtilizationPolicy.BINPACK,
) -> ClusterSnapshot:
    return ClusterSnapshot(tuple(pools), allocations, quotas, policy)
