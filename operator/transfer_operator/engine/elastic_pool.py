"""An elastic GPUPool's Ready condition: whether its provisioner can buy nodes for it. Pure.

While it is not Ready the pool counts only its ready nodes (nothing provisionable), and the
condition says what is wrong and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from transfer_operator.api.enums import Reason
from transfer_operator.api.models import GPUPool


@dataclass(frozen=True)
class ProvisionerView:
    """What the operator found in the cluster: the provisioner's API served, and its NodePools."""

    installed: bool  # the karpenter.sh NodePool and NodeClaim kinds are served
    node_pools: frozenset[str] = frozenset()


def node_pool_name(pool: GPUPool) -> str:
    """The Karpenter NodePool of the pool: the one referenced, or the one generated for it."""
    scaling = pool.spec.scaling
    if scaling is not None and scaling.node_pool_ref is not None:
        return scaling.node_pool_ref.name
    return pool.metadata.name


def scaling_readiness(pool: GPUPool, view: ProvisionerView) -> tuple[bool, Reason, str]:
    """(ready, reason, message) of an elastic pool's scaling; a static pool is always ready."""
    scaling = pool.spec.scaling
    if scaling is None:
        return True, Reason.POOL_READY, "fixed nodes"
    if scaling.max_nodes < scaling.min_nodes:  # the API server's CEL rule refuses this; files may not
        return (
            False,
            Reason.INVALID_SCALING,
            f"scaling.maxNodes {scaling.max_nodes} is below scaling.minNodes {scaling.min_nodes}; "
            "raise maxNodes or lower minNodes",
        )
    if not view.installed:
        return (
            False,
            Reason.PROVISIONER_NOT_INSTALLED,
            f"provisioner {scaling.provisioner.value} is not installed (no karpenter.sh/v1 NodePool API); "
            "install Karpenter (`transferctl dev-cluster up --provisioner karpenter` locally) or remove "
            "spec.scaling; counting only the pool's ready nodes",
        )
    name = node_pool_name(pool)
    if name not in view.node_pools:
        fix = (
            "create it or point spec.scaling.nodePoolRef at an existing one"
            if scaling.node_pool_ref is not None
            else "the operator generates it; check its RBAC for karpenter.sh nodepools (create)"
        )
        return (
            False,
            Reason.NODE_POOL_NOT_FOUND,
            f"Karpenter NodePool {name} not found: {fix}; counting only the pool's ready nodes",
        )
    return True, Reason.POOL_READY, f"Karpenter NodePool {name} buys up to {scaling.max_nodes} nodes"
