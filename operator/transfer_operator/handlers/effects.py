"""Perform a transition (engine/transitions.py) for the scheduling cycle: delete, write status,
create, post events, in that order, each written through to the index; count what it counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine.transitions import CreateRayJob, DeleteRayJob, Event, Transition
from transfer_operator.handlers.children import ensure_rayjob
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.fleet import with_status
from transfer_operator.handlers.writes import delete_rayjob, write_job_status


def perform(
    ctx: Ctx,
    body: dict[str, Any],
    job: TransferJob,
    transition: Transition,
    pools: Mapping[str, tuple[dict[str, Any], GPUPool]] | None = None,
) -> TransferJob:
    """Carry out `transition`; returns the job as the rest of the cycle must see it (`job`
    itself when no status was written: none to write, or the job is gone)."""
    if not transition:
        return job
    namespace = job.metadata.namespace or "default"
    cluster = job.status.placement.cluster if job.status.placement else None  # where the attempt runs
    for effect in transition.effects:
        if isinstance(effect, DeleteRayJob):
            delete_rayjob(ctx, namespace, effect.name, cluster)
    after = job
    if transition.status:
        if not write_job_status(ctx, body, transition.status):
            return job  # deleted meanwhile: no RayJob for it, no event on it
        after = with_status(job, transition.status)
    for effect in transition.effects:
        if isinstance(effect, CreateRayJob):
            entry = (pools or {}).get(effect.pool)
            if entry is not None:
                ensure_rayjob(ctx, body, after, effect.pool, entry[1], effect.attempt, announce=False)
    for effect in transition.effects:
        if isinstance(effect, Event):
            ctx.kube.post_event(body, effect.type, effect.reason.value, effect.message)
    if transition.billed_usd > 0:
        metrics.JOB_COST.labels(namespace=namespace).inc(transition.billed_usd)
    if transition.preempted is not None:
        metrics.PREEMPTIONS.labels(reason=transition.preempted.value).inc()
    if transition.failover is not None:
        metrics.FAILOVERS.labels(reason=transition.failover.value).inc()
    return after


def perform_on_body(ctx: Ctx, body: dict[str, Any], transition: Transition) -> None:
    """A transition of a job that could not be parsed (a bad spec): it holds nothing, so only
    its status and events are written."""
    assert not any(isinstance(e, (DeleteRayJob, CreateRayJob)) for e in transition.effects), transition
    if transition.status and not write_job_status(ctx, body, transition.status):
        return
    for effect in transition.effects:
        if isinstance(effect, Event):
            ctx.kube.post_event(body, effect.type, effect.reason.value, effect.message)
