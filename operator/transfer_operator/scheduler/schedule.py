"""One scheduling cycle: estimate every (job, pool) option, then admit jobs in order.

    schedule(snapshot, pending)
      1. estimate   every job x pool x price class that passes the static limits
                    (GPU type, region, cordon, gang size, max price, budget) -> ranked options;
      2. order      jobs by priority, then by regret (what a job loses if its best pool is taken),
                    then by age;
      3. admit      walk the jobs, each taking its best option that fits the capacity and quota
                    left in this cycle's snapshot (gang: all workers in one pool, or none);
      4. preempt    a job that fits nowhere names lower-priority victims whose eviction makes room;
      5. explain    every job left waiting gets a reason a user can act on.

Pure: the same input gives the same output; nothing here reads a clock or the cluster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from transfer_operator.api.enums import Reason, UtilizationPolicy
from transfer_operator.scheduler.capacity import PoolCapacity, QuotaLedger, build_capacity
from transfer_operator.scheduler.explain import explain_static_misfit
from transfer_operator.scheduler.improve import Assignment, improve
from transfer_operator.scheduler.options import JobOptions, OptionCache
from transfer_operator.scheduler.pricing import Option
from transfer_operator.scheduler.types import (
    Action,
    Allocation,
    ClusterSnapshot,
    Decision,
    Fit,
    JobRequest,
    Placement,
    PoolState,
)

RUNNER_UPS = 3
IMPROVE_MAX_JOBS = 300  # local search only for cycles this small (see improve.py)
PREEMPTION_OPTIONS = 50  # a job that fits nowhere looks for victims on its best pools only


def estimate_options(
    job: JobRequest, pools: Sequence[PoolState], cache: OptionCache | None = None
) -> JobOptions:
    """The job's ranked options over `pools` (pass a shared cache when estimating many jobs)."""
    cache = cache or OptionCache(pools)
    entry = cache.estimate(job)
    if entry.count == 0:
        entry.static_reason = explain_static_misfit(job, cache.table, entry.ranking)
    return entry


def order_jobs(estimated: list[JobOptions]) -> list[JobOptions]:
    return sorted(
        estimated,
        key=lambda e: (-e.job.priority, -e.regret, e.job.created_at_s, e.job.key),
    )


def _tie_break(capacity: PoolCapacity, policy: UtilizationPolicy) -> int:
    # Binpack: fill the pool with the fewest free GPUs, keeping whole nodes free elsewhere.
    return capacity.free_gpus if policy is UtilizationPolicy.BINPACK else -capacity.free_gpus


def choose_fitting_option(
    entry: JobOptions,
    capacity: dict[str, PoolCapacity],
    free_gpus: np.ndarray,
    policy: UtilizationPolicy,
) -> Option | None:
    """The best option whose pool can take the whole gang now; among options of equal score,
    the utilization policy decides."""
    job = entry.job
    rows = entry.ranking.pool[entry.keep]
    # Aggregate free GPUs is necessary, not sufficient (a worker needs its GPUs on one node).
    for position in np.flatnonzero(free_gpus[rows] >= job.gang_gpus):
        option = entry.option_at(int(position))
        if not capacity[option.placement.pool].fits(job.workers, job.gpus_per_worker):
            continue
        return _best_of_ties(entry, int(position), option, capacity, policy)
    return None


def _best_of_ties(
    entry: JobOptions,
    position: int,
    first: Option,
    capacity: dict[str, PoolCapacity],
    policy: UtilizationPolicy,
) -> Option:
    job = entry.job
    best_key = (_tie_break(capacity[first.placement.pool], policy), first.placement.pool)
    best = first
    for later in range(position + 1, entry.count):
        if entry.score_at(later) > first.score + 1e-9:
            break
        option = entry.option_at(later)
        pool = capacity[option.placement.pool]
        if not pool.fits(job.workers, job.gpus_per_worker):
            continue
        key = (_tie_break(pool, policy), option.placement.pool)
        if key < best_key:
            best_key, best = key, option
    return best


def schedule(snapshot: ClusterSnapshot, pending: Sequence[JobRequest]) -> list[Decision]:
    """Decide for every pending job: admit it to a pool, preempt victims for it, or let it wait.
    Decisions come in the order the jobs were considered (priority first)."""
    pools = snapshot.pools
    capacity = build_capacity(pools, snapshot.allocations, snapshot.policy)
    free_gpus = np.array([capacity[p.name].free_gpus for p in pools], dtype=np.int64)
    row_of = {p.name: row for row, p in enumerate(pools)}
    quota = QuotaLedger.build(snapshot.quotas, snapshot.allocations)
    cache = OptionCache(pools)
    estimated = order_jobs([estimate_options(job, pools, cache) for job in pending])

    decisions: dict[str, Decision] = {}
    chosen: dict[str, tuple[JobRequest, Option]] = {}
    victims_taken: set[str] = set()
    held = list(snapshot.allocations)
    for entry in estimated:
        job = entry.job
        if entry.static_reason is not None:
            reason, message = entry.static_reason
            decisions[job.key] = Decision(job.key, Action.WAIT, Fit.NO_FIT, reason, message)
            continue
        quota_problem = quota.why_not(job.queue, job.gang_gpus)
        option = None if quota_problem else choose_fitting_option(entry, capacity, free_gpus, snapshot.policy)
        if option is not None:
            capacity[option.placement.pool].take(job.workers, job.gpus_per_worker, snapshot.policy)
            free_gpus[row_of[option.placement.pool]] -= job.gang_gpus
            quota.take(job.queue, job.gang_gpus)
            held.append(
                Allocation(
                    job.key,
                    option.placement.pool,
                    job.workers,
                    job.gpus_per_worker,
                    job.priority,
                    job.queue,
                    math.inf,
                )
            )
            chosen[job.key] = (job, option)
            continue
        preemption = plan_preemption(entry, snapshot, held, quota, victims_taken)
        if preemption is not None:
            option, victims = preemption
            victims_taken.update(victims)
            decisions[job.key] = _preempt(entry, option, victims)
            continue
        decisions[job.key] = _wait(entry, capacity, free_gpus, quota_problem)

    if len(pending) <= IMPROVE_MAX_JOBS and not victims_taken:
        _improve_admissions(snapshot, estimated, decisions, chosen, capacity, quota)
    entries = {e.job.key: e for e in estimated}
    for key, (_, option) in chosen.items():
        decisions[key] = _admit(entries[key], option)
    return [decisions[e.job.key] for e in estimated]


def _improve_admissions(
    snapshot: ClusterSnapshot,
    estimated: list[JobOptions],
    decisions: dict[str, Decision],
    chosen: dict[str, tuple[JobRequest, Option]],
    capacity: dict[str, PoolCapacity],
    quota: QuotaLedger,
) -> None:
    fixed: dict[str, list[Allocation]] = {}
    for allocation in snapshot.allocations:
        fixed.setdefault(allocation.pool, []).append(allocation)
    assignment = Assignment({p.name: p for p in snapshot.pools}, fixed, chosen, capacity, snapshot.policy)
    waiting = [
        (e.job, e.options)
        for e in estimated
        if e.job.key in decisions and decisions[e.job.key].reason is Reason.NO_FITTING_POOL and e.options
    ]
    for key in improve(assignment, waiting, {e.job.key: e.options for e in estimated}, quota):
        del decisions[key]


def _runner_ups(entry: JobOptions, chosen: Option) -> tuple[Placement, ...]:
    others = []
    for position in range(min(entry.count, RUNNER_UPS + 1)):
        option = entry.option_at(position)
        if option.placement != chosen.placement:
            others.append(option.placement)
    return tuple(others[:RUNNER_UPS])


def _preempt(entry: JobOptions, option: Option, victims: tuple[str, ...]) -> Decision:
    return Decision(
        entry.job.key,
        Action.PREEMPT,
        Fit.PREEMPT,
        Reason.PREEMPTING,
        f"preempting {len(victims)} lower-priority job(s) on {option.placement.pool}: " + ", ".join(victims),
        placement=option.placement,
        victims=victims,
        runner_ups=_runner_ups(entry, option),
    )


def _admit(entry: JobOptions, option: Option) -> Decision:
    placement = option.placement
    return Decision(
        entry.job.key,
        Action.ADMIT,
        Fit.FITS,
        Reason.ADMITTED,
        f"admitted to {placement.pool} ({placement.region}, {placement.price_class.value}, "
        f"${placement.usd_per_hour:.2f}/h, est. ${placement.expected_cost_usd:.2f})",
        placement=placement,
        runner_ups=_runner_ups(entry, option),
    )


def _wait(
    entry: JobOptions, capacity: dict[str, PoolCapacity], free_gpus: np.ndarray, quota_problem: str | None
) -> Decision:
    job = entry.job
    if quota_problem is not None:
        return Decision(job.key, Action.WAIT, Fit.NO_FIT, Reason.QUOTA_EXCEEDED, quota_problem)
    best = entry.option_at(0).placement
    rows = entry.ranking.pool[entry.keep]
    most_free_row = int(rows[np.argmax(free_gpus[rows])])
    most_free_pool = entry.table.pools[most_free_row].name
    free = capacity[most_free_pool].free_gpus
    regions = ", ".join(sorted(job.regions)) if job.regions else "any region"
    gpu = job.gpu_type or "GPU"
    message = (
        f"no pool in {regions} has {job.workers} worker(s) x {job.gpus_per_worker} free {gpu} "
        f"({job.gang_gpus} GPUs); most free: {free} on {most_free_pool}; "
        f"best pool when capacity frees up: {best.pool} (${best.usd_per_hour:.2f}/h)"
    )
    return Decision(
        job.key,
        Action.WAIT,
        Fit.NO_FIT,
        Reason.NO_FITTING_POOL,
        message,
        runner_ups=tuple(entry.option_at(i).placement for i in range(min(entry.count, RUNNER_UPS))),
    )


def plan_preemption(
    entry: JobOptions,
    snapshot: ClusterSnapshot,
    held: list[Allocation],
    quota: QuotaLedger,
    victims_taken: set[str],
) -> tuple[Option, tuple[str, ...]] | None:
    """The cheapest option that fits once lower-priority jobs leave, and the fewest such jobs.

    Candidates are lower-priority allocations on the option's pool or in the job's own queue,
    evicted lowest priority first and newest first (they lose the least work), then pruned back
    to a minimal set. Like Kueue, the preemptor is admitted in a later cycle, once they are gone.
    """
    job = entry.job
    lower = [a for a in snapshot.allocations if a.priority < job.priority and a.job_key not in victims_taken]
    if not lower:
        return None
    pools_by_name = {pool.name: pool for pool in snapshot.pools}
    best: tuple[tuple[int, float, str], Option, tuple[str, ...]] | None = None
    for position in range(min(entry.count, PREEMPTION_OPTIONS)):
        option = entry.option_at(position)
        pool_name = option.placement.pool
        candidates = sorted(
            (a for a in lower if a.pool == pool_name or a.queue == job.queue),
            key=lambda a: (a.priority, -a.admitted_at_s, a.job_key),
        )
        pool = pools_by_name[pool_name]
        victims = _minimal_victims(job, pool, candidates, held, snapshot.policy, quota)
        if victims is None:
            continue
        key = (len(victims), option.score, pool_name)
        if best is None or key < best[0]:
            best = (key, option, victims)
    if best is None:
        return None
    return best[1], best[2]


def _fits_without(
    job: JobRequest,
    pool: PoolState,
    removed: list[Allocation],
    held: list[Allocation],
    policy: UtilizationPolicy,
    quota: QuotaLedger,
) -> bool:
    """Would the job fit on `pool` (and in its quota) if `removed` were evicted?
    `held` is everything holding GPUs now, this cycle's admissions included."""
    trial_quota = quota.copy()
    for allocation in removed:
        trial_quota.give_back(allocation.queue, allocation.gpus)
    if trial_quota.why_not(job.queue, job.gang_gpus) is not None:
        return False
    removed_keys = {a.job_key for a in removed}
    staying = [a for a in held if a.pool == pool.name and a.job_key not in removed_keys]
    return build_capacity([pool], staying, policy)[pool.name].fits(job.workers, job.gpus_per_worker)


def _minimal_victims(
    job: JobRequest,
    pool: PoolState,
    candidates: list[Allocation],
    held: list[Allocation],
    policy: UtilizationPolicy,
    quota: QuotaLedger,
) -> tuple[str, ...] | None:
    removed: list[Allocation] = []
    for allocation in candidates:
        removed.append(allocation)
        if _fits_without(job, pool, removed, held, policy, quota):
            break
    else:
        return None
    # Prune: keep a victim only if the job no longer fits without evicting it.
    for allocation in list(reversed(removed)):
        trial = [a for a in removed if a is not allocation]
        if _fits_without(job, pool, trial, held, policy, quota):
            removed = trial
    return tuple(sorted(a.job_key for a in removed))
