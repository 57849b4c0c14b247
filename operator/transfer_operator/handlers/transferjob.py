"""kopf handlers of TransferJobs: validate on create/update, reconcile on a timer. Thin: parse,
call the core, write status through `patch`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from transfer_operator import metrics
from transfer_operator.api.enums import GROUP, VERSION, Phase, Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.api.validation import InvalidSpec, parse_transferjob
from transfer_operator.engine.status import mirror_rayjob_status
from transfer_operator.handlers.conditions import iso, phase_patch
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.scheduling import ensure_rayjob, read_fleet
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
def validate(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    """Semantic checks the CRD schema cannot express; a bad spec gets InvalidSpec, never a crash."""
    now = datetime.now(UTC)
    try:
        job = parse_transferjob(_document(body))
    except InvalidSpec as error:
        message = "invalid spec: " + "; ".join(error.problems)
        patch.status.update(phase_patch(dict(status), Phase.PENDING, Reason.INVALID_SPEC, message, now))
        kopf.warn(body, reason=Reason.INVALID_SPEC.value, message=message)
        return
    current = job.status.phase
    if job.spec.suspend and current not in (Phase.SUSPENDED, Phase.SUCCEEDED, Phase.FAILED):
        patch.status.update(
            phase_patch(dict(status), Phase.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true", now)
        )
        return
    if not job.spec.suspend and current is Phase.SUSPENDED:
        patch.status.update(
            phase_patch(
                dict(status), Phase.PENDING, Reason.NO_FITTING_POOL, "resumed; waiting for a pool", now
            )
        )
        return
    if not status.get("phase"):
        patch.status.update(
            phase_patch(dict(status), Phase.PENDING, Reason.NO_FITTING_POOL, "waiting for the scheduler", now)
        )


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


@kopf.timer(GROUP, VERSION, "transferjobs", id="reconcile", interval=5.0, when=_holds_capacity)
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
    if phase.holds_capacity and job.spec.suspend and rayjob_name:
        ctx.kube.delete_rayjob(namespace, rayjob_name)
        patch.status.update(
            phase_patch(
                dict(body.status),
                Phase.SUSPENDED,
                Reason.SUSPENDED,
                "spec.suspend is true; RayJob deleted, checkpoint kept",
                now,
            )
        )
        patch.status["placement"] = None
        return
    if not phase.holds_capacity or not rayjob_name or job.status.placement is None:
        return

    total, added = accrue_cost(job, now)
    patch.status["costSoFar"] = round(total, 6)
    patch.status["costAccruedAt"] = iso(now)
    if added > 0:
        metrics.JOB_COST.labels(namespace=namespace).inc(added)
    budget = job.spec.budget
    warn_at = None if budget is None else budget.max_dollars * ctx.config.budget_warning_fraction
    if warn_at is not None and total >= warn_at and not job.status.budget_warned:
        patch.status["budgetWarned"] = True
        kopf.warn(body, reason=Reason.BUDGET_WARNING.value,
                  message=f"spent ${total:.2f}, {ctx.config.budget_warning_fraction:.0%} of the "
                          f"${budget.max_dollars:.2f} budget")
    if budget is not None and total >= budget.max_dollars:
        ctx.kube.delete_rayjob(namespace, rayjob_name)
        message = f"spent ${total:.2f} of the ${budget.max_dollars:.2f} budget; stopped, checkpoint kept"
        patch.status.update(
            phase_patch(dict(body.status), Phase.FAILED, Reason.BUDGET_EXCEEDED, message, now)
        )
        kopf.warn(body, reason=Reason.BUDGET_EXCEEDED.value, message=message)
        return

    rayjob = ctx.kube.get_rayjob(namespace, rayjob_name)
    if rayjob is None:
        if phase is Phase.ADMITTED:
            # Admitted but the RayJob never landed (e.g. the operator died in between): create it.
            fleet = read_fleet(ctx)
            entry = fleet.pools.get(job.status.placement.pool)
            if entry is not None:
                ensure_rayjob(ctx, dict(body), job, entry[1].metadata.name, entry[1], job.status.attempts)
            return
        message = f"RayJob {rayjob_name} disappeared; back in the queue"
        patch.status.update(phase_patch(dict(body.status), Phase.PREEMPTED, Reason.RAYJOB_LOST, message, now))
        patch.status["placement"] = None
        patch.status["requeueAfter"] = iso(now + timedelta(seconds=requeue_backoff_s(job.status.attempts)))
        metrics.PREEMPTIONS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        metrics.FAILOVERS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        return
    mirrored = mirror_rayjob_status(rayjob.get("status"))
    if mirrored.phase is not phase or job.status.message != mirrored.message:
        patch.status.update(
            phase_patch(dict(body.status), mirrored.phase, mirrored.reason, mirrored.message, now)
        )
        if mirrored.phase is Phase.PREEMPTED:
            ctx.kube.delete_rayjob(namespace, rayjob_name)
            patch.status["placement"] = None
            patch.status["requeueAfter"] = iso(now + timedelta(seconds=requeue_backoff_s(job.status.attempts)))
            metrics.PREEMPTIONS.labels(reason=Reason.RAYJOB_LOST.value).inc()
            metrics.FAILOVERS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        if mirrored.phase is not phase:
            kind = "Warning" if mirrored.phase in (Phase.FAILED, Phase.PREEMPTED) else "Normal"
            kopf.event(body, type=kind, reason=mirrored.reason.value, message=mirrored.message)
