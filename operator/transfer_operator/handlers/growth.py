"""Growing running elastic gangs after a cycle's admissions (the rule: scheduler/growth.py).

A running job of minWorkers..maxWorkers that holds fewer than its most, admitted at least
`growAfterSeconds` ago, is restarted at the larger size the growth step gives it, in the same
pool, from its latest checkpoint (`transitions.resize`): the RayJob of the old size goes and one
of the new size comes, as the next attempt. The trainer maps its progress onto the new gang
(trainers' loop: the step of the same epoch position, the learning-rate schedule with it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from transfer_operator import metrics
from transfer_operator.api.enums import Phase, PriceClass, Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.engine import transitions
from transfer_operator.engine.conditions import seconds_since
from transfer_operator.engine.rayjob import rayjob_name
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.effects import perform
from transfer_operator.handlers.fleet import Fleet
from transfer_operator.scheduler import Action, Decision
from transfer_operator.scheduler.costmap import expected_hours
from transfer_operator.scheduler.from_api import allocation_of, seconds_of
from transfer_operator.scheduler.growth import Growth, Running, grow
from transfer_operator.scheduler.types import ClusterSnapshot, JobRequest

log = logging.getLogger(__name__)
STATIC_REASONS = (Reason.INVALID_SPEC, Reason.BUDGET_TOO_LOW)  # waits no capacity would end


def running_gang(
    job: TransferJob, now: datetime, grow_after_s: float, interruptions: Mapping[str, float]
) -> Running | None:
    """The job as the growth step sees it, when it may grow now; `interruptions` are the pools'
    spot interruption rates (the budget's horizon prices the rework in, as admission does)."""
    placement = job.status.placement
    if job.status.phase is not Phase.RUNNING or placement is None:
        return None
    fewest, most = job.spec.resources.worker_range
    if fewest == most:
        return None
    age = seconds_since(job.status.admitted_at, now)
    if age is None or age < grow_after_s:
        return None
    budget = job.spec.budget
    spent, _ = transitions.accrue_cost(job, now)
    return Running(
        key=job.key,
        pool=placement.pool,
        workers=job.held_workers,
        max_workers=most,
        gpus_per_worker=job.spec.resources.gpus_per_worker,
        usd_per_gpu_hour=placement.usd_per_gpu_hour,
        priority=job.spec.priority,
        admitted_at_s=seconds_of(job.status.admitted_at),
        budget_usd=None if budget is None else max(0.0, budget.max_dollars - spent),
        hours=expected_hours(
            job.spec.resources.estimated_hours,
            placement.gpu_type,
            placement.price_class is PriceClass.SPOT,
            interruptions.get(placement.pool, 0.0),
        ),
    )


def waiting_for_capacity(pending: Sequence[JobRequest], decisions: Iterable[Decision]) -> list[JobRequest]:
    by_key = {job.key: job for job in pending}
    return [
        by_key[d.job_key]
        for d in decisions
        if d.action is not Action.ADMIT and d.reason not in STATIC_REASONS and d.job_key in by_key
    ]


def grow_gangs(
    ctx: Ctx, fleet: Fleet, snapshot: ClusterSnapshot, pending: Sequence[JobRequest], decisions: Iterable[Decision], now: datetime
) -> list[Growth]:
    """Resize the gangs the growth step picks; `snapshot` is the cycle's, read before its
    admissions, which `fleet` now holds."""
    grow_after_s = ctx.config.grow_after_seconds
    if grow_after_s <= 0:
        return []
    rates = {pool.name: pool.spot_interruptions_per_hour for pool in snapshot.pools}
    running = [r for _, job in fleet.jobs.values() if (r := running_gang(job, now, grow_after_s, rates)) is not None]
    if not running:
        return []
    held = tuple(a for job in fleet.all_jobs() if (a := allocation_of(job)) is not None)
    after = dataclasses.replace(snapshot, allocations=held)
    growths = grow(after, running, waiting_for_capacity(pending, decisions))
    for growth in growths:
        try:
            grow_one(ctx, fleet, growth, now)
        except Exception:  # one job's failure must not stop the cycle
            log.exception("growing %s failed", growth.key)
            metrics.RECONCILE_ERRORS.labels(stage="grow").inc()
    return growths


def resize(ctx: Ctx, fleet: Fleet, key: str, workers: int, message: str, now: datetime) -> None:
    """Restart a held elastic gang at `workers` in its pool from its latest checkpoint: a growth,
    or a shrink that makes room for a higher-priority job (handlers/scheduling.py)."""
    body, job = fleet.jobs[key]
    placement = job.status.placement
    assert placement is not None
    gpus = workers * job.spec.resources.gpus_per_worker
    wire = placement.to_wire()
    wire.update(gpus=gpus, usdPerHour=round(placement.usd_per_gpu_hour * gpus, 4))
    name = rayjob_name(job.metadata.name, job.status.attempts + 1)
    change = transitions.resize(job, body.get("status") or {}, wire, name, message, now)
    fleet.jobs[key] = (body, perform(ctx, body, job, change, fleet.pools))
    metrics.GANG_RESIZES.inc()


def grow_one(ctx: Ctx, fleet: Fleet, growth: Growth, now: datetime) -> None:
    message = (
        f"grown from {growth.workers_from} to {growth.workers_to} workers on {growth.pool} (GPUs freed up); "
        "restarting from the latest checkpoint"
    )
    resize(ctx, fleet, growth.key, growth.workers_to, message, now)
