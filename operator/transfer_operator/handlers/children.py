"""A TransferJob's child: its RayJob for the current attempt, created idempotently."""

from __future__ import annotations

from typing import Any

from transfer_operator import metrics
from transfer_operator.api.enums import Reason
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine.isolation import default_peers, render_network_policy
from transfer_operator.engine.rayjob import PoolPin, render_rayjob
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.kube import owner_reference
from transfer_operator.handlers.raytoken import ensure_ray_token
from transfer_operator.handlers.writes import create_rayjob, delete_rayjob


def ensure_isolation(ctx: Ctx, body: dict[str, Any], job: TransferJob) -> None:
    """The job's NetworkPolicy, owned by the TransferJob and kept across attempts (a repeat is a
    409). Each RayJob's token Secret is the RayJob's own (handlers/raytoken.py)."""
    peers = default_peers(ctx.lease_namespace, ctx.config.kuberay_namespace)
    ctx.kube.create_owned(render_network_policy(job, peers), owner_reference(body))


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
    """Create the attempt's RayJob unless it exists; True when this call created it. `announce`
    posts a RayJobCreated event (admission folds it into its own event: one write fewer)."""
    manifest = render_rayjob(
        job, PoolPin.of(pool_name, pool.spec), attempt, ttl_seconds=ctx.config.rayjob_ttl_seconds
    )
    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"]["namespace"]
    try:
        ensure_isolation(ctx, body, job)
        created = create_rayjob(ctx, manifest, owner_reference(body))
        if created:
            ensure_ray_token(ctx, job, created)
            if announce:
                ctx.kube.post_event(
                    body, "Normal", Reason.RAYJOB_CREATED.value, f"created RayJob {name} on {pool_name}"
                )
            return True
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
        metrics.RAYJOB_CREATE_ERRORS.inc()
        ctx.kube.post_event(
            body, "Warning", Reason.RAYJOB_CREATE_FAILED.value, f"creating the RayJob failed: {error}"
        )
        raise
