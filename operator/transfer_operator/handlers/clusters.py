"""The cycle's part of worker clusters: keep one RemoteCluster per TransferCluster, write their
status, clean up after deleted jobs (finalizer) and sweep RayJobs whose origin is gone.

Garbage collection across clusters is ours: a RayJob in a worker cluster has no owner reference
(none can cross clusters), only origin labels. Two paths remove it:
- a TransferJob dispatched to a worker cluster carries FINALIZER; when it is deleted, the cycle
  deletes its RayJobs there, then the finalizer (or, when that cluster is lost, only the
  finalizer: the sweep finishes the job when the cluster is back);
- the orphan sweep, every reconcile pass, deletes every RayJob of a worker cluster that is not
  the current attempt of a live TransferJob placed there (its origin was deleted, or the job was
  preempted or moved to another cluster while this one was unreachable): never two live attempts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.clusters import TransferCluster
from transfer_operator.api.enums import ConditionType, NetworkPolicyScope, Phase, Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.engine.conditions import iso, upsert_condition
from transfer_operator.engine.names import network_policy_name
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.remote import (
    LABEL_ORIGIN_UID,
    ClusterProblem,
    RemoteCluster,
    client_of,
    connect,
    read_kubeconfig,
    spec_hash,
)

log = logging.getLogger(__name__)
FINALIZER = "transfer.dev/remote-cleanup"
RECONNECT_EVERY_S = 10.0
LAST_CONTACT_WRITE_S = 30.0  # status.lastContact is written at most this often


def sync_clusters(ctx: Ctx) -> None:
    """One RemoteCluster per TransferCluster: connect new or changed ones (retrying broken ones
    every RECONNECT_EVERY_S), stop those whose TransferCluster is gone; write their status."""
    wanted = {body["metadata"]["name"]: (body, tc) for body, tc in ctx.index.transferclusters.values() if tc}
    for name in list(ctx.clusters):
        if name not in wanted:
            ctx.clusters.pop(name).stop()
    now_s = time.time()
    for name, (body, cluster) in wanted.items():
        remote = ctx.clusters.get(name)
        if (
            remote is None
            or remote.spec_hash != spec_hash(cluster)
            or (remote.problem is not None and now_s >= remote.retry_at_s)
        ):
            remote = refresh(ctx, cluster, remote)
        write_cluster_status(ctx, body, remote, now_s)


def refresh(ctx: Ctx, cluster: TransferCluster, old: RemoteCluster | None) -> RemoteCluster:
    """(Re)connect a worker cluster; a problem is kept on it with how to fix it."""
    name = cluster.metadata.name
    if old is not None:
        old.stop()
    remote = RemoteCluster(
        name=name,
        spec_hash=spec_hash(cluster),
        namespace_prefix=cluster.spec.namespace_prefix or "",
        lost_after_s=float(cluster.spec.cluster_lost_after_seconds),
    )
    if old is not None:  # the loss clock keeps running across reconnects
        remote.last_contact_s, remote.first_seen_s = old.last_contact_s, old.first_seen_s
    ctx.clusters[name] = remote
    try:
        kubeconfig = read_kubeconfig(ctx.kube, cluster, ctx.lease_namespace)
        ref = cluster.spec.kubeconfig_secret_ref
        api = client_of(kubeconfig, f"Secret {ref.namespace or ctx.lease_namespace}/{ref.name}")
        connect(remote, api)
    except ClusterProblem as problem:
        remote.problem = problem
    except Exception as error:  # noqa: BLE001 - a broken cluster must not stop the operator
        remote.problem = ClusterProblem(Reason.UNREACHABLE, f"cluster {name}: {type(error).__name__}")
    if remote.problem is not None:
        log.warning("TransferCluster %s not ready: %s", name, remote.problem.message)
        remote.retry_at_s = time.time() + RECONNECT_EVERY_S
    return remote


def write_cluster_status(ctx: Ctx, body: dict[str, Any], remote: RemoteCluster, now_s: float) -> None:
    old = body.get("status") or {}
    now = datetime.now(UTC)
    reachable = remote.reachable(now_s)
    if remote.problem is not None:
        ready, reason, message = False, remote.problem.reason, remote.problem.message
    elif not reachable:
        ready, reason = False, Reason.UNREACHABLE
        message = f"no answer from the API server since {iso_of(remote.last_contact_s)}"
        if remote.lost(now_s):
            message += "; its jobs were moved to other clusters"
    else:
        ready, reason, message = True, Reason.CLUSTER_READY, "connected; KubeRay installed"
    conditions = upsert_condition(
        old.get("conditions") or [],
        ConditionType.READY,
        ready,
        reason,
        message,
        now,
        body["metadata"].get("generation"),
    )
    status: dict[str, Any] = {
        "reachable": reachable,
        "serverVersion": remote.server_version,
        "kubeRayInstalled": remote.kuberay_installed,
        "conditions": conditions,
        "observedGeneration": body["metadata"].get("generation"),
    }
    contact = iso_of(remote.last_contact_s) if remote.last_contact_s else None
    changed = any(old.get(k) != v for k, v in status.items() if k != "conditions") or _conditions_differ(
        old.get("conditions") or [], conditions
    )
    stale = contact is not None and (
        not old.get("lastContact") or _age_s(old["lastContact"], now) >= LAST_CONTACT_WRITE_S
    )
    if not changed and not stale:
        return
    if contact is not None:
        status["lastContact"] = contact
    try:
        ctx.kube.patch_transfercluster_status(body["metadata"]["name"], status)
        ctx.index.transferclusters.apply("MODIFIED", {**body, "status": {**old, **status}}, mark=False)
    except Exception as error:  # noqa: BLE001 - status is best effort; the next cycle writes again
        log.warning("writing TransferCluster %s status failed: %s", body["metadata"]["name"], error)
    metrics.CLUSTER_REACHABLE.labels(cluster=remote.name).set(1 if reachable and ready else 0)


def _conditions_differ(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    def key(conditions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conditions)

    return key(old) != key(new)


def iso_of(seconds: float | None) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC)) if seconds else "never"


def _age_s(stamp: str, now: datetime) -> float:
    try:
        return (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return float("inf")


# --- which pools and jobs a cluster's state touches ---------------------------------------------


def usable(ctx: Ctx, cluster: str | None, now_s: float) -> bool:
    """A pool of `cluster` has capacity (the local cluster always has)."""
    if not cluster:
        return True
    remote = ctx.clusters.get(cluster)
    return remote is not None and remote.usable(now_s)


def lost_reason(ctx: Ctx, cluster: str | None, now_s: float) -> str | None:
    """Why the jobs of `cluster` must move elsewhere, or None."""
    if not cluster:
        return None
    remote = ctx.clusters.get(cluster)
    if remote is None:
        return f"TransferCluster {cluster} was deleted"
    if remote.lost(now_s):
        return f"cluster {cluster} unreachable for over {remote.lost_after_s:.0f}s"
    return None


# --- garbage collection -----------------------------------------------------------------------


def finalize_deleted(
    ctx: Ctx, jobs: dict[str, tuple[dict[str, Any], TransferJob]], deleting: Iterable[str]
) -> None:
    """Deleted jobs (the keys in `deleting`) leave the cycle's view; those with FINALIZER get
    their remote RayJobs deleted first (in every usable cluster), then lose the finalizer."""
    now_s = time.time()
    for key in deleting:
        entry = jobs.pop(key, None)
        if entry is None:
            continue
        body = entry[0]
        metadata = body["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if FINALIZER not in finalizers:
            continue
        uid = metadata.get("uid")
        waiting = False
        for remote in list(ctx.clusters.values()):
            theirs = [
                r
                for r in remote.index.rayjobs.values()
                if r["metadata"]["labels"].get(LABEL_ORIGIN_UID) == uid
            ]
            if not theirs:
                continue
            if not remote.usable(now_s):
                # a lost or misconfigured cluster is swept when it is back; a short outage is waited out
                waiting = waiting or (remote.problem is None and not remote.lost(now_s))
                continue
            for rayjob in theirs:
                delete_remote(remote, rayjob["metadata"]["namespace"], rayjob["metadata"]["name"])
            if ctx.config.network_policy_scope is NetworkPolicyScope.JOB:  # a namespace's stays
                remote_namespace = remote.remote_namespace(metadata.get("namespace") or "default")
                remote.kube.delete_network_policy(remote_namespace, network_policy_name(metadata["name"]))
        if waiting:
            continue
        remaining = [f for f in finalizers if f != FINALIZER]
        try:
            ctx.kube.set_finalizers(metadata.get("namespace") or "default", metadata["name"], remaining)
        except Exception as error:  # noqa: BLE001 - the next cycle tries again
            log.warning("removing the finalizer of %s failed: %s", key, error)


def delete_remote(remote: RemoteCluster, namespace: str, name: str) -> None:
    remote.kube.delete_rayjob(namespace, name)
    remote.index.rayjobs.delete((namespace, name))
    metrics.REMOTE_RAYJOBS_DELETED.labels(cluster=remote.name).inc()


def sweep_orphans(ctx: Ctx, jobs: dict[str, tuple[dict[str, Any], TransferJob]]) -> int:
    """Delete RayJobs of worker clusters that are not the current attempt of a live job placed
    there. Returns how many were deleted."""
    if not ctx.index.is_synced():
        return 0
    by_uid = {body["metadata"].get("uid"): job for body, job in jobs.values()}
    now_s = time.time()
    deleted = 0
    for remote in list(ctx.clusters.values()):
        if not remote.usable(now_s):
            continue
        for rayjob in remote.index.rayjobs.values():
            metadata = rayjob["metadata"]
            job = by_uid.get(metadata["labels"].get(LABEL_ORIGIN_UID))
            if job is not None and is_current_attempt(job, metadata["name"], remote.name):
                continue
            log.info(
                "deleting orphaned RayJob %s/%s in cluster %s",
                metadata["namespace"],
                metadata["name"],
                remote.name,
            )
            try:
                delete_remote(remote, metadata["namespace"], metadata["name"])
                deleted += 1
            except Exception as error:  # noqa: BLE001 - the next pass tries again
                log.warning("deleting orphan %s in %s failed: %s", metadata["name"], remote.name, error)
    return deleted


def is_current_attempt(job: TransferJob, rayjob_name: str, cluster: str) -> bool:
    if job.status.ray_job_name != rayjob_name:
        return False
    if job.status.phase in (Phase.SUCCEEDED, Phase.FAILED):
        return True  # kept for its history until KubeRay's TTL removes it
    placement = job.status.placement
    return job.status.phase.holds_capacity and placement is not None and placement.cluster == cluster
