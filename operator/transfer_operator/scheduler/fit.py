"""Static fit of a job on a pool: what no amount of waiting changes."""

from __future__ import annotations

from transfer_operator.scheduler.types import JobRequest, PoolState


def pool_matches(job: JobRequest, pool: PoolState) -> bool:
    if job.gpu_type is not None and job.gpu_type.upper() != pool.gpu_type.upper():
        return False
    if job.regions and pool.region not in job.regions:
        return False
    return not pool.cordoned


def gang_fits_empty_pool(job: JobRequest, pool: PoolState) -> bool:
    if job.gpus_per_worker == 0:
        return True
    if job.gpus_per_worker > pool.gpus_per_node:
        return False
    return pool.nodes * (pool.gpus_per_node // job.gpus_per_worker) >= job.workers
