"""One scheduling cycle, as five steps:

    schedule(snapshot, pending)
      1. estimate   the cost map for every pending job at once: each job's options that pass
                    the static limits, ranked, its best two found (batch.py over costmap.py);
      2. order      jobs by priority, then regret (what a job loses if its best pool is taken),
                    then age, then key;
      3. admit      walk the jobs in that order, each taking its best option that fits the capacity
                    and quota left (gang: all workers in one pool, or none); a job that fits
                    nowhere names lower-priority victims, or waits (admit.py, preemption.py);
      4. solve      the exact optimum of the objective with HiGHS when the cycle is small enough
                    for the time budget, warm-started from step 3 (solve.py); otherwise local
                    search on small cycles (improve.py); otherwise step 3 stands;
      5. explain    every job's decision, with a reason and a message (explain.py, waiting.py).

The objective (docs/scheduler.md#the-objective): strict priority tiers, then the most GPUs placed
within a tier, then the least expected cost, then the utilization policy as tie-break.

Pure: the same input gives the same output; nothing here reads a clock (the exact path's time
budget aside: past it, the greedy answer stands) or the cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from transfer_operator.scheduler.admit import Walk
from transfer_operator.scheduler.batch import Estimates
from transfer_operator.scheduler.capacity import PoolCapacity, build_capacity
from transfer_operator.scheduler.elastic import most_workers, sized, to_pools
from transfer_operator.scheduler.explain import Decisions, Outcome, explain_static_misfit
from transfer_operator.scheduler.improve import local_search
from transfer_operator.scheduler.options import JobOptions, OptionCache
from transfer_operator.scheduler.solve import NotSolved, better, solve_exact
from transfer_operator.scheduler.types import (
    Action,
    Allocation,
    ClusterSnapshot,
    Decision,
    JobRequest,
    Placement,
    PoolState,
)

IMPROVE_MAX_JOBS = 300  # local search only for cycles this small (see improve.py)
EXACT_BUDGET_S = 0.2  # default time budget of the exact path; 0 turns it off


class SolvePath(StrEnum):
    """Which step 4 decided the cycle."""

    NONE = "none"  # nothing pending
    EXACT = "exact"  # HiGHS proved the objective's optimum (cost within solve.COST_GAP)
    BEST_FOUND = "bestFound"  # out of time: HiGHS's best answer, better than the walk's (not proven)
    LOCAL_SEARCH = "localSearch"  # greedy walk, then local search
    GREEDY = "greedy"  # greedy walk alone


@dataclass(frozen=True)
class CycleResult:
    decisions: Sequence[Decision]  # Decisions (built as each is read) or, with elastic gangs, a list
    path: SolvePath
    detail: str = ""  # why the exact path did not run, when it did not


def schedule(snapshot: ClusterSnapshot, pending: Sequence[JobRequest]) -> list[Decision]:
    """Decide for every pending job: admit it to a pool, preempt victims for it, or let it wait.
    Decisions come in the order the jobs were considered (priority first)."""
    return list(schedule_cycle(snapshot, pending).decisions)


def schedule_cycle(
    snapshot: ClusterSnapshot, pending: Sequence[JobRequest], *, exact_budget_s: float = EXACT_BUDGET_S
) -> CycleResult:
    """`schedule`, with which path decided the cycle; `exact_budget_s` bounds the exact path."""
    if not pending:
        return CycleResult(Decisions.none(), SolvePath.NONE)
    cache = OptionCache(snapshot.pools)
    result = _elastic_cycle(snapshot, pending, cache, exact_budget_s)
    if any(pool.parent is not None for pool in snapshot.pools):
        result = dataclasses.replace(result, decisions=to_pools(result.decisions))
    return result


def _elastic_cycle(
    snapshot: ClusterSnapshot, pending: Sequence[JobRequest], cache: OptionCache, exact_budget_s: float
) -> CycleResult:
    """The cycle; with elastic gangs, two: placements name snapshot rows (not pools) here."""
    if not any(job.elastic for job in pending):
        return _cycle(snapshot, pending, cache, exact_budget_s)
    # Elastic gangs (elastic.py): sized to the free capacity, then the waiting ones to what is left.
    capacity = build_capacity(snapshot.pools, snapshot.allocations, snapshot.policy)
    first = _cycle(snapshot, [_sized(job, cache, capacity) for job in pending], cache, exact_budget_s)
    waiting = {d.job_key for d in first.decisions if d.action is Action.WAIT}
    retry_of = {job.key: job for job in pending if job.elastic and job.key in waiting}
    if not retry_of:
        return first
    gpus_per_worker = {job.key: job.gpus_per_worker for job in pending}
    held = [
        Allocation(d.job_key, d.placement.pool, d.placement.gpus // g, g)
        for d in first.decisions
        if d.action is Action.ADMIT and d.placement is not None and (g := gpus_per_worker[d.job_key]) > 0
    ]
    after = dataclasses.replace(snapshot, allocations=(*snapshot.allocations, *held))
    left = build_capacity(after.pools, after.allocations, after.policy)
    resized = [_sized(job, cache, left) for job in retry_of.values()]
    resized = [job for job, old in zip(resized, retry_of.values(), strict=True) if job.workers != old.workers]
    if not resized:
        return first
    second = {d.job_key: d for d in _cycle(after, resized, cache, exact_budget_s).decisions}
    decisions = [second.get(d.job_key, d) if d.job_key in retry_of else d for d in first.decisions]
    return CycleResult(decisions, first.path, first.detail)


def _cycle(
    snapshot: ClusterSnapshot, pending: Sequence[JobRequest], cache: OptionCache, exact_budget_s: float
) -> CycleResult:
    estimates = Estimates(pending, cache)  # 1. estimate
    order: list[int] = estimates.order().tolist()  # 2. order
    walk = Walk(snapshot, pending, cache, estimates, order)  # 3. admit
    walk.run()
    outcome, path, detail = _solve(walk, exact_budget_s)  # 4. solve
    return CycleResult(Decisions(walk, outcome), path, detail)  # 5. explain


def _sized(job: JobRequest, cache: OptionCache, capacity: dict[str, PoolCapacity]) -> JobRequest:
    """An elastic job at the most workers that fit now (min_workers when none does: it waits, or
    preempts, at its smallest)."""
    if not job.elastic or job.min_workers is None:
        return job
    smallest = sized(job, job.min_workers)
    entry = cache.estimate(smallest)
    # (row, $/GPU-hour, run hours: the expected cost's hours, without the nodes' start-up)
    options = [
        (p.pool, p.usd_per_gpu_hour, p.expected_cost_usd / p.usd_per_hour)
        for p in (o.placement for o in entry.options)
        if p.usd_per_hour > 0
    ]
    workers = most_workers(job, options, capacity)
    return smallest if workers is None else sized(job, workers)


def _solve(walk: Walk, exact_budget_s: float) -> tuple[Outcome, SolvePath, str]:
    """The exact optimum within the budget; else local search on a small cycle; else the walk."""
    if walk.preemptor.taken:  # victims must leave first; the preemptors are placed next cycle
        return greedy_outcome(walk), SolvePath.GREEDY, "preemption planned"
    why, found = "exact path off", None
    if exact_budget_s > 0:
        try:
            solved = solve_exact(walk, exact_budget_s)
            return outcome_of(walk, solved.placements), SolvePath.EXACT, solved.note
        except NotSolved as error:
            why, found = str(error), error.best_found
    if len(walk.jobs) <= IMPROVE_MAX_JOBS:
        placements = local_search(walk)
        outcome, path = outcome_of(walk, placements), SolvePath.LOCAL_SEARCH
    else:
        outcome, path = greedy_outcome(walk), SolvePath.GREEDY
        if found is not None:  # the walk's placements, built only to compare them with HiGHS's
            placements = {index: walk.placement(index, position) for index, position in walk.admitted}
    if found is not None:
        # Out of time with an incumbent: keep it where it beats the walk's answer on the objective.
        best = found.placements
        ours, theirs = found.objective(best), found.objective(placements)
        if ours is not None and theirs is not None and better(ours, theirs):
            if len(walk.jobs) <= IMPROVE_MAX_JOBS:  # its cost may be far from proven: improve it too
                improved = local_search(walk, best)
                value = found.objective(improved)
                if value is not None and better(value, ours):
                    best = improved
            return outcome_of(walk, best), SolvePath.BEST_FOUND, f"{why}; HiGHS's best found kept"
    return outcome, path, why


def greedy_outcome(walk: Walk) -> Outcome:
    """The walk's own admissions and waits."""
    position = dict(walk.admitted)
    return Outcome(
        [index for index, _ in walk.admitted],
        lambda index: walk.placement(index, position[index]),
        walk.waiting,
        walk.admissions,
        walk.static,
        walk.decided,
    )


def outcome_of(walk: Walk, placements: dict[int, Placement]) -> Outcome:
    """Step 4's admissions instead of the walk's."""
    row_of = {name: row for row, name in enumerate(walk.names)}
    admitted = [index for index in walk.order if index in placements]
    admissions = [(row_of[placements[i].pool], placements[i].gpus) for i in admitted]
    dropped = [index for index, _ in walk.admitted if index not in placements]  # the solve may
    waiting = sorted(
        [index for index in walk.waiting if index not in placements] + dropped, key=walk.order_rank.__getitem__
    )
    decided = {index: d for index, d in walk.decided.items() if index not in placements}
    return Outcome(admitted, placements.__getitem__, waiting, admissions, walk.static, decided)


def estimate_options(
    job: JobRequest, pools: Sequence[PoolState], cache: OptionCache | None = None
) -> JobOptions:
    """The job's ranked options over `pools`, with its static reason when it has none (pass a
    shared cache when estimating many jobs)."""
    cache = cache or OptionCache(pools)
    entry = cache.estimate(job)
    if entry.count == 0:
        entry.static_reason = explain_static_misfit(job, cache.table, entry.ranking)
    return entry
