"""TransferCluster: a worker cluster whose GPUPools the operator places jobs on.

A GPUPool with `spec.cluster: <name>` is a node pool of that cluster; one without it is a node
pool of the operator's own cluster. The kubeconfig lives in a Secret in the operator's
namespace (the admin creates it), never in this object, its status, events or logs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from transfer_operator.api.models import (
    NAME_PATTERN,
    REGION_PATTERN,
    ApiModel,
    Condition,
    ObjectMeta,
    StatusModel,
)

# A namespace name plus this prefix must stay a valid namespace name (63 characters).
NAMESPACE_PREFIX_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,30}[-a-z0-9])?$"
DEFAULT_KUBECONFIG_KEY = "kubeconfig"
DEFAULT_CLUSTER_LOST_AFTER_S = 60


class KubeconfigSecretRef(ApiModel):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=253)]
    namespace: Annotated[
        str | None,
        Field(
            default=None,
            pattern=NAME_PATTERN,
            max_length=63,
            description="Must be the operator's namespace (the only one whose Secrets it reads); "
            "empty means that namespace.",
        ),
    ] = None
    key: Annotated[str, Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = DEFAULT_KUBECONFIG_KEY


class TransferClusterSpec(ApiModel):
    kubeconfig_secret_ref: KubeconfigSecretRef = Field(
        description="The Secret (in the operator's namespace) whose key holds the worker cluster's kubeconfig."
    )
    region: Annotated[
        str | None,
        Field(
            default=None, pattern=REGION_PATTERN, description="Default region of the pools in this cluster."
        ),
    ] = None
    namespace_prefix: Annotated[
        str | None,
        Field(
            default=None,
            pattern=NAMESPACE_PREFIX_PATTERN,
            description="RayJobs of namespace N run in namespace <prefix>N of the worker cluster.",
        ),
    ] = None
    cluster_lost_after_seconds: Annotated[
        int,
        Field(
            ge=10,
            le=86400,
            description="Unreachable this long: the cluster's pools leave capacity and its jobs move elsewhere.",
        ),
    ] = DEFAULT_CLUSTER_LOST_AFTER_S


class TransferClusterStatus(StatusModel):
    reachable: bool = False
    last_contact: str | None = Field(
        default=None, description="Last successful request to the cluster's API server."
    )
    server_version: str | None = None
    kube_ray_installed: bool = False
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class TransferCluster(StatusModel):
    api_version: str = "transfer.dev/v1alpha1"
    kind: str = "TransferCluster"
    metadata: ObjectMeta
    spec: TransferClusterSpec
    status: TransferClusterStatus = Field(default_factory=TransferClusterStatus)
