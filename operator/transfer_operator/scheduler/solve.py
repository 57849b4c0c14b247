"""Step 4, the exact path: the objective's optimum over the cost map's options, with HiGHS.

The objective, in order (docs/scheduler.md#the-objective):
  1. strict priority tiers: for each priority, highest first, the most GPUs placed of that tier
     (never fewer for a higher tier to place more of a lower one);
  2. then the least expected cost (price x GPUs x expected hours, spot risk priced in), each
     job's as its `placement.prefer` scores it (`cheapest`: the dollars themselves);
  3. then the utilization policy: binpack prefers pools with fewer free GPUs, spread more.

One binary per (job, option), at most one option per job, GPUs per pool within its free GPUs,
and per queue and GPU type within its quota (nominal, plus what its cohort lends of that type,
within its borrowing limit). Each level is one solve that keeps the levels before it at their optimum. The greedy
walk's admissions are the warm start. The answer is then replayed on the node-level capacity
and through the quota ledger in the walk's order; if either refuses it (GPUs counted per pool
cannot see fragmentation across nodes), or HiGHS is missing, over the size bound or out of
time, the greedy answer stands.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from transfer_operator.api.enums import UtilizationPolicy
from transfer_operator.scheduler.types import Placement

if TYPE_CHECKING:
    from transfer_operator.scheduler.admit import Walk

COHORT_SUBSET_TYPES = 6  # GPU types of a cohort up to which its quota rows are exact (2^n - 1 rows)
MAX_OPTIONS = 20_000  # (job, option) pairs up to which a solve fits the default budget


COST_GAP = 1e-4  # relative gap at which the cost level (and the tie-break) counts as solved
FEASIBLE = 2  # highspy's kSolutionStatusFeasible


@dataclass(frozen=True)
class Solved:
    """The exact path's answer: every admitted job's placement, the priority tiers and the cost
    (within COST_GAP) proven optimal; `note` says when the tie-break is only the best found."""

    placements: dict[int, Placement]
    note: str = ""


@dataclass(frozen=True)
class BestFound:
    """HiGHS's best answer when a priority tier or the cost level ran out of time: feasible (and
    replayed at node level and through the quotas), not proven optimal. `objective` gives the
    objective's levels (tiers, cost, tie-break; lower is better) of any answer over the same
    options, so that step 4 can keep whichever of this and the walk's answer is better."""

    placements: dict[int, Placement]
    objective: Callable[[dict[int, Placement]], tuple[float, ...] | None]


class NotSolved(Exception):
    """Why the exact path gave no proven answer; the greedy one stands unless `best_found` beats it."""

    def __init__(self, why: str, best_found: BestFound | None = None):
        super().__init__(why)
        self.best_found = best_found


def better(found: tuple[float, ...], other: tuple[float, ...]) -> bool:
    """Whether `found` is lexicographically lower than `other` beyond rounding (1e-9 relative)."""
    for a, b in zip(found, other, strict=True):
        slack = 1e-9 * max(1.0, abs(b)) + 1e-9
        if a < b - slack:
            return True
        if a > b + slack:
            return False
    return False


def solve_exact(walk: Walk, budget_s: float) -> Solved:
    """Every admitted job's placement at the objective's optimum (or, out of time after one level
    was solved, the best HiGHS found). Raises NotSolved."""
    deadline = time.perf_counter() + budget_s
    try:
        import highspy
    except ImportError as error:  # an operator dependency; `transferctl plan` may run without it
        raise NotSolved("highspy is not installed") from error
    if int((walk.estimates.counts > 0).sum()) > MAX_OPTIONS:  # each such job has one option at least
        raise NotSolved(f"over {MAX_OPTIONS} options")
    candidates = [i for i in walk.order if walk.best[i] >= 0]  # every job with an option
    entries = {}
    columns: list[tuple[int, int]] = []  # (job index, option position)
    for index in candidates:
        entries[index] = entry = walk.cache.estimate(walk.jobs[index])
        columns.extend((index, k) for k in range(entry.count))
        if len(columns) > MAX_OPTIONS:
            raise NotSolved(f"over {MAX_OPTIONS} options")
    if not columns:
        raise NotSolved("no options")
    options = [entries[i].option_at(k) for i, k in columns]
    job_of = np.array([i for i, _ in columns])
    gpus = np.array([walk.jobs[i].gang_gpus for i, _ in columns], dtype=float)
    rows: list[tuple[float, float, list[int], list[float]]] = []
    for index in candidates:  # at most one option per job
        found = np.flatnonzero(job_of == index).tolist()
        rows.append((0.0, 1.0, found, [1.0] * len(found)))
    by_pool: dict[int, list[int]] = {}
    for column, option in enumerate(options):
        by_pool.setdefault(option.pool_index, []).append(column)
    for row, found in by_pool.items():
        rows.append((0.0, float(walk.initial_free[row]), found, gpus[found].tolist()))
    rows.extend(_quota_rows(walk, columns, [o.placement.gpu_type for o in options], gpus))

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    count = len(columns)
    h.addVars(count, np.zeros(count), np.ones(count))
    h.changeColsIntegrality(count, np.arange(count), np.array([highspy.HighsVarType.kInteger] * count))
    for lower, upper, found, values in rows:
        h.addRow(lower, upper, len(found), np.array(found, dtype=np.int32), np.array(values))
    start = np.zeros(count)
    chosen = {(i, walk.placement(i, p)) for i, p in walk.admitted}
    for column, ((index, _), option) in enumerate(zip(columns, options, strict=True)):
        start[column] = float((index, option.placement) in chosen)

    priorities = sorted({walk.jobs[i].priority for i in candidates}, reverse=True)
    costs = np.array([o.score for o in options])  # each job's cost as its `prefer` scores it
    free = np.array([float(walk.initial_free[o.pool_index]) for o in options])
    tie = free if walk.policy is UtilizationPolicy.BINPACK else -free
    # Most GPUs of the tier, then (a zero-GPU job counts too) the most jobs: GPUs x (jobs + 1) + 1.
    placed = -(gpus * (len(candidates) + 1) + 1)
    levels = [np.where([walk.jobs[i].priority == p for i in job_of], placed, 0.0) for p in priorities]
    levels += [costs, tie]
    admitted = {index for index, _ in walk.admitted}
    all_placed = [all(i in admitted for i in candidates if walk.jobs[i].priority == p) for p in priorities]
    x, note, solved = start, "", False
    tie_level = len(levels) - 1
    column_of = {(i, option.placement): c for c, ((i, _), option) in enumerate(zip(columns, options, strict=True))}
    matrix = np.stack(levels)

    def objective(placements: dict[int, Placement]) -> tuple[float, ...] | None:
        chosen = [column_of.get(item) for item in placements.items()]
        if any(c is None for c in chosen):
            return None  # an answer outside these options: not comparable
        vector = np.zeros(count)
        vector[[c for c in chosen if c is not None]] = 1.0
        return tuple((matrix @ vector).tolist())

    def out_of_time(why: str, incumbent: np.ndarray | None) -> NotSolved:
        """NotSolved, with HiGHS's incumbent when it has one that holds at node level and in the quotas."""
        if incumbent is None:
            return NotSolved(why)
        picked = {int(job_of[c]): options[c].placement for c in np.flatnonzero(incumbent > 0.5).tolist()}
        try:
            _replay(walk, picked)
        except NotSolved:
            return NotSolved(why)
        return NotSolved(why, BestFound(picked, objective))
    for level, weights in enumerate(levels):
        if level < len(priorities) and all_placed[level]:
            # The warm start places every job of this tier: nothing can beat it; keep it.
            _keep_at_most(h, weights, float(weights @ start))
            continue
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            if not solved or level != tie_level:
                # The levels solved so far hold in x (the warm start when none was).
                raise out_of_time(f"out of time before the {_level_name(level, tie_level)}", x if solved else None)
            note = "out of time before the utilization tie-break"
            break
        h.setOptionValue("time_limit", remaining)
        # Tiers: integer objective, so a gap under 1 proves the optimum. Cost, tie-break: COST_GAP.
        h.setOptionValue("mip_abs_gap", 0.999 if level < len(priorities) else 0.0)
        h.setOptionValue("mip_rel_gap", 0.0 if level < len(priorities) else COST_GAP)
        h.changeColsCost(count, np.arange(count), weights)
        solution = highspy.HighsSolution()
        solution.col_value = list(x)
        h.setSolution(solution)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            feasible = h.getInfo().primal_solution_status == FEASIBLE
            if level != tie_level or not feasible:
                # An unproven incumbent of a tier or of the cost can be worse than the walk: step 4
                # compares the two on the objective.
                raise out_of_time(
                    f"{_level_name(level, tie_level)}: HiGHS: {h.modelStatusToString(status)}",
                    np.array(h.getSolution().col_value) if feasible else None,
                )
            # The best HiGHS found in time: at least as good as the warm start, not proven.
            x = np.array(h.getSolution().col_value)
            note = f"{_level_name(level, tie_level)}: best found, {h.modelStatusToString(status)}"
            break
        solved = True
        x = np.array(h.getSolution().col_value)
        if level < tie_level:  # keep this level at its optimum in the next ones
            _keep_at_most(h, weights, float(weights @ x))
    picked = {int(job_of[c]): options[c].placement for c in np.flatnonzero(x > 0.5).tolist()}
    _replay(walk, picked)
    return Solved(picked, note)


def _keep_at_most(h: Any, weights: np.ndarray, best: float) -> None:
    """Hold the objective `weights` at `best` (up to rounding) in the levels after it."""
    nonzero = np.flatnonzero(weights).astype(np.int32)
    h.addRow(-np.inf, best + 1e-9 * max(1.0, abs(best)) + 1e-9, len(nonzero), nonzero, weights[nonzero])


def _level_name(level: int, tie_level: int) -> str:
    return {tie_level: "utilization tie-break", tie_level - 1: "cost level"}.get(level, f"priority tier {level + 1}")


def _quota_rows(
    walk: Walk, columns: list[tuple[int, int]], gpu_types: list[str], gpus: np.ndarray
) -> list[tuple[float, float, list[int], list[float]]]:
    """Per queue and quota key (a GPU type or `*`, capacity.QuotaLedger), GPUs within its nominal
    quota left plus what it may borrow. Per cohort (capacity.CohortBook), the GPUs its members
    take of each set S of GPU types within S's unused typed quota plus the unused `*` quota: the
    flow's cut conditions, exact up to COHORT_SUBSET_TYPES types (beyond, one row per type and one
    for all). A queue's own nominal GPUs a peer borrowed can make the walk's answer break these
    rows; then the solve fails and the walk stands. The ledger replay has the last word."""
    ledger = walk.initial_quota
    rows = []
    by_key: dict[tuple[str, str], list[int]] = {}  # (queue, key) -> columns
    by_type: dict[str, dict[str, list[int]]] = {}  # cohort -> GPU type -> columns
    for column, (index, _) in enumerate(columns):
        queue = walk.jobs[index].queue
        quota = ledger.quotas.get(queue)
        if quota is None:
            continue
        gpu_type = gpu_types[column].upper()
        by_key.setdefault((queue, ledger.key_of(queue, gpu_type)), []).append(column)
        if quota.cohort is not None:
            by_type.setdefault(quota.cohort, {}).setdefault(gpu_type, []).append(column)
    for (name, key), found in by_key.items():
        quota = ledger.quotas[name]
        nominal = ledger.nominal[name].get(key, 0)
        used = ledger.used(name, key)
        own = max(0, nominal - used)
        if quota.cohort is None:
            borrow = 0.0
        else:
            limit = quota.borrowing_limit_gpus
            borrow = np.inf if limit is None else max(0, limit - max(0, used - nominal))
        rows.append((0.0, own + borrow, found, gpus[found].tolist()))
    for cohort, found_by_type in by_type.items():
        book = ledger.cohorts[cohort]
        spare = max(0, book.any_type - book.overflow)
        left = {t: max(0, book.typed.get(t, 0) - book.used.get(t, 0)) for t in found_by_type}
        types = sorted(found_by_type)
        if len(types) <= COHORT_SUBSET_TYPES:
            subsets = [c for size in range(1, len(types) + 1) for c in itertools.combinations(types, size)]
        else:
            subsets = [(t,) for t in types] + [tuple(types)]
        for subset in subsets:
            found = [c for t in subset for c in found_by_type[t]]
            rows.append((0.0, float(sum(left[t] for t in subset) + spare), found, gpus[found].tolist()))
    return rows


def _replay(walk: Walk, picked: dict[int, Placement]) -> None:
    """Place the answer on the node-level capacity (largest workers first) and through the quota
    ledger (in the walk's order); raise NotSolved where either refuses it."""
    capacity = {name: c.copy() for name, c in walk.initial_capacity.items()}
    ledger = walk.initial_quota.copy()
    by_size = sorted(picked, key=lambda i: (-walk.jobs[i].gpus_per_worker, walk.order_rank[i]))
    for index in by_size:
        job, pool = walk.jobs[index], capacity[picked[index].pool]
        if not pool.fits(job.workers, job.gpus_per_worker):
            raise NotSolved(f"{picked[index].pool} cannot hold the answer at node level")
        pool.take(job.workers, job.gpus_per_worker, walk.policy)
    for index in sorted(picked, key=walk.order_rank.__getitem__):
        job = walk.jobs[index]
        gpu_type = picked[index].gpu_type
        if ledger.why_not(job.queue, gpu_type, job.gang_gpus) is not None:
            raise NotSolved(f"queue {job.queue} refuses the answer ({gpu_type})")
        ledger.take(job.queue, gpu_type, job.gang_gpus)
