"""Preemption: for a job that fits nowhere, the fewest lower-priority jobs whose eviction makes room."""

from __future__ import annotations

from transfer_operator.api.enums import Reason, UtilizationPolicy
from transfer_operator.scheduler.batch import RUNNER_UPS
from transfer_operator.scheduler.capacity import QuotaLedger, build_capacity
from transfer_operator.scheduler.options import JobOptions, Option
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

PREEMPTION_OPTIONS = 50  # a job that fits nowhere looks for victims on its best pools only


def runner_ups(entry: JobOptions, chosen: Option) -> tuple[Placement, ...]:
    others = []
    for position in range(min(entry.count, RUNNER_UPS + 1)):
        option = entry.option_at(position)
        if option.placement != chosen.placement:
            others.append(option.placement)
    return tuple(others[:RUNNER_UPS])


def preempt_decision(entry: JobOptions, option: Option, victims: tuple[str, ...]) -> Decision:
    return Decision(
        entry.job.key,
        Action.PREEMPT,
        Fit.PREEMPT,
        Reason.PREEMPTING,
        f"preempting {len(victims)} lower-priority job(s) on {option.placement.pool}: " + ", ".join(victims),
        placement=option.placement,
        victims=victims,
        runner_ups=runner_ups(entry, option),
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
