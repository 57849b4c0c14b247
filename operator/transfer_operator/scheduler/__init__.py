"""Pure placement: pools + jobs + live usage -> decisions. No Kubernetes imports."""

from transfer_operator.scheduler.schedule import schedule
from transfer_operator.scheduler.types import (
    Action,
    Allocation,
    ClusterSnapshot,
    Decision,
    Fit,
    JobRequest,
    Placement,
    PoolState,
    QueueQuota,
)

__all__ = [
    "Action",
    "Allocation",
    "ClusterSnapshot",
    "Decision",
    "Fit",
    "JobRequest",
    "Placement",
    "PoolState",
    "QueueQuota",
    "schedule",
]
