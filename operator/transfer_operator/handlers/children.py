"""A TransferJob's child: its RayJob for the current attempt, created idempotently."""

from __future__ import annotations

import logging
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.enums import NetworkPolicyScope, Reason
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine.isolation import (
    ANNOTATION_SPEC,
    Peer,
    default_peers,
    render_namespace_network_policy,
    render_network_policy,
)
from transfer_operator.engine.rayjob import PoolPin, render_rayjob
from transfer_operator.engine.storage import with_storage_defaults
from transfer_operator.handlers.clusters import FINALIZER
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.informer import Store
from transfer_operator.handlers.kube import namespace_terminating, owner_reference
from transfer_operator.handlers.raytoken import ensure_ray_token
from transfer_operator.handlers.remote import LABEL_ORIGIN_UID, managed_labels
from transfer_operator.handlers.writes import create_rayjob, delete_rayjob

log = logging.getLogger(__name__)


def ensure_isolation(ctx: Ctx, body: dict[str, Any], job: TransferJob, cluster: str | None = None) -> None:
    """The NetworkPolicy that admits to the job's pods, before its RayJob: its namespace's (the
    default scope), or the job's own, kept across attempts (a repeat is a 409): owned by the
    TransferJob locally; in a worker cluster labelled with its origin and deleted with it
    (handlers/clusters.py). Each local RayJob's token Secret is the RayJob's own
    (handlers/raytoken.py)."""
    peers = default_peers(ctx.lease_namespace, ctx.config.kuberay_namespace)
    namespace = job.metadata.namespace or "default"
    if ctx.config.network_policy_scope is NetworkPolicyScope.NAMESPACE:
        if cluster:
            remote = ctx.clusters[cluster]
            remote_namespace = remote.remote_namespace(namespace)
            ensure_namespace_policy(remote.kube, remote.index.networkpolicies, remote_namespace, peers)
        else:
            ensure_namespace_policy(ctx.kube, ctx.index.networkpolicies, namespace, peers)
        return
    policy = render_network_policy(job, peers)
    if not cluster:
        ctx.kube.create_owned(policy, owner_reference(body))
        return
    remote = ctx.clusters[cluster]
    metadata = policy["metadata"]
    policy = {
        **policy,
        "metadata": {
            **metadata,
            "namespace": remote.remote_namespace(metadata["namespace"]),
            "labels": {**metadata.get("labels", {}), **managed_labels(body)},
        },
    }
    remote.kube.create_owned(policy, None)


def ensure_namespace_policy(kube: Any, held: Store[str], namespace: str, peers: list[Peer]) -> None:
    """Write the namespace's policy unless the watch-fed store holds it as rendered: one write per
    namespace, and again only when the peers change or the policy was deleted. What was written
    goes into the store at once (the next admission must not write it again)."""
    policy = render_namespace_network_policy(namespace, peers)
    digest = policy["metadata"]["annotations"][ANNOTATION_SPEC]
    if held.get((namespace, policy["metadata"]["name"])) == digest:
        return
    held.apply("MODIFIED", kube.apply_network_policy(policy), mark=False)


def ensure_finalizer(ctx: Ctx, body: dict[str, Any]) -> None:
    """A job dispatched to a worker cluster keeps FINALIZER until its RayJobs there are gone:
    set before the first remote create, so a delete in between cannot leak one."""
    metadata = body["metadata"]
    finalizers = list(metadata.get("finalizers") or [])
    if FINALIZER in finalizers:
        return
    written = ctx.kube.set_finalizers(
        metadata.get("namespace") or "default", metadata["name"], [*finalizers, FINALIZER]
    )
    metadata["finalizers"] = [*finalizers, FINALIZER]
    if written:
        ctx.index.transferjobs.apply("MODIFIED", written, mark=False)


def ensure_rayjob(
    ctx: Ctx,
    body: dict[str, Any],
    job: TransferJob,
    pool_name: str,
    pool: GPUPool,
    attempt: int,
    *,
    announce: bool = True,
) -> bool:
    """Create the attempt's RayJob unless it exists, in the pool's cluster; True when this call
    created it. `announce` posts a RayJobCreated event (admission folds it into its own event:
    one write fewer)."""
    job = with_storage_defaults(job, ctx.config.storage)
    cluster = pool.spec.cluster
    manifest = render_rayjob(
        job, PoolPin.of(pool_name, pool.spec), attempt, ttl_seconds=rayjob_ttl(ctx, pool), token_auth=True
    )
    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"]["namespace"]
    try:
        if cluster:
            ensure_finalizer(ctx, body)
        ensure_isolation(ctx, body, job, cluster)
        created = create_rayjob(ctx, manifest, body, cluster)
        remote_kube = ctx.clusters[cluster].kube if cluster else None
        if created:
            ensure_ray_token(ctx, job, created, remote_kube)
            if announce:
                where = f"{pool_name} in cluster {cluster}" if cluster else pool_name
                ctx.kube.post_event(
                    body, "Normal", Reason.RAYJOB_CREATED.value, f"created RayJob {name} on {where}"
                )
            return True
        if cluster:  # a repeat (its Secret may be missing); a stranger's RayJob is the sweep's
            remote = ctx.clusters[cluster]
            existing = remote.kube.get_rayjob(remote.remote_namespace(namespace), name) or {}
            if existing.get("metadata", {}).get("labels", {}).get(LABEL_ORIGIN_UID) == body["metadata"]["uid"]:
                ensure_ray_token(ctx, job, existing, remote.kube)
            return False
        # The name is taken: ours (a repeat: nothing to do), or a leftover of a deleted TransferJob
        # of the same name, which goes; the next reconcile pass then creates ours.
        existing = ctx.kube.get_rayjob(namespace, name) or {}
        owners = existing.get("metadata", {}).get("ownerReferences", [])
        if owners and all(o.get("uid") != body["metadata"]["uid"] for o in owners):
            delete_rayjob(ctx, namespace, name)
        elif existing:
            ensure_ray_token(ctx, job, existing)  # ours: its Secret may not have been created yet
        return False
    except Exception as error:
        if not cluster and namespace_terminating(error):  # the job goes with its namespace: nothing to report
            log.info("no RayJob %s/%s: the namespace is being deleted", namespace, name)
            return False
        metrics.RAYJOB_CREATE_ERRORS.inc()
        ctx.kube.post_event(
            body, "Warning", Reason.RAYJOB_CREATE_FAILED.value, f"creating the RayJob failed: {error}"
        )
        raise


ELASTIC_TTL_SECONDS = 30


def rayjob_ttl(ctx: Ctx, pool: GPUPool) -> int:
    """How long a finished RayJob keeps its Ray cluster: on an elastic pool at most
    ELASTIC_TTL_SECONDS, so that its pods go and the bought nodes, empty, are given back
    (the job's status and outputs are mirrored well within that time)."""
    if pool.spec.scaling is not None:
        return min(ctx.config.rayjob_ttl_seconds, ELASTIC_TTL_SECONDS)
    return ctx.config.rayjob_ttl_seconds
