"""Build one cycle's inputs from the objects of the cluster (or of YAML files)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.enums import Phase
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.api.queues import TransferQueue
from transfer_operator.scheduler.from_api import (
    allocation_of,
    job_request_of,
    pool_state_of,
    queue_quota_of,
    seconds_of,
)
from transfer_operator.scheduler.types import ClusterSnapshot, JobRequest, QueueQuota

QUEUED_PHASES = (Phase.PENDING, Phase.PREEMPTED)


def is_queued(job: TransferJob, now_s: float) -> bool:
    """Waiting for a placement: new, or back in the queue after a preemption and its backoff."""
    if job.spec.suspend or job.status.phase not in QUEUED_PHASES:
        return False
    if job.status.placements >= job.spec.max_attempts:
        return False
    return seconds_of(job.status.requeue_after) <= now_s


def requeue_backoff_s(attempts: int) -> float:
    """Wait before placing a preempted job again: 10 s, doubling per attempt, at most 10 min."""
    return float(min(600, 10 * 2 ** max(0, attempts - 1)))


def snapshot_of(
    pools: Iterable[GPUPool],
    jobs: Iterable[TransferJob],
    config: OperatorConfig,
    now_s: float = float("inf"),
    lost_nodes: Mapping[str, int] | None = None,
    queues: Iterable[TransferQueue] = (),
    scaling_ready: Mapping[str, bool] | None = None,
    in_flight: Iterable[TransferJob] = (),
) -> tuple[ClusterSnapshot, list[JobRequest]]:
    """Quotas come from the TransferQueues and the operator config's `queues:`; a TransferQueue
    replaces a config entry of its name (the config is the migration path: docs/security.md).
    `scaling_ready`: per elastic pool, whether its provisioner can buy nodes (absent: it can).
    `in_flight`: admitted jobs whose writes are not done: they hold GPUs and are no victims."""
    lost_nodes = lost_nodes or {}
    scaling_ready = scaling_ready or {}
    jobs = list(jobs)
    allocations = tuple(a for a in (allocation_of(job) for job in jobs) if a is not None)
    allocations += tuple(a for a in (allocation_of(job, in_flight=True) for job in in_flight) if a is not None)
    by_name = {q.name: QueueQuota(q.name, q.nominal_gpus, q.cohort, q.borrowing_limit_gpus) for q in config.queues}
    by_name |= {q.metadata.name: queue_quota_of(q) for q in queues}
    quotas = tuple(by_name.values())
    snapshot = ClusterSnapshot(
        pools=tuple(
            sorted(
                (
                    pool_state_of(
                        p, lost_nodes.get(p.metadata.name, 0), scaling_ready.get(p.metadata.name, True)
                    )
                    for p in pools
                ),
                key=lambda p: p.name,
            )
        ),
        allocations=allocations,
        quotas=quotas,
        policy=config.utilization_policy,
    )
    pending = [job_request_of(job) for job in jobs if is_queued(job, now_s)]
    return snapshot, pending
