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
from dataclasses import dataclass

from transfer_operator.api.enums import Reason, UtilizationPolicy
from transfer_operator.scheduler.capacity import PoolCapacity, QuotaLedger, build_capacity
from transfer_operator.scheduler.explain import explain_static_misfit
from transfer_operator.scheduler.fit import gang_fits_empty_pool, pool_matches
from transfer_operator.scheduler.improve import Assignment, improve
from transfer_operator.scheduler.pricing import Option, estimate_placement, price_classes, score
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


@dataclass(slots=True)
class JobOptions:
    job: JobRequest
    options: list[Option]  # best first
    static_reason: tuple[Reason, str] | None  # set when no option exists at all

    @property
    def regret(self) -> float:
        if len(self.options) < 2:
            return math.inf
        return self.options[1].score - self.options[0].score


def estimate_options(job: JobRequest, pools: Sequence[PoolState]) -> JobOptions:
    options: list[Option] = []
    for index, pool in enumerate(pools):
        if not pool_matches(job, pool) or not gang_fits_empty_pool(job, pool):
            continue
        for price_class, usd in price_classes(job, pool):
            if job.max_usd_per_gpu_hour is not None and usd > job.max_usd_per_gpu_hour:
                continue
            placement = estimate_placement(job, pool, price_class, usd)
            if job.budget_usd is not None and placement.expected_cost_usd > job.budget_usd:
                continue
            options.append(Option(index, placement, score(placement, job.prefer)))
    options.sort(key=lambda o: (o.score, o.placement.pool, o.placement.price_class))
    static_reason = None if options else explain_static_misfit(job, pools)
    return JobOptions(job, options, static_reason)


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
    policy: UtilizationPolicy,
) -> Option | None:
    job = entry.job
    best: tuple[float, int, str] | None = None
    chosen: Option | None = None
    for option in entry.options:
        if chosen is not None and option.score > chosen.score + 1e-9:
            break  # options are sorted: only exact ties can still win
        pool_capacity = capacity[option.placement.pool]
        if not pool_capacity.fits(job.workers, job.gpus_per_worker):
            continue
        key = (option.score, _tie_break(pool_capacity, policy), option.placement.pool)
        if best is None or key < best:
            best, chosen = key, option
    return chosen


def schedule(snapshot: ClusterSnapshot, pending: Sequence[JobRequest]) -> list[Decision]:
    """Decide for every pending job: admit it to a pool, preempt victims for it, or let it wait.
    Decisions come in the order the jobs were considered (priority first)."""
    pools = snapshot.pools
    capacity = build_capacity(pools, snapshot.allocations, snapshot.policy)
    quota = QuotaLedger.build(snapshot.quotas, snapshot.allocations)
    estimated = order_jobs([estimate_options(job, pools) for job in pending])

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
        option = None if quota_problem else choose_fitting_option(entry, capacity, snapshot.policy)
        if option is not None:
            capacity[option.placement.pool].take(job.workers, job.gpus_per_worker, snapshot.policy)
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
        decisions[job.key] = _wait(entry, capacity, quota_problem)

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
    others = [o.placement for o in entry.options if o is not chosen]
    return tuple(others[:RUNNER_UPS])


def _preempt(entry: JobOptions, option: Option, victims: tuple[str, ...]) -> Decision:
    return Decision(
        entry.job.key,
        Action.PREEMPT,
        Fit.PREEMPT,
        Reason.PREEMPTED,
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


def _wait(entry: JobOptions, capacity: dict[str, PoolCapacity], quota_problem: str | None) -> Decision:
    job = entry.job
    if quota_problem is not None:
        return Decision(job.key, Action.WAIT, Fit.NO_FIT, Reason.QUOTA_EXCEEDED, quota_problem)
    best = entry.options[0].placement
    most_free = max(entry.options, key=lambda o: capacity[o.placement.pool].free_gpus)
    free = capacity[most_free.placement.pool].free_gpus
    regions = ", ".join(sorted(job.regions)) if job.regions else "any region"
    gpu = job.gpu_type or "GPU"
    message = (
        f"no pool in {regions} has {job.workers} worker(s) x {job.gpus_per_worker} free {gpu} "
        f"({job.gang_gpus} GPUs); most free: {free} on {most_free.placement.pool}; "
        f"best pool when capacity frees up: {best.pool} (${best.usd_per_hour:.2f}/h)"
    )
    return Decision(
        job.key,
        Action.WAIT,
        Fit.NO_FIT,
        Reason.NO_FITTING_POOL,
        message,
        runner_ups=tuple(o.placement for o in entry.options[:RUNNER_UPS]),
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
    for option in entry.options:
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
