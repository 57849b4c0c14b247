"""TransferJob / GPUPool values -> the scheduler's plain inputs."""

from __future__ import annotations

import functools
from datetime import datetime

from transfer_operator.api.enums import Phase
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.api.queues import TransferQueue
from transfer_operator.scheduler.types import Allocation, JobRequest, PoolState, QueueQuota


@functools.lru_cache(maxsize=1 << 16)
def seconds_of(timestamp: str | None) -> float:
    """Cached: each cycle reads the admission time of every job holding GPUs, and jobs admitted in
    the same second share it."""
    if not timestamp:
        return 0.0
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def pool_state_of(pool: GPUPool, lost_nodes: int = 0, scaling_ready: bool = True) -> PoolState:
    """The pool as the scheduler sees it; nodes that are NotReady or going away are not capacity.
    An elastic pool adds its provisioned Ready nodes (status.nodes.ready) and, while its scaling is
    Ready (engine/elastic_pool.py), the nodes its provisioner may still buy (maxNodes less those
    ready)."""
    spec = pool.spec
    provisioned = pool.status.nodes.ready if pool.status.nodes is not None else 0
    provisionable, startup_hours = 0, 0.0
    if spec.scaling is not None and scaling_ready:
        provisionable = max(0, spec.scaling.max_nodes - provisioned)
        startup_hours = spec.scaling.node_startup_seconds / 3600
    return PoolState(
        name=pool.metadata.name,
        region=spec.region,
        zone=spec.zone,
        gpu_type=spec.gpu_type,
        nodes=max(0, spec.nodes + provisioned - lost_nodes),
        gpus_per_node=spec.gpus_per_node,
        on_demand_usd_per_gpu_hour=spec.pricing.on_demand_per_gpu_hour,
        spot_usd_per_gpu_hour=spec.pricing.spot_per_gpu_hour,
        spot_interruptions_per_hour=spec.pricing.spot_interruption_rate,
        cordoned=spec.cordoned,
        provisionable_nodes=0 if spec.cordoned else provisionable,
        startup_hours=startup_hours,
    )


def job_request_of(job: TransferJob) -> JobRequest:
    spec = job.spec
    budget_left = None
    if spec.budget is not None:
        budget_left = max(0.0, spec.budget.max_dollars - job.status.cost_so_far)
    fewest, most = spec.resources.worker_range
    return JobRequest(
        key=job.key,
        workers=most,
        min_workers=fewest if fewest < most else None,
        gpus_per_worker=spec.resources.gpus_per_worker,
        gpu_type=spec.resources.gpu_type,
        regions=frozenset(spec.placement.regions),
        spot=spec.placement.spot,
        max_usd_per_gpu_hour=spec.placement.max_price_per_gpu_hour,
        budget_usd=budget_left,
        estimated_hours=spec.resources.estimated_hours,
        priority=spec.priority,
        queue=spec.queue,
        created_at_s=seconds_of(job.metadata.creation_timestamp),
        prefer=spec.placement.prefer,
    )


def allocation_of(job: TransferJob, in_flight: bool = False) -> Allocation | None:
    """GPUs a job holds: admitted or running jobs with a placement. A running elastic gang may be
    shrunk down to its minimum (a restart from its checkpoint, as a growth is). `in_flight`: its
    admission is still being written (types.Allocation)."""
    placement = job.status.placement
    if placement is None or not job.status.phase.holds_capacity:
        return None
    fewest, most = job.spec.resources.worker_range
    return Allocation(
        job_key=job.key,
        pool=placement.pool,
        workers=job.held_workers,
        gpus_per_worker=job.spec.resources.gpus_per_worker,
        priority=job.spec.priority,
        queue=job.spec.queue,
        admitted_at_s=seconds_of(job.status.admitted_at),
        min_workers=fewest if fewest < most and job.status.phase is Phase.RUNNING else None,
        in_flight=in_flight,
    )


def queue_quota_of(queue: TransferQueue) -> QueueQuota:
    """A TransferQueue's quota: its nominal GPUs per GPU type (`*`: any type it names no quota
    for), cohort and borrowing limit (per GPU type), as the scheduler's ledger counts them."""
    spec = queue.spec
    return QueueQuota(queue.metadata.name, dict(spec.nominal_gpus), spec.cohort, spec.borrowing_limit_gpus)
