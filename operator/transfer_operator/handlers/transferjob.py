"""kopf handlers of TransferJobs: validate on create/update, reconcile on a timer. Thin: parse,
call the core, write status through `patch`."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from transfer_operator import metrics
from transfer_operator.api.enums import GROUP, VERSION, ConditionType, Phase, Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob
from transfer_operator.engine.rayjob import LABEL_MANAGED_BY, MANAGER
from transfer_operator.engine.status import mirror_rayjob_status
from transfer_operator.handlers.conditions import iso, phase_patch, upsert_condition
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.scheduling import ensure_rayjob
from transfer_operator.scheduler.snapshot import requeue_backoff_s

log = logging.getLogger(__name__)


def _document(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.status),
    }


@kopf.on.resume(GROUP, VERSION, "transferjobs", id="validate")
@kopf.on.create(GROUP, VERSION, "transferjobs", id="validate")
@kopf.on.update(GROUP, VERSION, "transferjobs", id="validate", field="spec")
def validate(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    """Semantic checks the CRD schema cannot express, and spec.suspend. A bad spec gets
    InvalidSpec, never a crash; a running job keeps running on the spec it started with."""
    now = datetime.now(UTC)
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    try:
        job = parse_transferjob(_document(body))
    except InvalidSpec as error:
        message = "invalid spec: " + "; ".join(error.problems)
        if phase.holds_capacity or phase.is_terminal:
            conditions = upsert_condition(
                list(status.get("conditions") or []),
                ConditionType.READY,
                False,
                Reason.INVALID_SPEC,
                message,
                now,
            )
            patch.status.update(conditions=conditions, message=message)
        else:
            patch.status.update(phase_patch(dict(status), Phase.PENDING, Reason.INVALID_SPEC, message, now))
        kopf.warn(body, reason=Reason.INVALID_SPEC.value, message=message)
        return
    if job.spec.suspend and phase not in (Phase.SUSPENDED, Phase.SUCCEEDED, Phase.FAILED):
        message = "spec.suspend is true"
        if phase.holds_capacity and job.status.ray_job_name:
            ctx: Ctx = memo.ctx
            ctx.kube.delete_rayjob(job.metadata.namespace or "default", job.status.ray_job_name)
            message += "; RayJob deleted, checkpoints kept"
        patch.status.update(phase_patch(dict(status), Phase.SUSPENDED, Reason.SUSPENDED, message, now))
        patch.status["placement"] = None
        return
    if not job.spec.suspend and phase is Phase.SUSPENDED:
        patch.status.update(
            phase_patch(
                dict(status), Phase.PENDING, Reason.NO_FITTING_POOL, "resumed; waiting for a pool", now
            )
        )
    # A new job is left alone: no phase means Pending, and the scheduling cycle owns that status
    # (writing "Pending" here could land after the cycle's "Admitted" and undo it).


def accrue_cost(job: TransferJob, now: datetime) -> tuple[float, float]:
    """(total cost so far, dollars added since the last accrual) from the price class in use."""
    placement = job.status.placement
    if placement is None or not job.status.phase.holds_capacity:
        return job.status.cost_so_far, 0.0
    elapsed_s = metrics.seconds_since(job.status.cost_accrued_at or job.status.admitted_at, now) or 0.0
    added = placement.usd_per_hour * elapsed_s / 3600.0
    return job.status.cost_so_far + added, added


def _holds_capacity(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") in (Phase.ADMITTED.value, Phase.RUNNING.value)


RECONCILE_INTERVAL_S = float(os.environ.get("TRANSFER_RECONCILE_INTERVAL_SECONDS", "10"))


@kopf.timer(
    GROUP, VERSION, "transferjobs", id="reconcile", interval=RECONCILE_INTERVAL_S, when=_holds_capacity
)
def reconcile(body: kopf.Body, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    """Keep the RayJob and the TransferJob in step: recreate a missing RayJob, mirror its
    status, accrue cost, enforce the budget, honour spec.suspend."""
    ctx: Ctx = memo.ctx
    now = datetime.now(UTC)
    try:
        job = parse_transferjob(_document(body))
    except InvalidSpec:
        return
    phase = job.status.phase
    namespace = job.metadata.namespace or "default"
    rayjob_name = job.status.ray_job_name
    if not phase.holds_capacity or not rayjob_name or job.status.placement is None:
        return
    if job.spec.suspend:  # suspended while the cycle was admitting it
        ctx.kube.delete_rayjob(namespace, rayjob_name)
        patch.status.update(
            phase_patch(
                dict(body.status),
                Phase.SUSPENDED,
                Reason.SUSPENDED,
                "spec.suspend is true; RayJob deleted, checkpoints kept",
                now,
            )
        )
        patch.status["placement"] = None
        return

    total, added = accrue_cost(job, now)
    if added >= 0.01:  # fewer writes: a cent at a time is precise enough for budgets
        patch.status["costSoFar"] = round(total, 6)
        patch.status["costAccruedAt"] = iso(now)
        metrics.JOB_COST.labels(namespace=namespace).inc(added)
    budget = job.spec.budget
    warn_at = None if budget is None else budget.max_dollars * ctx.config.budget_warning_fraction
    if budget is not None and warn_at is not None and total >= warn_at and not job.status.budget_warned:
        patch.status["budgetWarned"] = True
        kopf.warn(
            body,
            reason=Reason.BUDGET_WARNING.value,
            message=f"spent ${total:.2f}, {ctx.config.budget_warning_fraction:.0%} of the "
            f"${budget.max_dollars:.2f} budget",
        )
    if budget is not None and total >= budget.max_dollars:
        ctx.kube.delete_rayjob(namespace, rayjob_name)
        message = f"spent ${total:.2f} of the ${budget.max_dollars:.2f} budget; stopped, checkpoint kept"
        patch.status.update(
            phase_patch(dict(body.status), Phase.FAILED, Reason.BUDGET_EXCEEDED, message, now)
        )
        kopf.warn(body, reason=Reason.BUDGET_EXCEEDED.value, message=message)
        return

    rayjob = ctx.rayjobs.get(namespace, rayjob_name) or ctx.kube.get_rayjob(namespace, rayjob_name)
    if rayjob is None:
        if phase is Phase.ADMITTED:
            # Admitted but the RayJob never landed (e.g. the operator died in between): create it.
            # Only the job's pool is needed: not the whole fleet's TransferJobs.
            pool_name = job.status.placement.pool
            pools = [p for p in ctx.kube.list_gpupools() if p["metadata"]["name"] == pool_name]
            try:
                pool = parse_gpupool(pools[0]) if pools else None
            except InvalidSpec:
                pool = None  # the cycle logs and skips it too
            if pool is not None:
                ensure_rayjob(ctx, dict(body), job, pool_name, pool, job.status.attempts)
            return
        message = f"RayJob {rayjob_name} disappeared; back in the queue"
        patch.status.update(phase_patch(dict(body.status), Phase.PREEMPTED, Reason.RAYJOB_LOST, message, now))
        patch.status["placement"] = None
        patch.status["requeueAfter"] = iso(now + timedelta(seconds=requeue_backoff_s(job.status.attempts)))
        metrics.PREEMPTIONS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        metrics.FAILOVERS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        return
    patch.status.update(mirror_patch(ctx, body, job, rayjob, now))


def mirror_patch(
    ctx: Ctx, body: Any, job: TransferJob, rayjob: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The status change (possibly none) that mirrors a RayJob into its TransferJob."""
    phase = job.status.phase
    mirrored = mirror_rayjob_status(rayjob.get("status"))
    if mirrored.phase is phase and job.status.message == mirrored.message:
        return {}
    status = phase_patch(
        dict(body.get("status") or {}), mirrored.phase, mirrored.reason, mirrored.message, now
    )
    if not mirrored.phase.holds_capacity:
        # The GPUs are released now: bill up to this moment, not to the last cent-sized write.
        total, added = accrue_cost(job, now)
        if added > 0:
            status.update(costSoFar=round(total, 6), costAccruedAt=iso(now))
            metrics.JOB_COST.labels(namespace=job.metadata.namespace or "default").inc(added)
    if mirrored.phase is Phase.PREEMPTED:
        ctx.kube.delete_rayjob(job.metadata.namespace or "default", rayjob["metadata"]["name"])
        status["placement"] = None
        status["requeueAfter"] = iso(now + timedelta(seconds=requeue_backoff_s(job.status.attempts)))
        metrics.PREEMPTIONS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        metrics.FAILOVERS.labels(reason=Reason.RAYJOB_LOST.value).inc()
    if mirrored.phase is not phase:
        kind = "Warning" if mirrored.phase in (Phase.FAILED, Phase.PREEMPTED) else "Normal"
        ctx.kube.post_event(body, kind, mirrored.reason.value, mirrored.message)
    return status


@kopf.on.event("ray.io", "v1", "rayjobs", labels={LABEL_MANAGED_BY: MANAGER})
def mirror_rayjob(body: kopf.Body, type: str | None, memo: Any, **_: Any) -> None:
    """Mirror a RayJob's status as soon as it changes (the timer is the fallback)."""
    ctx: Ctx | None = getattr(memo, "ctx", None)
    if ctx is not None:
        ctx.rayjobs.observe(type, body)
    owners = [o for o in body.metadata.get("ownerReferences", []) if o.get("kind") == "TransferJob"]
    if ctx is None or not owners or not body.get("status"):
        return
    namespace = body.metadata.namespace or "default"
    owner = ctx.kube.get_transferjob(namespace, owners[0]["name"])
    if owner is None:
        return
    try:
        job = parse_transferjob(owner)
    except InvalidSpec:
        return
    if job.status.ray_job_name != body.metadata.name or not job.status.phase.holds_capacity:
        return
    status = mirror_patch(ctx, owner, job, dict(body), datetime.now(UTC))
    if status:
        ctx.kube.patch_transferjob_status(namespace, job.metadata.name, status)
