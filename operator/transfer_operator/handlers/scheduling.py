"""The scheduling cycle: read the fleet, call the pure scheduler, write its decisions.

One cycle handles every queued job at once (not one decision per event). Only the holder of
the scheduler Lease runs it, so two replicas never double-schedule. Admissions are written in the
background (handlers/inflight.py): the next cycle need not wait for the API server's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from transfer_operator import metrics
from transfer_operator.api.enums import Phase, Reason
from transfer_operator.engine import transitions
from transfer_operator.engine.conditions import seconds_since
from transfer_operator.engine.node_health import attempt_of
from transfer_operator.engine.rayjob import checkpoint_storage, rayjob_name
from transfer_operator.engine.storage import starts_over, with_storage_defaults
from transfer_operator.handlers.clusters import (
    finalize_deleted,
    lost_reason,
    sweep_orphans,
    sync_clusters,
    usable,
)
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.effects import perform
from transfer_operator.handlers.elastic import release_unprovisioned, sync_elastic
from transfer_operator.handlers.fleet import Fleet, read_fleet, with_status
from transfer_operator.handlers.growth import grow_gangs, resize
from transfer_operator.handlers.queues import queue_rules, schedulable_jobs
from transfer_operator.handlers.running import reconcile_holding
from transfer_operator.handlers.specs import review_specs
from transfer_operator.handlers.writes import write_gpupool_status
from transfer_operator.scheduler import Action, Decision
from transfer_operator.scheduler.schedule import schedule_cycle
from transfer_operator.scheduler.snapshot import requeue_backoff_s, snapshot_of

log = logging.getLogger(__name__)
LEASE_NAME = "transfer-operator-scheduler"
WRITE_CONCURRENCY = 32  # waits and preemptions written at once (admissions: handlers/inflight.py)
# Between two cycles, however much news the watches bring: at least this, and at least as long
# as the last cycle took, so that cycles never take more than about half the operator's time.
MIN_GAP_S = 0.2
WAKE_POLL_S = 0.05
SLOW_CYCLE_S = 1.0  # a cycle longer than this is logged with the time of each of its stages


@dataclass
class StageClock:
    """Each stage's time in one cycle, observed in the stage histogram as well."""

    took: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.took[name] = seconds
            metrics.CYCLE_STAGE_DURATION.labels(stage=name).observe(seconds)

    def slow(self, total_s: float) -> str | None:
        """The stages of a cycle over SLOW_CYCLE_S, for the log (the rest: the passes between them)."""
        if total_s <= SLOW_CYCLE_S:
            return None
        parts = [f"{name} {seconds:.2f}" for name, seconds in self.took.items()]
        return f"{total_s:.2f} s: {', '.join(parts)}, other {total_s - sum(self.took.values()):.2f}"


def run_cycle(ctx: Ctx, now: datetime) -> Sequence[Decision]:
    started = time.perf_counter()
    clock = StageClock()
    with clock.stage("read"):
        sync_clusters(ctx)
        fleet = read_fleet(ctx)
        finalize_deleted(ctx, fleet.jobs, fleet.deleting)
    review_specs(ctx, fleet, now)  # first: a suspended job's GPUs are placed in this cycle
    changed_rayjobs = changed_rayjob_keys(ctx)
    with clock.stage("reconcile"):
        # First: GPUs it frees are placed in this cycle. Every job that holds GPUs once per
        # reconcile interval, a share each cycle (cost, budget, a lost RayJob); and those whose
        # RayJob the watch reported changed (the one path that mirrors RayJob status).
        turns = ctx.rolling_pass.turns
        arc = ctx.rolling_pass.advance(now.timestamp(), ctx.config.reconcile_interval_seconds)
        reconcile_holding(ctx, fleet, now, arc, changed_rayjobs)
        if ctx.rolling_pass.turns != turns:
            sweep_orphans(ctx, fleet.jobs | fleet.in_flight)
    release_lost_capacity(ctx, fleet, now)
    release_unprovisioned(ctx, fleet, now)
    give_up_exhausted(ctx, fleet, now)
    sync_elastic(ctx, fleet, now)
    rules = queue_rules(ctx)
    snapshot, pending = snapshot_of(
        (pool for _, pool in fleet.pools.values()),
        schedulable_jobs(ctx, fleet, rules, now),
        ctx.config,
        now_s=now.timestamp(),
        lost_nodes=lost_node_counts(ctx, fleet, now),
        queues=rules.queues,
        scaling_ready=fleet.scaling_ready,
        in_flight=(job for _, job in fleet.in_flight.values()),
    )
    with clock.stage("decide"), collector_paused():
        cycle = schedule_cycle(snapshot, pending, exact_budget_s=ctx.config.exact_budget_seconds)
    decisions = cycle.decisions
    metrics.record_solve_path(cycle.path.value)

    def apply(decision: Decision) -> None:
        if not ctx.lease.held():
            return  # another replica leads now: it decides again from what was written
        try:
            apply_decision(ctx, fleet, decision, now)
        except Exception:  # one job's failure must not stop the cycle
            log.exception("applying the decision for %s failed", decision.job_key)
            metrics.RECONCILE_ERRORS.labels(stage="admit").inc()

    # Decisions touch disjoint objects (a victim belongs to one preemptor), so write them in parallel.
    with clock.stage("write"):
        with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY) as pool:
            list(pool.map(apply, decisions))
        if ctx.lease.held():
            grow_gangs(ctx, fleet, snapshot, pending, decisions, now)  # after the queue, into what it left
        if ctx.lease.held():
            write_pool_status(ctx, fleet)
    took_s = time.perf_counter() - started
    metrics.record_cycle(decisions, fleet_jobs=list(fleet.all_jobs()), seconds=took_s)
    slow = clock.slow(took_s)
    if slow is not None:
        log.info("slow cycle, %s (%d jobs, %d decisions)", slow, len(fleet.jobs), len(decisions))
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


def changed_rayjob_keys(ctx: Ctx) -> set[tuple[str, str]]:
    """(origin namespace, name) of the RayJobs the watches of every cluster reported changed."""
    changed = ctx.index.rayjobs.take_changed()
    for remote in list(ctx.clusters.values()):
        changed |= {(remote.origin_namespace(ns), name) for ns, name in remote.index.rayjobs.take_changed()}
    return changed


def lost_node_counts(ctx: Ctx, fleet: Fleet, now: datetime) -> dict[str, int]:
    """Per pool, the nodes that hold no capacity: lost ones, those pods of finished attempts still
    take, or all of a pool whose worker cluster cannot be used (not registered, not Ready, not
    answering)."""
    counts = {pool: len(losses) for pool, losses in fleet.lost_nodes.items()}
    for name, taken in fleet.taken_nodes.items():
        counts[name] = counts.get(name, 0) + taken
    for name, (_, pool) in fleet.pools.items():
        if not usable(ctx, pool.spec.cluster, now.timestamp()):
            counts[name] = pool.spec.nodes
    return counts


def release_lost_capacity(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    """Jobs whose pool was deleted or cordoned, or whose pods sit on a lost node, go back to the
    queue at once (failover), to be placed on capacity that is still there."""
    cluster_lost: dict[str | None, str | None] = {}  # per cluster: why it is lost, or None
    for key, (body, job) in list(fleet.jobs.items()):
        placement = job.status.placement
        if placement is None or not job.status.phase.holds_capacity:
            continue
        entry = fleet.pools.get(placement.pool)
        node_loss = fleet.job_losses.get(attempt_of(job)) if fleet.job_losses else None
        if placement.cluster not in cluster_lost:
            cluster_lost[placement.cluster] = lost_reason(ctx, placement.cluster, now.timestamp())
        cluster_gone = cluster_lost[placement.cluster]
        if cluster_gone is not None:
            reason, message = Reason.CLUSTER_LOST, f"{cluster_gone} (pool {placement.pool})"
        elif entry is None or entry[1].spec.cordoned:
            why = "was deleted" if entry is None else "was cordoned"
            reason, message = Reason.POOL_LOST, f"pool {placement.pool} {why}"
        elif node_loss is not None:
            reason, message = node_loss.reason, f"{node_loss.detail} (pool {placement.pool})"
        else:
            continue
        message += "; back in the queue, resuming from the last checkpoint"
        current = body.get("status") or {}
        change = transitions.preempt(job, current, reason, message, now, requeue_after_s=0.0, failover=True)
        fleet.jobs[key] = (body, perform(ctx, body, job, change))


def give_up_exhausted(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    """A preempted job that used all its attempts fails, with the reason, instead of waiting forever."""
    for key, (body, job) in list(fleet.jobs.items()):
        if job.status.phase is not Phase.PREEMPTED or job.status.placements < job.spec.max_attempts:
            continue
        change = transitions.give_up(job, body.get("status") or {}, now)
        fleet.jobs[key] = (body, perform(ctx, body, job, change))


def apply_decision(ctx: Ctx, fleet: Fleet, decision: Decision, now: datetime) -> None:
    if decision.action is Action.ADMIT:
        admit(ctx, fleet, decision, now)
        return
    if decision.action is Action.PREEMPT:
        preempt_victims(ctx, fleet, decision, now)
    wait(ctx, fleet, decision, now)  # waiting, or waiting for the victims' GPUs


def admit(ctx: Ctx, fleet: Fleet, decision: Decision, now: datetime) -> None:
    """The rest of this cycle sees the job admitted at once; its writes go to the in-flight pool,
    and until they are done the next cycles count its GPUs without touching it."""
    body, job = fleet.jobs[decision.job_key]
    assert decision.placement is not None
    placement = decision.placement
    pool_entry = fleet.pools.get(placement.pool)
    cluster = pool_entry[1].spec.cluster if pool_entry else None
    wire = {
        "pool": placement.pool,
        "cluster": cluster,
        "region": placement.region,
        "zone": placement.zone,
        "gpuType": placement.gpu_type,
        "priceClass": placement.price_class.value,
        "usdPerGpuHour": placement.usd_per_gpu_hour,
        "usdPerHour": round(placement.usd_per_hour, 4),
        "gpus": placement.gpus,
    }
    name = rayjob_name(job.metadata.name, job.status.attempts + 1)
    stored = with_storage_defaults(job, ctx.config.storage)
    fresh = starts_over(stored, cluster)
    message = f"{decision.message}; {fresh}" if fresh else decision.message
    change = transitions.admit(job, body.get("status") or {}, wire, name, checkpoint_storage(stored), message, now)
    after = with_status(job, change.status)
    fleet.jobs[job.key] = (body, after)  # pool status counts it
    pools = {placement.pool: pool_entry} if pool_entry else {}

    def write() -> None:
        if perform(ctx, body, job, change, pools) is job:
            return  # the job was deleted meanwhile: nothing was admitted
        waited_s = seconds_since(job.metadata.creation_timestamp, datetime.now(UTC))
        if waited_s is not None:
            metrics.ADMISSION_LATENCY.observe(waited_s)

    ctx.in_flight.submit(job.key, (body, after), ctx.lease, write)


def preempt_victims(ctx: Ctx, fleet: Fleet, decision: Decision, now: datetime) -> None:
    for victim_key in decision.victims:
        body, victim = fleet.jobs[victim_key]
        message = f"preempted by higher-priority {decision.job_key}; back in the queue with its checkpoint"
        change = transitions.preempt(
            victim,
            body.get("status") or {},
            Reason.PREEMPTED,
            message,
            now,
            requeue_after_s=requeue_backoff_s(victim.status.attempts),
        )
        fleet.jobs[victim_key] = (body, perform(ctx, body, victim, change))
    for victim_key, workers in decision.shrinks:
        held = fleet.jobs[victim_key][1].held_workers
        message = (
            f"shrunk from {held} to {workers} workers to make room for higher-priority {decision.job_key}; "
            "restarting from the latest checkpoint"
        )
        resize(ctx, fleet, victim_key, workers, message, now)


def wait(ctx: Ctx, fleet: Fleet, decision: Decision, now: datetime) -> None:
    body, job = fleet.jobs[decision.job_key]
    change = transitions.wait(job, body.get("status") or {}, decision.reason, decision.message, now)
    fleet.jobs[decision.job_key] = (body, perform(ctx, body, job, change))


def write_pool_status(ctx: Ctx, fleet: Fleet) -> None:
    held = fleet.held_by_pool()
    per_cluster: dict[str, tuple[int, int, int]] = {}
    now_s = time.time()
    for name, (body, pool) in fleet.pools.items():
        allocated, jobs = held.get(name, (0, 0))
        lost = len(fleet.lost_nodes.get(name, []))
        reachable = usable(ctx, pool.spec.cluster, now_s)
        elastic = fleet.elastic_status.get(name, {})
        bought = elastic["nodes"]["ready"] if elastic else 0
        usable_nodes = pool.spec.nodes + bought - lost - fleet.taken_nodes.get(name, 0)
        capacity = max(0, usable_nodes) * pool.spec.gpus_per_node if reachable else 0
        health = (
            "Cordoned"
            if pool.spec.cordoned
            else "Unreachable"
            if not reachable
            else "Degraded"
            if lost
            else "Healthy"
        )
        status = {
            "allocatedGpus": allocated,
            "freeGpus": max(0, capacity - allocated),
            "utilization": round(allocated / capacity, 4) if capacity else 0.0,
            "jobs": jobs,
            "health": health,
            "lostNodes": lost,
            **elastic,
        }
        metrics.record_pool(pool, allocated)
        cluster = pool.spec.cluster or "local"
        before = per_cluster.get(cluster, (0, 0, 0))
        per_cluster[cluster] = (before[0] + allocated, before[1] + max(0, capacity - allocated), before[2] + jobs)
        old = body.get("status") or {}
        if any(old.get(k) != v for k, v in status.items()):
            ctx.pool_status.submit(name, status, ctx.lease, partial(write_gpupool_status, ctx, name, status))
    metrics.record_clusters(per_cluster)


def lease_seconds(interval_s: float, last_cycle_s: float) -> int:
    """The Lease outlives several cycles, and grows with the measured cycle time, so a slow cycle
    (a big fleet) does not let the Lease lapse between two renewals."""
    return max(15, int(interval_s * 5), math.ceil(3 * last_cycle_s))


def hold_lease(ctx: Ctx, lease_s: int) -> bool:
    """Take or renew the scheduler Lease. Held: writes may go out until it would expire. Not
    held (or no answer): the writes not started yet are dropped (another replica may lead)."""
    asked = time.monotonic()
    try:
        held = ctx.kube.hold_lease(ctx.lease_namespace, LEASE_NAME, ctx.identity, lease_s)
    except Exception:
        stop_writing(ctx)
        raise
    if held:
        ctx.lease.expires_at = asked + lease_s
    else:
        stop_writing(ctx)
    return held


def stop_writing(ctx: Ctx) -> None:
    if not ctx.lease.lost.is_set():
        ctx.lease.lost.set()
        ctx.in_flight.abandon()


async def run_leading_cycle(ctx: Ctx, lease_s: int, renew_every_s: float) -> float:
    """One cycle in a worker thread; the Lease is renewed every `renew_every_s` while it runs.
    Losing the Lease mid-cycle stops the cycle's remaining writes (another replica leads now).
    Returns the cycle's wall time."""
    ctx.lease.lost.clear()
    started = time.monotonic()
    cycle = asyncio.ensure_future(asyncio.to_thread(run_cycle, ctx, datetime.now(UTC)))
    while True:
        done, _ = await asyncio.wait({cycle}, timeout=renew_every_s)
        if done:
            break
        lost_before = ctx.lease.lost.is_set()
        held = await asyncio.to_thread(hold_lease, ctx, lease_s)
        metrics.LEASE_RENEWALS_IN_CYCLE.inc()
        if not held and not lost_before:
            log.warning("lost the scheduler Lease during a cycle; its remaining writes are skipped")
    cycle.result()
    return time.monotonic() - started


async def wait_for_work(
    ctx: Ctx, stopped: asyncio.Event, interval_s: float, *, woken: bool, min_gap_s: float = MIN_GAP_S
) -> None:
    """Until `interval_s` has passed, or (with `woken`, and at least `min_gap_s` on) until a watch
    brought news (FleetIndex.work): a new job is placed within a fraction of a second on a small
    fleet, not at the end of the interval, while a stream of news batches into cycles."""
    now = time.monotonic()
    deadline, earliest = now + interval_s, now + min(min_gap_s, interval_s)
    while not stopped.is_set():
        now = time.monotonic()
        if now >= deadline or (woken and now >= earliest and ctx.index.work.is_set()):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=min(WAKE_POLL_S, deadline - now))


async def scheduling_loop(ctx: Ctx, stopped: asyncio.Event) -> None:
    """Run a cycle when a watch brings news, and at least every `schedulingIntervalSeconds`,
    while this replica holds the Lease (and its watch-fed index has listed every kind once)."""
    interval_s = ctx.config.scheduling_interval_seconds
    last_cycle_s = 0.0
    renew_at = 0.0  # monotonic time the held Lease is next renewed (the API is not asked before)
    while not stopped.is_set():
        if not ctx.index.is_synced():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=0.2)
            continue
        lease_s = lease_seconds(interval_s, last_cycle_s)
        leader = False
        try:
            if time.monotonic() < renew_at:
                leader = True  # renewed under a third of the Lease ago: nobody else can hold it
            else:
                leader = await asyncio.to_thread(hold_lease, ctx, lease_s)
                renew_at = time.monotonic() + lease_s / 3 if leader else 0.0
            if leader:
                ctx.index.work.clear()  # news from now on wakes the next cycle
                last_cycle_s = await run_leading_cycle(ctx, lease_s, renew_every_s=lease_s / 3)
                renew_at = 0.0 if ctx.lease.lost.is_set() else renew_at
        except Exception:
            log.exception("scheduling cycle failed; retrying")
            metrics.RECONCILE_ERRORS.labels(stage="cycle").inc()
        # A standby replica only asks for the Lease every interval.
        await wait_for_work(ctx, stopped, interval_s, woken=leader, min_gap_s=max(MIN_GAP_S, last_cycle_s))
    # Shutting down: admissions not started stay queued for the next leader; those being written end.
    ctx.in_flight.abandon()
    await asyncio.to_thread(ctx.in_flight.drain, 30.0)
    await asyncio.to_thread(ctx.pool_status.drain, 5.0)
