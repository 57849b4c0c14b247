"""An elastic GPUPool's Ready condition: whether its provisioner can buy nodes for it. Pure.

While it is not Ready the pool counts only its ready nodes (nothing provisionable), and the
condition says what is wrong and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from transfer_operator.api.enums import Phase, Reason
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine.conditions import seconds_since
from transfer_operator.engine.node_health import attempt_of
from transfer_operator.engine.rayjob import (
    CAPACITY_TYPE_LABEL,
    LABEL_ATTEMPT,
    LABEL_JOB,
    PoolPin,
)

NODEPOOL_LABEL = "karpenter.sh/nodepool"  # on every NodeClaim and Node Karpenter launches
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
GPU_RESOURCE = "nvidia.com/gpu"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "transfer-operator"
FLOOR_SUFFIX = "-floor"
CONSOLIDATE_AFTER = "30s"  # an empty bought node is given back this long after its last pod left


@dataclass(frozen=True)
class ProvisionerView:
    """What the operator found in the cluster: the provisioner's API served, and its NodePools."""

    installed: bool  # the karpenter.sh NodePool and NodeClaim kinds are served
    node_pools: frozenset[str] = frozenset()
    cluster: str | None = None  # a worker cluster's name; None: the operator's own

    @property
    def where(self) -> str:
        return "" if self.cluster is None else f" in cluster {self.cluster}"


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
            f"provisioner {scaling.provisioner.value} is not installed{view.where} (no karpenter.sh/v1 NodePool "
            "API); install Karpenter (`transferctl dev-cluster up --provisioner karpenter` locally) or remove "
            "spec.scaling; counting only the pool's ready nodes",
        )
    name = node_pool_name(pool)
    if scaling.node_pool_ref is None and scaling.node_class_ref is None:
        return (
            False,
            Reason.INVALID_SCALING,
            "the generated Karpenter NodePool needs spec.scaling.nodeClassRef (an EC2NodeClass on EKS, a "
            "KWOKNodeClass in the dev cluster), or point spec.scaling.nodePoolRef at an existing NodePool; "
            "counting only the pool's ready nodes",
        )
    missing = [n for n in node_pool_names(pool) if n not in view.node_pools]
    if missing:
        fix = (
            "create it or point spec.scaling.nodePoolRef at an existing one"
            if scaling.node_pool_ref is not None
            else "the operator generates it; check its RBAC for karpenter.sh nodepools (create)"
        )
        return (
            False,
            Reason.NODE_POOL_NOT_FOUND,
            f"Karpenter NodePool {missing[0]} not found{view.where}: {fix}; counting only the pool's ready nodes",
        )
    message = f"Karpenter NodePool {name}{view.where} buys up to {scaling.max_nodes} nodes"
    if scaling.min_nodes > 0 and scaling.node_pool_ref is None:
        message += f"; {floor_node_pool_name(pool)} keeps {scaling.min_nodes} warm"
    elif scaling.min_nodes > 0:
        message += (
            f"; minNodes {scaling.min_nodes} is kept only with generated NodePools: keep the floor in your "
            "own (a static NodePool, spec.replicas)"
        )
    return True, Reason.POOL_READY, message


# --- the generated NodePool ----------------------------------------------------------------


def instance_type_name(gpu_type: str, gpus_per_node: int) -> str:
    """The instance type of a pool's node shape in the dev cluster's kwok catalog
    (devcluster/karpenter.py); a real cloud's NodePool is referenced instead (nodePoolRef)."""
    return f"{gpu_type.lower()}-{gpus_per_node}x"


def floor_node_pool_name(pool: GPUPool) -> str:
    """The static NodePool that keeps a generated pool's `minNodes` (its warm floor)."""
    return pool.metadata.name + FLOOR_SUFFIX


def node_pool_names(pool: GPUPool) -> tuple[str, ...]:
    """Every Karpenter NodePool whose nodes are the pool's: the one that buys on demand, and the
    floor's when the operator generates the pool's NodePools and keeps `minNodes`."""
    scaling = pool.spec.scaling
    if scaling is not None and scaling.node_pool_ref is None and scaling.min_nodes > 0:
        return (node_pool_name(pool), floor_node_pool_name(pool))
    return (node_pool_name(pool),)


def node_pool_manifests(pool: GPUPool) -> list[dict[str, Any]]:
    """The Karpenter NodePools the operator generates for a pool without nodePoolRef. Both launch
    nodes with the labels the pool's pods select and the taints they tolerate, of the pool's GPU
    shape, in its zone:

    - `<pool>` buys on demand (spot too when the pool sells spot), at most maxNodes - minNodes of
      them, and gives empty ones back after CONSOLIDATE_AFTER;
    - `<pool>-floor`, when minNodes > 0, is static (`replicas: minNodes`, Karpenter's
      StaticCapacity): that many on-demand nodes, kept when idle. Karpenter allows no change
      between static and dynamic, so the floor is a NodePool of its own (its replicas go to 0,
      not away, when minNodes does, until the pool is deleted)."""
    spec = pool.spec
    scaling = spec.scaling
    assert scaling is not None and scaling.node_class_ref is not None
    name = pool.metadata.name
    capacity_types = ["on-demand"] + (["spot"] if spec.pricing.spot_per_gpu_hour is not None else [])
    buying = _node_pool(
        name,
        name,
        {
            "template": _template(pool, capacity_types),
            "limits": {GPU_RESOURCE: str((scaling.max_nodes - scaling.min_nodes) * spec.gpus_per_node)},
            # Only empty nodes go (never one under a running gang), all of them when idle.
            "disruption": {
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": CONSOLIDATE_AFTER,
                "budgets": [{"nodes": "100%"}],
            },
        },
    )
    if scaling.min_nodes == 0:
        return [buying]
    floor_spec = {
        "template": _template(pool, ["on-demand"]),
        "replicas": scaling.min_nodes,
        "limits": {"nodes": str(scaling.min_nodes)},
    }
    return [buying, _node_pool(floor_node_pool_name(pool), name, floor_spec)]


def _node_pool(name: str, pool: str, spec: dict[str, Any]) -> dict[str, Any]:
    labels = {MANAGED_LABEL: MANAGER, "transfer.dev/pool": pool}
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name, "labels": labels}, "spec": spec}


def idle_floor(name: str) -> dict[str, Any]:
    """The patch that empties a floor NodePool the pool no longer keeps (minNodes went to 0)."""
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
            "spec": {"replicas": 0, "limits": {"nodes": "0"}}}  # fmt: skip


def _template(pool: GPUPool, capacity_types: list[str]) -> dict[str, Any]:
    spec = pool.spec
    scaling = spec.scaling
    assert scaling is not None and scaling.node_class_ref is not None
    name = pool.metadata.name
    pin = PoolPin.of(name, spec)
    labels = {"transfer.dev/pool": name, "nvidia.com/gpu.product": spec.gpu_type, **pin.node_selector}
    requirements: list[dict[str, Any]] = [
        {"key": CAPACITY_TYPE_LABEL, "operator": "In", "values": capacity_types},
        {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": [instance_type_name(spec.gpu_type, spec.gpus_per_node)]},
    ]
    if spec.zone:
        requirements.append({"key": ZONE_LABEL, "operator": "In", "values": [spec.zone]})
    taints = [
        {k: v for k, v in (("key", t.key), ("value", t.value), ("effect", t.effect)) if v}
        for t in spec.tolerations
        if t.key and t.effect
    ]
    template_spec: dict[str, Any] = {
        "nodeClassRef": scaling.node_class_ref.to_wire(),
        "requirements": requirements,
        "expireAfter": "Never",
    }
    if taints:
        template_spec["taints"] = taints
    return {"metadata": {"labels": labels}, "spec": template_spec}


# --- what the pool holds --------------------------------------------------------------------


def _ready(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _of_node_pools(obj: Mapping[str, Any], node_pools: tuple[str, ...]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(NODEPOOL_LABEL) in node_pools


def provisioned_nodes(
    pool: GPUPool, nodes: Iterable[Mapping[str, Any]], node_claims: Iterable[Mapping[str, Any]], lost: Iterable[str] = ()
) -> tuple[int, int, set[str]]:
    """(ready, provisioning, names of the pool's NodeClaims): nodes of its NodePool that are Ready
    and not lost; NodeClaims of it whose node is not (yet) ready."""
    names = node_pool_names(pool)
    gone = set(lost)
    ready_nodes = {
        (n.get("metadata") or {}).get("name")
        for n in nodes
        if _of_node_pools(n, names) and _ready(n) and (n.get("metadata") or {}).get("name") not in gone
    }
    claims = [c for c in node_claims if _of_node_pools(c, names)]
    provisioning = sum(
        1 for c in claims if (c.get("status") or {}).get("nodeName") not in ready_nodes or not _ready(c)
    )
    return len(ready_nodes), provisioning, {(c.get("metadata") or {}).get("name", "") for c in claims}


def nodes_status(
    pool: GPUPool,
    ready: int,
    provisioning: int,
    allocated_gpus: int,
    claims: set[str],
    known_claims: set[str] | None,
) -> dict[str, Any]:
    """status.nodes of an elastic pool. `requested`: nodes the admitted jobs need beyond the ready
    ones; bought/released count NodeClaims that appeared/went since `known_claims` (None: the
    first look, which counts nothing), added to what status says already."""
    before = pool.status.nodes
    bought, released = (before.bought, before.released) if before is not None else (0, 0)
    if known_claims is not None:
        bought += len(claims - known_claims)
        released += len(known_claims - claims)
    needed = math.ceil(allocated_gpus / pool.spec.gpus_per_node) if pool.spec.gpus_per_node else 0
    requested = max(0, needed - pool.spec.nodes - ready)
    return {
        "ready": ready,
        "provisioning": provisioning,
        "requested": requested,
        "bought": bought,
        "released": released,
    }


# --- the provisioning deadline ----------------------------------------------------------------


def stale_claims(pool: GPUPool, node_claims: Iterable[Mapping[str, Any]], now_s: float) -> list[str]:
    """NodeClaims of the pool's generated NodePool still not Ready past its provisioning timeout:
    released rather than leaked once the jobs they were bought for went back to the queue."""
    scaling = pool.spec.scaling
    if scaling is None or scaling.node_pool_ref is not None:
        return []  # a referenced NodePool is the admin's: its claims are Karpenter's business
    now = datetime.fromtimestamp(now_s, UTC)
    stale = []
    for claim in node_claims:
        metadata = claim.get("metadata") or {}
        age = seconds_since(metadata.get("creationTimestamp"), now)
        mine = _of_node_pools(claim, node_pool_names(pool)) and not _ready(claim)
        if mine and age is not None and age >= scaling.provisioning_timeout_seconds:
            stale.append(metadata.get("name", ""))
    return sorted(stale)



def unprovisioned(
    job: TransferJob, pool: GPUPool, pods: Iterable[Mapping[str, Any]], now_s: float
) -> str | None:
    """Why `job` goes back to the queue: it holds an elastic pool's capacity, is not Running, and its
    pods are still unscheduled (no node came) past the pool's provisioning timeout; None otherwise."""
    scaling = pool.spec.scaling
    if scaling is None or job.status.phase is not Phase.ADMITTED:
        return None
    waited = seconds_since(job.status.admitted_at, datetime.fromtimestamp(now_s, UTC))
    if waited is None or waited < scaling.provisioning_timeout_seconds:
        return None
    namespace, name, attempt = attempt_of(job)
    mine = [
        p
        for p in pods
        if (p.get("metadata") or {}).get("namespace") == namespace
        and ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB) == name
        and ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_ATTEMPT) == attempt
    ]
    unbound = [p for p in mine if not (p.get("spec") or {}).get("nodeName")]
    if not unbound:
        return None
    nodes = pool.status.nodes
    held = f"{nodes.ready} ready, {nodes.provisioning} provisioning" if nodes is not None else "none ready"
    return (
        f"{len(unbound)} of its pods found no node {int(waited)} s after admission (provisioning timeout "
        f"{scaling.provisioning_timeout_seconds} s; Karpenter NodePool {node_pool_name(pool)}: {held})"
    )
