"""Jobs that hold GPUs, kept in step by the scheduling cycle once per reconcile interval: cost,
budget, suspend, and the RayJob (recreated if it never landed, mirrored, or lost).

One rolling pass over the fleet the cycle has already read, instead of a kopf timer per job: with
thousands of running jobs, per-object timers and their status writes were most of the
operator's CPU and of its API traffic. Each job has a fixed place on a circle (a hash of its
key); each cycle takes the arc the time since the last cycle covers, a whole turn per reconcile
interval, so every job comes once per interval and no cycle pays for the whole fleet (a full pass
made the slowest cycles of a stream, and so the tail of its admission latency). RayJob status
comes from the watch-fed index; only misses go to the API server. Besides its turn, the cycle
mirrors the jobs whose RayJob the watch reported changed: this is the only path that mirrors
RayJob status.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.enums import Phase
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine import transitions
from transfer_operator.engine.conditions import seconds_since
from transfer_operator.handlers.children import ensure_rayjob
from transfer_operator.handlers.clusters import usable
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.effects import perform
from transfer_operator.handlers.fleet import Fleet
from transfer_operator.handlers.outputs import read_manifest
from transfer_operator.handlers.rolling import Arc
from transfer_operator.scheduler.snapshot import requeue_backoff_s

log = logging.getLogger(__name__)
WRITE_CONCURRENCY = 16
# status.costSoFar is written this often (and at every phase change); budgets are checked from
# the computed total at every pass, so fewer writes cost no accuracy.
COST_WRITE_INTERVAL_S = 300.0
# Cost writes of one turn's share are capped at twice the even share (every job once per
# COST_WRITE_INTERVAL_S), most overdue first: jobs admitted together (thousands in one cycle)
# would otherwise all write their cost in the same pass, every 5 minutes, for ever.
MIN_COST_WRITES_PER_PASS = 20


def cost_writes_allowed(
    holding: list[tuple[str, dict[str, Any], TransferJob]], now: datetime, reconcile_interval_s: float
) -> set[str]:
    """Keys of the jobs whose periodic cost write goes out in this pass."""
    due = [
        (job.status.cost_accrued_at or job.status.admitted_at or "", key)
        for key, _, job in holding
        if cost_write_due(job, now)
    ]
    even_share = len(holding) * reconcile_interval_s / COST_WRITE_INTERVAL_S
    cap = max(MIN_COST_WRITES_PER_PASS, math.ceil(2 * even_share))
    return {key for _, key in sorted(due)[:cap]}


def reconcile_holding(
    ctx: Ctx, fleet: Fleet, now: datetime, arc: Arc, changed_rayjobs: set[tuple[str, str]]
) -> None:
    """Every job that holds GPUs whose place is in `arc` or whose RayJob is in `changed_rayjobs`,
    once; the fleet is updated with the phases that change."""
    now_s = now.timestamp()
    holding = [
        (key, body, job)
        for key, (body, job) in fleet.jobs.items()
        if job.status.phase.holds_capacity
        and job.status.ray_job_name
        and job.status.placement
        # a job in a worker cluster that does not answer is left alone: cluster loss moves it
        and usable(ctx, job.status.placement.cluster, now_s)
        and (key in arc or (job.metadata.namespace or "default", job.status.ray_job_name) in changed_rayjobs)
    ]
    rayjobs = current_rayjobs(ctx, [job for _, _, job in holding])
    # Only a job's turn writes its periodic cost, spread over turns; phase changes always bill.
    in_turn = [item for item in holding if item[0] in arc]
    billable = cost_writes_allowed(in_turn, now, ctx.config.reconcile_interval_seconds)

    def quiet(item: tuple[str, dict[str, Any], TransferJob]) -> bool:
        """Nothing to write and nothing to ask for this job now: not worth a writer's turn."""
        key, _, job = item
        rayjob = rayjobs.get(key)
        return (
            rayjob is not None
            and not job.spec.suspend
            and job.spec.budget is None
            and key not in billable  # (those are due)
            and transitions.mirrors_nothing(job, rayjob.get("status"))
        )

    def one(item: tuple[str, dict[str, Any], TransferJob]) -> None:
        key, body, job = item
        assert job.status.placement is not None
        pool = fleet.pools.get(job.status.placement.pool)
        try:
            fleet.jobs[key] = (
                body,
                reconcile_job(
                    ctx,
                    fleet,
                    body,
                    job,
                    rayjobs.get(key),
                    pool[1] if pool else None,
                    now,
                    bill=key in billable,
                ),
            )
        except Exception:  # one job's failure must not stop the pass
            log.exception("reconciling %s failed", key)
            metrics.RECONCILE_ERRORS.labels(stage="reconcile").inc()

    busy = [item for item in holding if not quiet(item)]
    if busy:
        with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY) as executor:
            list(executor.map(one, busy))


def current_rayjobs(ctx: Ctx, jobs: list[TransferJob]) -> dict[str, dict[str, Any]]:
    """Job key -> its current RayJob (name and status), for those that have one: from the
    watch-fed index; a miss is confirmed with a GET (the index never decides alone that a
    RayJob is gone)."""
    found: dict[str, dict[str, Any]] = {}
    for job in jobs:
        namespace, name = job.metadata.namespace or "default", job.status.ray_job_name or ""
        cluster = job.status.placement.cluster if job.status.placement else None
        kube, store = ctx.kube, ctx.index.rayjobs
        if cluster:
            remote = ctx.clusters[cluster]
            kube, store, namespace = remote.kube, remote.index.rayjobs, remote.remote_namespace(namespace)
        rayjob = store.get((namespace, name))
        if rayjob is None:
            rayjob = kube.get_rayjob(namespace, name)
            if rayjob is not None:
                store.apply("ADDED", rayjob, mark=False)
        if rayjob is not None:
            found[job.key] = rayjob
    return found


def reconcile_job(
    ctx: Ctx,
    fleet: Fleet,
    body: dict[str, Any],
    job: TransferJob,
    rayjob: dict[str, Any] | None,
    pool: GPUPool | None,
    now: datetime,
    *,
    bill: bool = True,
) -> TransferJob:
    """One job that holds GPUs, brought in step (suspend, budget, a lost or finished RayJob, cost);
    returns the job as the rest of the cycle must see it."""
    current = body.get("status") or {}
    assert job.status.placement is not None
    if job.spec.suspend:  # suspended while the cycle was admitting it
        return perform(ctx, body, job, transitions.suspend(job, current, now))

    total, _ = transitions.accrue_cost(job, now)
    budget = job.spec.budget
    horizon_s = ctx.config.reconcile_interval_seconds
    if budget is not None:
        # Stop before the next pass would spend past the budget: never overspend.
        next_pass = job.status.placement.usd_per_hour * horizon_s / 3600.0
        if total + next_pass >= budget.max_dollars:
            return perform(ctx, body, job, transitions.exceed_budget(job, current, total, horizon_s, now))
        fraction = ctx.config.budget_warning_fraction
        if total >= budget.max_dollars * fraction and not job.status.budget_warned:
            job = perform(ctx, body, job, transitions.warn_budget(job, total, fraction))

    backoff_s = requeue_backoff_s(job.status.attempts)
    if rayjob is None:
        if job.status.phase is Phase.ADMITTED:
            # Admitted but the RayJob never landed (e.g. the operator died in between): create it.
            # (A deleted or cordoned pool is failover's business, later in the cycle.)
            if pool is not None and job.status.placement is not None:
                ensure_rayjob(ctx, body, job, job.status.placement.pool, pool, job.status.attempts)
            return job
        return perform(ctx, body, job, transitions.lose_rayjob(job, current, now, requeue_after_s=backoff_s))

    rayjob_status = rayjob.get("status") or {}
    done = rayjob_status.get("jobStatus") == "SUCCEEDED" and job.status.phase is not Phase.SUCCEEDED
    change = transitions.mirror(job, current, rayjob_status, now, requeue_after_s=backoff_s,
                                manifest=read_manifest(job) if done else None)
    if not change and bill and cost_write_due(job, now):
        change = transitions.bill(job, now)
    return perform(ctx, body, job, change, fleet.pools)


def cost_write_due(job: TransferJob, now: datetime) -> bool:
    elapsed_s = seconds_since(job.status.cost_accrued_at or job.status.admitted_at, now) or 0.0
    return elapsed_s >= COST_WRITE_INTERVAL_S
