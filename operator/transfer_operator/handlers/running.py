"""Jobs that hold GPUs, kept in step by the scheduling cycle once per reconcile interval: cost,
budget, suspend, and the RayJob (recreated if it never landed, mirrored, or lost).

One pass over the fleet the cycle has already read, instead of a kopf timer per job: with
thousands of running jobs, per-object timers and their status writes were most of the
operator's CPU and of its API traffic. RayJob status comes from the watch-fed index; only
misses go to the API server. Between full passes the cycle mirrors the jobs whose RayJob the
watch reported changed: this is the only path that mirrors RayJob status.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.enums import Phase, Reason
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine.status import mirror_rayjob_status
from transfer_operator.handlers.children import ensure_rayjob
from transfer_operator.handlers.conditions import iso, phase_patch
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.fleet import Fleet, with_status
from transfer_operator.handlers.writes import delete_rayjob, write_job_status
from transfer_operator.scheduler.snapshot import requeue_backoff_s

log = logging.getLogger(__name__)
WRITE_CONCURRENCY = 16
# status.costSoFar is written this often (and at every phase change); budgets are checked from
# the computed total at every pass, so fewer writes cost no accuracy.
COST_WRITE_INTERVAL_S = 300.0


def accrue_cost(job: TransferJob, now: datetime) -> tuple[float, float]:
    """(total cost so far, dollars added since the last accrual) from the price class in use."""
    placement = job.status.placement
    if placement is None or not job.status.phase.holds_capacity:
        return job.status.cost_so_far, 0.0
    elapsed_s = metrics.seconds_since(job.status.cost_accrued_at or job.status.admitted_at, now) or 0.0
    added = placement.usd_per_hour * elapsed_s / 3600.0
    return job.status.cost_so_far + added, added


def reconcile_holding(
    ctx: Ctx, fleet: Fleet, now: datetime, *, only_rayjobs: set[tuple[str, str]] | None = None
) -> None:
    """Every job that holds GPUs (or those whose RayJob is in `only_rayjobs`), once; the fleet
    is updated with the phases that change."""
    holding = [
        (key, body, job)
        for key, (body, job) in fleet.jobs.items()
        if job.status.phase.holds_capacity
        and job.status.ray_job_name
        and job.status.placement
        and (only_rayjobs is None or (job.metadata.namespace or "default", job.status.ray_job_name) in only_rayjobs)
    ]
    rayjobs = current_rayjobs(ctx, [job for _, _, job in holding])

    def one(item: tuple[str, dict[str, Any], TransferJob]) -> None:
        key, body, job = item
        assert job.status.placement is not None
        pool = fleet.pools.get(job.status.placement.pool)
        try:
            status = reconcile_job(ctx, body, job, rayjobs.get(key), pool[1] if pool else None, now)
            if status:
                write_job_status(ctx, body, status)
                fleet.jobs[key] = (body, with_status(job, status))
        except Exception:  # one job's failure must not stop the pass
            log.exception("reconciling %s failed", key)
            metrics.RECONCILE_ERRORS.labels(stage="reconcile").inc()

    with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY) as executor:
        list(executor.map(one, holding))


def current_rayjobs(ctx: Ctx, jobs: list[TransferJob]) -> dict[str, dict[str, Any]]:
    """Job key -> its current RayJob (name and status), for those that have one: from the
    watch-fed index; a miss is confirmed with a GET (the index never decides alone that a
    RayJob is gone)."""
    found: dict[str, dict[str, Any]] = {}
    for job in jobs:
        namespace, name = job.metadata.namespace or "default", job.status.ray_job_name or ""
        rayjob = ctx.index.rayjobs.get((namespace, name))
        if rayjob is None:
            rayjob = ctx.kube.get_rayjob(namespace, name)
            if rayjob is not None:
                ctx.index.rayjobs.apply("ADDED", rayjob, mark=False)
        if rayjob is not None:
            found[job.key] = rayjob
    return found


def reconcile_job(
    ctx: Ctx,
    body: dict[str, Any],
    job: TransferJob,
    rayjob: dict[str, Any] | None,
    pool: GPUPool | None,
    now: datetime,
) -> dict[str, Any]:
    """The status change (possibly none) for one job that holds GPUs; deletes or creates its
    RayJob and posts events as needed."""
    namespace = job.metadata.namespace or "default"
    current = dict(body.get("status") or {})
    rayjob_name = job.status.ray_job_name or ""
    assert job.status.placement is not None
    if job.spec.suspend:  # suspended while the cycle was admitting it
        delete_rayjob(ctx, namespace, rayjob_name)
        message = "spec.suspend is true; RayJob deleted, checkpoints kept"
        suspended = phase_patch(current, Phase.SUSPENDED, Reason.SUSPENDED, message, now)
        return {**suspended, "placement": None, **cost_fields(job, now)}

    total, _ = accrue_cost(job, now)
    budget = job.spec.budget
    if budget is not None:
        # Stop before the next pass would spend past the budget: never overspend.
        next_pass = job.status.placement.usd_per_hour * ctx.config.reconcile_interval_seconds / 3600.0
        if total + next_pass >= budget.max_dollars:
            delete_rayjob(ctx, namespace, rayjob_name)
            message = (
                f"spent ${total:.2f} of the ${budget.max_dollars:.2f} budget (the next "
                f"{ctx.config.reconcile_interval_seconds:g} s would pass it); stopped, checkpoint kept"
            )
            ctx.kube.post_event(body, "Warning", Reason.BUDGET_EXCEEDED.value, message)
            failed = phase_patch(current, Phase.FAILED, Reason.BUDGET_EXCEEDED, message, now)
            return {**failed, **cost_fields(job, now)}

    status: dict[str, Any] = {}
    warn_at = None if budget is None else budget.max_dollars * ctx.config.budget_warning_fraction
    if budget is not None and warn_at is not None and total >= warn_at and not job.status.budget_warned:
        status["budgetWarned"] = True
        message = (
            f"spent ${total:.2f}, {ctx.config.budget_warning_fraction:.0%} of the "
            f"${budget.max_dollars:.2f} budget"
        )
        ctx.kube.post_event(body, "Warning", Reason.BUDGET_WARNING.value, message)

    if rayjob is None:
        if job.status.phase is Phase.ADMITTED:
            # Admitted but the RayJob never landed (e.g. the operator died in between): create it.
            # (A deleted or cordoned pool is failover's business, later in the cycle.)
            if pool is not None:
                ensure_rayjob(ctx, body, job, job.status.placement.pool, pool, job.status.attempts)
            return status
        message = f"RayJob {rayjob_name} disappeared; back in the queue"
        ctx.kube.post_event(body, "Warning", Reason.RAYJOB_LOST.value, message)
        lost = phase_patch(current, Phase.PREEMPTED, Reason.RAYJOB_LOST, message, now)
        delay_s = requeue_backoff_s(job.status.attempts)
        metrics.PREEMPTIONS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        metrics.FAILOVERS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        return {
            **status,
            **lost,
            "placement": None,
            "requeueAfter": iso(now + timedelta(seconds=delay_s)),
            **cost_fields(job, now),
        }

    status.update(mirror_patch(ctx, body, job, rayjob, now))
    if "costSoFar" not in status and cost_write_due(job, now):
        status.update(cost_fields(job, now))
    return status


def cost_write_due(job: TransferJob, now: datetime) -> bool:
    elapsed_s = metrics.seconds_since(job.status.cost_accrued_at or job.status.admitted_at, now) or 0.0
    return elapsed_s >= COST_WRITE_INTERVAL_S


def cost_fields(job: TransferJob, now: datetime) -> dict[str, Any]:
    """Bill up to `now`: costSoFar and costAccruedAt, and the namespace's cost counter."""
    total, added = accrue_cost(job, now)
    if added <= 0:
        return {}
    metrics.JOB_COST.labels(namespace=job.metadata.namespace or "default").inc(added)
    return {"costSoFar": round(total, 6), "costAccruedAt": iso(now)}


def mirror_patch(
    ctx: Ctx, body: Any, job: TransferJob, rayjob: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The status change (possibly none) that mirrors a RayJob into its TransferJob."""
    phase = job.status.phase
    if not rayjob.get("status"):
        return {}  # KubeRay has not picked it up yet: nothing new to say
    mirrored = mirror_rayjob_status(rayjob.get("status"))
    if mirrored.phase is phase and job.status.message == mirrored.message:
        return {}
    status = phase_patch(
        dict(body.get("status") or {}), mirrored.phase, mirrored.reason, mirrored.message, now
    )
    if not mirrored.phase.holds_capacity:
        # The GPUs are released now: bill up to this moment.
        status.update(cost_fields(job, now))
    if mirrored.phase is Phase.PREEMPTED:
        delete_rayjob(ctx, job.metadata.namespace or "default", rayjob["metadata"]["name"])
        status["placement"] = None
        status["requeueAfter"] = iso(now + timedelta(seconds=requeue_backoff_s(job.status.attempts)))
        metrics.PREEMPTIONS.labels(reason=Reason.RAYJOB_LOST.value).inc()
        metrics.FAILOVERS.labels(reason=Reason.RAYJOB_LOST.value).inc()
    if mirrored.phase is not phase:
        kind = "Warning" if mirrored.phase in (Phase.FAILED, Phase.PREEMPTED) else "Normal"
        ctx.kube.post_event(body, kind, mirrored.reason.value, mirrored.message)
    return status
