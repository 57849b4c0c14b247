"""Elastic pools in the scheduling cycle: what Karpenter bought for each, from the watch-fed index.

Before the snapshot, `sync_elastic` brings each elastic pool in step: its generated Karpenter
NodePool exists and matches the pool (created or patched, written through to the index), its
scaling readiness (engine/elastic_pool.py), and `status.nodes` (ready / provisioning / requested /
bought / released) from the nodes and NodeClaims of its NodePool. The pool the snapshot reads then
has this cycle's ready count, so a job waits for no node that has already come.

Buying is Karpenter's: the operator admits a job onto nodes still to buy (the scheduler's
provisionable row), creates its RayJob as for any pool, and Karpenter sees the pods Pending
against the NodePool and launches NodeClaims sized to them; once the pods are gone, it
consolidates the empty nodes away. `release_unprovisioned` is the deadline: a job whose pods are
still unscheduled past the pool's provisioning timeout goes back to the queue with the reason.

An elastic pool of a worker cluster (`spec.cluster`) is served the same way by that cluster's
Karpenter: its NodePools, NodeClaims, nodes and pods come from the worker's watches
(handlers/remote.py), and its NodePool is written there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from transfer_operator.api.enums import ConditionType, Phase, Reason
from transfer_operator.api.models import GPUPool, PoolNodesStatus
from transfer_operator.engine import transitions
from transfer_operator.engine.conditions import upsert_condition
from transfer_operator.engine.elastic_pool import (
    ProvisionerView,
    floor_node_pool_name,
    idle_floor,
    node_pool_manifests,
    nodes_status,
    provisioned_nodes,
    scaling_readiness,
    stale_claims,
    unprovisioned,
)
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.effects import perform
from transfer_operator.handlers.fleet import Fleet
from transfer_operator.handlers.informer import Store
from transfer_operator.scheduler.snapshot import requeue_backoff_s

log = logging.getLogger(__name__)
SPEC_HASH = "transfer.dev/spec-hash"


@dataclass
class Site:
    """The cluster whose Karpenter buys an elastic pool's nodes, as its watches show it."""

    kube: Any  # handlers.kube.Kube of that cluster
    nodes: Store[dict[str, Any]]
    nodepools: Store[dict[str, Any]]
    nodeclaims: Store[dict[str, Any]]
    karpenter: bool
    read_pods: Callable[[], list[dict[str, Any]]]  # in the namespaces of their jobs
    _pods: list[dict[str, Any]] | None = None

    def pods(self) -> list[dict[str, Any]]:
        """Read once, when a job's pods are first looked at."""
        if self._pods is None:
            self._pods = self.read_pods()
        return self._pods


def site_of(ctx: Ctx, cluster: str | None) -> Site | None:
    """The operator's own cluster, or the connected worker cluster `cluster` (None: not connected)."""
    if not cluster:
        index = ctx.index
        return Site(ctx.kube, index.nodes, index.nodepools, index.nodeclaims, index.karpenter_served(), index.pods.values)
    remote = ctx.clusters.get(cluster)
    if remote is None or remote.kube is None:
        return None
    found = remote.index
    return Site(
        remote.kube,
        found.nodes,
        found.nodepools,
        found.nodeclaims,
        remote.karpenter_served(),
        lambda: remote.in_origin_namespaces(found.pods.values()),
    )


def site_finder(ctx: Ctx) -> Callable[[str | None], Site | None]:
    """site_of, each cluster looked up once (one cycle's)."""
    found: dict[str | None, Site | None] = {}

    def find(cluster: str | None) -> Site | None:
        if cluster not in found:
            found[cluster] = site_of(ctx, cluster)
        return found[cluster]

    return find


def spec_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest["spec"], sort_keys=True).encode()).hexdigest()[:16]


def ensure_node_pool(site: Site, pool: GPUPool) -> None:
    """The generated NodePools of `pool`, created or brought in step with it (no write when they
    are); a floor NodePool it no longer keeps (minNodes went to 0) emptied."""
    manifests = node_pool_manifests(pool)
    floor = floor_node_pool_name(pool)
    if len(manifests) == 1 and site.nodepools.get(("", floor)) is not None:
        manifests.append(idle_floor(floor))  # written once: then its hash matches
    for manifest in manifests:
        digest = spec_hash(manifest)
        manifest["metadata"]["annotations"] = {SPEC_HASH: digest}
        stored = site.nodepools.get(("", manifest["metadata"]["name"]))
        if stored is not None and (stored["metadata"].get("annotations") or {}).get(SPEC_HASH) == digest:
            continue
        written = site.kube.apply_nodepool(manifest, create=stored is None)
        site.nodepools.apply("MODIFIED", written, mark=False)


def has_elastic_pool(fleet: Fleet) -> bool:
    return any(pool.spec.scaling is not None for _, pool in fleet.pools.values())


def sync_elastic(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    """Every elastic pool, in the cluster of its nodes: NodePool, readiness and status.nodes, kept
    in `fleet` (the pool as the snapshot reads it, and the status to write)."""
    if not has_elastic_pool(fleet):
        return  # no pass over the jobs
    site_for = site_finder(ctx)
    held = fleet.held_by_pool()
    for name, (body, pool) in list(fleet.pools.items()):
        scaling = pool.spec.scaling
        if scaling is None:
            continue
        cluster = pool.spec.cluster or None
        site = site_for(cluster)
        if site is None:
            ready, reason = False, Reason.PROVISIONER_NOT_INSTALLED
            message = f"cluster {cluster} is not connected; counting no bought nodes until it is"
            node_count, provisioning, claims = 0, 0, ctx.elastic_claims.get(name, set())
        else:
            generated = scaling.node_pool_ref is None and scaling.node_class_ref is not None
            if site.karpenter and generated and scaling.max_nodes >= scaling.min_nodes and not pool.spec.cordoned:
                try:
                    ensure_node_pool(site, pool)
                except Exception as error:  # noqa: BLE001 - shown on the pool's Ready condition
                    log.warning("NodePool of GPUPool %s: %s", name, error)
            names = frozenset(n["metadata"]["name"] for n in site.nodepools.values())
            ready, reason, message = scaling_readiness(pool, ProvisionerView(site.karpenter, names, cluster))
            # (lost nodes of the pool, bought ones too, are taken off by the snapshot's lost_nodes)
            node_count, provisioning, claims = provisioned_nodes(pool, site.nodes.values(), site.nodeclaims.values())
        nodes = nodes_status(
            pool, node_count, provisioning, held.get(name, (0, 0))[0], claims, ctx.elastic_claims.get(name)
        )
        ctx.elastic_claims[name] = claims
        conditions = upsert_condition(
            (body.get("status") or {}).get("conditions") or [],
            ConditionType.READY,
            ready,
            reason,
            message,
            now,
            pool.metadata.generation,
        )
        fleet.scaling_ready[name] = ready
        fleet.elastic_status[name] = {"nodes": nodes, "conditions": conditions}
        status = pool.status.model_copy(update={"nodes": PoolNodesStatus.model_validate(nodes)})
        fleet.pools[name] = (body, pool.model_copy(update={"status": status}))


def release_unprovisioned(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    """Jobs admitted onto nodes to be bought whose pods still have no node past the pool's
    provisioning timeout go back to the queue; NodeClaims not ready past it, with no job of the
    pool waiting for nodes, are deleted (a node that comes late is consolidated away anyway)."""
    if not has_elastic_pool(fleet):
        return  # no job waits for nodes to be bought
    now_s = now.timestamp()
    site = site_finder(ctx)
    for key, (body, job) in list(fleet.jobs.items()):
        placement = job.status.placement
        if placement is None or not job.status.phase.holds_capacity:
            continue
        entry = fleet.pools.get(placement.pool)
        if entry is None or entry[1].spec.scaling is None:
            continue
        where = site(entry[1].spec.cluster or None)
        if where is None:  # a lost cluster's jobs go elsewhere by the failover rule
            continue
        why = unprovisioned(job, entry[1], where.pods(), now_s)
        if why is None:
            continue
        message = f"{why}; back in the queue, resuming from the last checkpoint"
        change = transitions.preempt(
            job,
            body.get("status") or {},
            Reason.PROVISIONING_TIMED_OUT,
            message,
            now,
            requeue_after_s=requeue_backoff_s(job.status.attempts),
            failover=True,
        )
        fleet.jobs[key] = (body, perform(ctx, body, job, change))
    # NodeClaims still not ready past the timeout while no job of the pool waits for nodes.
    waiting = {
        job.status.placement.pool
        for job in fleet.all_jobs()
        if job.status.placement is not None and job.status.phase is Phase.ADMITTED
    }
    for name, (_, pool) in fleet.pools.items():
        where = site(pool.spec.cluster or None) if pool.spec.scaling is not None and name not in waiting else None
        if where is None:
            continue
        for claim in stale_claims(pool, where.nodeclaims.values(), now_s):
            log.info("releasing NodeClaim %s of GPUPool %s: not ready within the provisioning timeout", claim, name)
            where.kube.delete_nodeclaim(claim)
            where.nodeclaims.delete(("", claim))

