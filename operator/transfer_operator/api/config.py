"""Operator-wide settings: the scheduling policy and queue quotas (a ConfigMap in the chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from transfer_operator.api.enums import NetworkPolicyScope, UtilizationPolicy
from transfer_operator.api.loading import LoadError, load_file
from transfer_operator.api.models import NAME_PATTERN, ApiModel
from transfer_operator.api.validation import validate_wire

# Taints that mean "this node is going away" on the common platforms: a job with a pod on such a
# node fails over at once (SpotInterrupted), and the node no longer counts as capacity.
DEFAULT_INTERRUPTION_TAINTS = (
    "transfer.dev/spot-interruption",  # ours: set by hand or by a cloud's interruption handler
    "aws-node-termination-handler/spot-itn",
    "aws-node-termination-handler/rebalance-recommendation",
    "cloud.google.com/impending-node-termination",
    "karpenter.sh/disrupted",
    "ToBeDeletedByClusterAutoscaler",
    "node.kubernetes.io/out-of-service",
)


class QueueConfig(ApiModel):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    nominal_gpus: Annotated[int, Field(ge=0)]
    cohort: str | None = None
    borrowing_limit_gpus: Annotated[int | None, Field(default=None, ge=0)] = None


class StorageConfig(ApiModel):
    """Shared checkpoint storage for jobs without their own spec.checkpoint.uri (engine/storage.py)."""

    checkpoint_root: Annotated[
        str | None, Field(default=None, pattern=r"^(s3|gs|gcs|abfs|hdfs)://[^/]+(/.*)?$", max_length=512)
    ] = None
    # A Secret of that name in the job's namespace (in every cluster) holds the storage
    # credentials as env (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...): created by the admin.
    credentials_secret: Annotated[str | None, Field(default=None, pattern=NAME_PATTERN, max_length=253)] = None


class OperatorConfig(ApiModel):
    utilization_policy: UtilizationPolicy = UtilizationPolicy.BINPACK
    scheduling_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    # Time the exact placement (HiGHS) may take per cycle; past it, or at 0, the greedy walk decides.
    exact_budget_seconds: Annotated[float, Field(ge=0, le=10)] = 0.2
    queues: list[QueueConfig] = Field(default_factory=list)
    # A running elastic gang below its maxWorkers grows into free capacity the queue does not want
    # (a restart at the new size from its latest checkpoint), at the earliest this long after its
    # last (re)admission; 0 turns growth off.
    grow_after_seconds: Annotated[float, Field(ge=0, le=86400)] = 300.0
    rayjob_ttl_seconds: Annotated[int, Field(ge=0)] = 3600
    budget_warning_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.8
    # How often the cycle checks running jobs: cost, budget (a job stops before the next check
    # would pass it), a lost or finished RayJob the watch did not report.
    reconcile_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    interruption_taints: list[str] = Field(default_factory=lambda: list(DEFAULT_INTERRUPTION_TAINTS))
    # Watch nodes and the jobs' pods for NotReady, interruption taints and vanished nodes.
    node_failover: bool = True
    # The namespaces that hold TransferJobs, when the install names them: the jobs' pods are then
    # listed there only (the chart grants pods list/watch by a Role in each); empty: everywhere.
    job_namespaces: Annotated[
        list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]], Field(max_length=1000)
    ] = Field(default_factory=list)
    # Where the KubeRay operator runs: its pods may reach a job's dashboard (the NetworkPolicy).
    kuberay_namespace: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)] = "kuberay-system"
    # namespace: the jobs of a namespace (one tenant) may reach each other's pods, each Ray cluster
    # still behind its own token; one NetworkPolicy per namespace, no write per admission.
    # job: only a job's own pods reach it; one NetworkPolicy per job (docs/security.md).
    network_policy_scope: NetworkPolicyScope = NetworkPolicyScope.NAMESPACE
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @classmethod
    def load(cls, path: Path | None) -> OperatorConfig:
        """The config in `path` (the defaults without one); LoadError or InvalidSpec, one line each."""
        if path is None or not path.exists():
            return cls()
        documents = [d.body for d in load_file(path) if d.body is not None]
        if len(documents) > 1 or (documents and not isinstance(documents[0], dict)):
            raise LoadError(f"{path}: expected one object of operator settings")
        return validate_wire(cls, documents[0] if documents else {})
