"""The scheduling cycle: list the fleet, call the pure scheduler, write its decisions.

One cycle handles every queued job at once (not one decision per event). Only the holder of
the scheduler Lease runs it, so two replicas never double-schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.enums import ConditionType, Phase, Reason
from transfer_operator.api.models import PlacementStatus, TransferJob
from transfer_operator.engine.rayjob import checkpoint_storage, label_value, rayjob_name
from transfer_operator.handlers.children import ensure_rayjob
from transfer_operator.handlers.conditions import iso, phase_patch, upsert_condition
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.fleet import Fleet, read_fleet, with_status
from transfer_operator.handlers.running import reconcile_holding
from transfer_operator.scheduler import Action, Decision, schedule
from transfer_operator.scheduler.snapshot import requeue_backoff_s, snapshot_of

log = logging.getLogger(__name__)
LEASE_NAME = "transfer-operator-scheduler"
WRITE_CONCURRENCY = 16


def run_cycle(ctx: Ctx, now: datetime) -> list[Decision]:
    started = time.perf_counter()
    with metrics.CYCLE_STAGE_DURATION.labels(stage="read").time():
        fleet = read_fleet(ctx)
    if now.timestamp() - ctx.last_reconcile_s >= ctx.config.reconcile_interval_seconds:
        with metrics.CYCLE_STAGE_DURATION.labels(stage="reconcile").time():
            reconcile_holding(ctx, fleet, now)  # first: GPUs it frees are placed in this cycle
        ctx.last_reconcile_s = now.timestamp()
    release_lost_capacity(ctx, fleet, now)
    give_up_exhausted(ctx, fleet, now)
    snapshot, pending = snapshot_of(
        (pool for _, pool in fleet.pools.values()),
        (job for _, job in fleet.jobs.values()),
        ctx.config,
        now_s=now.timestamp(),
        lost_nodes={pool: len(losses) for pool, losses in fleet.lost_nodes.items()},
    )
    with metrics.CYCLE_STAGE_DURATION.labels(stage="decide").time(), collector_paused():
        decisions = schedule(snapshot, pending)

    def apply(decision: Decision) -> None:
        body, job = fleet.jobs[decision.job_key]
        try:
            apply_decision(ctx, fleet, body, job, decision, now)
        except Exception:  # one job's failure must not stop the cycle
            log.exception("applying the decision for %s failed", decision.job_key)
            metrics.RECONCILE_ERRORS.labels(stage="admit").inc()

    # Decisions touch disjoint objects (a victim belongs to one preemptor), so write them in parallel.
    with metrics.CYCLE_STAGE_DURATION.labels(stage="write").time():
        with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY) as pool:
            list(pool.map(apply, decisions))
        write_pool_status(ctx, fleet)
    metrics.record_cycle(
        decisions, fleet_jobs=[job for _, job in fleet.jobs.values()], seconds=time.perf_counter() - started
    )
    return decisions


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """A cycle builds a few objects per job and frees almost none before it returns, so the cyclic
    garbage collector would only rescan them again and again (a fifth of a 100k-job cycle)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def release_lost_capacity(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    """Jobs whose pool was deleted or cordoned, or whose pods sit on a lost node, go back to the
    queue at once (failover), to be placed on capacity that is still there."""
    for key, (body, job) in list(fleet.jobs.items()):
        placement = job.status.placement
        if placement is None or not job.status.phase.holds_capacity:
            continue
        entry = fleet.pools.get(placement.pool)
        attempt = (
            job.metadata.namespace or "default",
            label_value(job.metadata.name),
            str(job.status.attempts),
        )
        node_loss = fleet.job_losses.get(attempt)
        if entry is None or entry[1].spec.cordoned:
            why = "was deleted" if entry is None else "was cordoned"
            reason, message = Reason.POOL_LOST, f"pool {placement.pool} {why}"
        elif node_loss is not None:
            reason, message = node_loss.reason, f"{node_loss.detail} (pool {placement.pool})"
        else:
            continue
        message += "; back in the queue, resuming from the last checkpoint"
        status = preempt(ctx, body, job, reason, message, now, backoff=False)
        metrics.FAILOVERS.labels(reason=reason.value).inc()
        fleet.jobs[key] = (body, with_status(job, status))


def give_up_exhausted(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    """A preempted job that used all its attempts fails, with the reason, instead of waiting forever."""
    for key, (body, job) in list(fleet.jobs.items()):
        if job.status.phase is not Phase.PREEMPTED or job.status.attempts < job.spec.max_attempts:
            continue
        message = (
            f"preempted after {job.status.attempts} of spec.maxAttempts={job.spec.max_attempts} placements; "
            f"checkpoints kept at {job.status.last_checkpoint or '(none yet)'}; raise maxAttempts to retry"
        )
        status = phase_patch(body.get("status") or {}, Phase.FAILED, Reason.MAX_ATTEMPTS, message, now)
        ctx.kube.patch_transferjob_status(job.metadata.namespace or "default", job.metadata.name, status)
        ctx.kube.post_event(body, "Warning", Reason.MAX_ATTEMPTS.value, message)
        fleet.jobs[key] = (body, with_status(job, status))


def preempt(
    ctx: Ctx,
    body: dict[str, Any],
    job: TransferJob,
    reason: Reason,
    message: str,
    now: datetime,
    *,
    backoff: bool = True,
) -> dict[str, Any]:
    """Stop the job's RayJob and put it back in the queue (after a backoff, unless it lost its
    pool: then it fails over at once); its checkpoints stay. Returns the status written."""
    namespace = job.metadata.namespace or "default"
    if job.status.ray_job_name:
        ctx.kube.delete_rayjob(namespace, job.status.ray_job_name)
    status = phase_patch(body.get("status") or {}, Phase.PREEMPTED, reason, message, now)
    status["placement"] = None
    delay_s = requeue_backoff_s(job.status.attempts) if backoff else 0.0
    status["requeueAfter"] = iso(now + timedelta(seconds=delay_s))
    ctx.kube.patch_transferjob_status(namespace, job.metadata.name, status)
    ctx.kube.post_event(body, "Warning", reason.value, message)
    metrics.PREEMPTIONS.labels(reason=reason.value).inc()
    return status


def apply_decision(
    ctx: Ctx, fleet: Fleet, body: dict[str, Any], job: TransferJob, decision: Decision, now: datetime
) -> None:
    namespace = job.metadata.namespace or "default"
    current = body.get("status") or {}
    if decision.action is Action.ADMIT:
        assert decision.placement is not None
        placement = decision.placement
        attempt = job.status.attempts + 1
        name = rayjob_name(job.metadata.name, attempt)
        status = phase_patch(current, Phase.ADMITTED, Reason.ADMITTED, decision.message, now)
        status.update(
            placement={
                "pool": placement.pool,
                "region": placement.region,
                "zone": placement.zone,
                "gpuType": placement.gpu_type,
                "priceClass": placement.price_class.value,
                "usdPerGpuHour": placement.usd_per_gpu_hour,
                "usdPerHour": round(placement.usd_per_hour, 4),
                "gpus": placement.gpus,
            },
            rayJobName=name,  # the child's name is in status before the child exists
            lastCheckpoint=checkpoint_storage(job),
            attempts=attempt,
            admittedAt=iso(now),
            costAccruedAt=iso(now),
        )
        ctx.kube.patch_transferjob_status(namespace, job.metadata.name, status)
        admitted = job.model_copy(
            update={
                "status": job.status.model_copy(
                    update={
                        "attempts": attempt,
                        "phase": Phase.ADMITTED,
                        "placement": PlacementStatus.model_validate(status["placement"]),
                    }
                )
            }
        )
        fleet.jobs[job.key] = (body, admitted)  # this cycle's pool status counts it
        pool = fleet.pools[placement.pool][1]
        created = ensure_rayjob(ctx, body, admitted, placement.pool, pool, attempt, announce=False)
        message = f"{decision.message}; created RayJob {name}" if created else decision.message
        ctx.kube.post_event(body, "Normal", Reason.ADMITTED.value, message)
        waited_s = metrics.seconds_since(job.metadata.creation_timestamp, now)
        if waited_s is not None:
            metrics.ADMISSION_LATENCY.observe(waited_s)
        return
    if decision.action is Action.PREEMPT:
        for victim_key in decision.victims:
            victim_body, victim = fleet.jobs[victim_key]
            message = f"preempted by higher-priority {job.key}; back in the queue with its checkpoint"
            status = preempt(ctx, victim_body, victim, Reason.PREEMPTED, message, now)
            fleet.jobs[victim_key] = (victim_body, with_status(victim, status))
    # Waiting (or waiting for victims): write only what changed, to keep the API server quiet.
    ready = next((c for c in job.status.conditions if c.type == ConditionType.READY.value), None)
    if ready is not None and ready.reason == decision.reason.value and ready.message == decision.message:
        return
    status = {
        "message": decision.message,
        "conditions": upsert_condition(
            list(current.get("conditions") or []),
            ConditionType.READY,
            False,
            decision.reason,
            decision.message,
            now,
        ),
    }
    if not current.get("phase"):
        status["phase"] = Phase.PENDING.value
    ctx.kube.patch_transferjob_status(namespace, job.metadata.name, status)
    if ready is None or ready.reason != decision.reason.value:
        kind = "Warning" if decision.reason in (Reason.INVALID_SPEC, Reason.BUDGET_TOO_LOW) else "Normal"
        ctx.kube.post_event(body, kind, decision.reason.value, decision.message)


def write_pool_status(ctx: Ctx, fleet: Fleet) -> None:
    held: dict[str, tuple[int, int]] = {}
    for _, job in fleet.jobs.values():
        placement = job.status.placement
        if placement is not None and job.status.phase.holds_capacity:
            gpus, count = held.get(placement.pool, (0, 0))
            held[placement.pool] = (gpus + placement.gpus, count + 1)
    for name, (body, pool) in fleet.pools.items():
        allocated, jobs = held.get(name, (0, 0))
        lost = len(fleet.lost_nodes.get(name, []))
        capacity = max(0, pool.spec.nodes - lost) * pool.spec.gpus_per_node
        status = {
            "allocatedGpus": allocated,
            "freeGpus": max(0, capacity - allocated),
            "utilization": round(allocated / capacity, 4) if capacity else 0.0,
            "jobs": jobs,
            "health": "Cordoned" if pool.spec.cordoned else "Degraded" if lost else "Healthy",
            "lostNodes": lost,
        }
        metrics.record_pool(pool, allocated)
        old = body.get("status") or {}
        if any(old.get(k) != v for k, v in status.items()):
            ctx.kube.patch_gpupool_status(name, status)


async def scheduling_loop(ctx: Ctx, stopped: asyncio.Event) -> None:
    """Run a cycle every `schedulingIntervalSeconds` while this replica holds the Lease."""
    interval_s = ctx.config.scheduling_interval_seconds
    lease_s = max(15, int(interval_s * 5))
    while not stopped.is_set():
        try:
            leader = await asyncio.to_thread(
                ctx.kube.hold_lease, ctx.lease_namespace, LEASE_NAME, ctx.identity, lease_s
            )
            if leader:
                await asyncio.to_thread(run_cycle, ctx, datetime.now(UTC))
        except Exception:
            log.exception("scheduling cycle failed; retrying")
            metrics.RECONCILE_ERRORS.labels(stage="cycle").inc()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=interval_s)
