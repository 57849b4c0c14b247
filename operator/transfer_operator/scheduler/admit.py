"""Step 3 of a cycle, admit: walk the jobs in order; each takes its best option that fits now.

Admissions change what later jobs find, so the walk goes one job at a time, but a job touches few
options: a job for whose GPU type and regions no pool is left that fits its gang waits at once
(fitting.py, a chunk of the order at a time with NumPy), and among options of equal score the
utilization policy decides (binpack: fewest free GPUs; spread: most).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from transfer_operator.api.enums import Preference, Reason, UtilizationPolicy
from transfer_operator.scheduler.batch import Estimates
from transfer_operator.scheduler.capacity import PoolCapacity, QuotaLedger, build_capacity
from transfer_operator.scheduler.costmap import (
    RankingLists,
    Signature,
    budget_limit,
    gang_fits_empty,
    placement_cost,
    score,
    within_budget,
    within_price_cap,
)
from transfer_operator.scheduler.explain import explain_static_misfit
from transfer_operator.scheduler.fitting import FitTracker, Shape
from transfer_operator.scheduler.options import OptionCache
from transfer_operator.scheduler.preemption import Preemptor, preempt_decision
from transfer_operator.scheduler.types import (
    Action,
    Allocation,
    ClusterSnapshot,
    Decision,
    Fit,
    JobRequest,
    Placement,
    PoolState,
    new_placement,
)

WALK_CHUNK = 512  # jobs per NumPy check of which fit no pool


class Walk:
    """Step 3, admit: the jobs in order, each taking its best option that fits the capacity and
    quota left (gang: all workers in one pool, or none); a job that fits nowhere may name
    lower-priority victims (preemption.py), else waits. Jobs are referred to by their index in
    `pending`; `admitted`, `waiting` and `decided` are what the later steps read."""

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        pending: Sequence[JobRequest],
        cache: OptionCache,
        estimates: Estimates,
        order: list[int],
    ):
        self.snapshot = snapshot
        self.jobs = pending
        self.policy = snapshot.policy
        self.cache = cache
        self.table = self.cache.table
        self.names = [p.name for p in snapshot.pools]
        self.startup = [p.startup_hours for p in snapshot.pools]
        self.capacity = build_capacity(snapshot.pools, snapshot.allocations, snapshot.policy)
        self.capacities = [self.capacity[name] for name in self.names]
        self.free = [c.free_gpus for c in self.capacities]
        self.initial_free = np.array(self.free, dtype=np.int64)
        self.quota = QuotaLedger.build(snapshot.quotas, snapshot.allocations, snapshot.pools)
        self.row_type = [p.gpu_type.upper() for p in snapshot.pools]
        self.types_of: dict[int, list[str]] = {}  # signature -> GPU types of its options
        self.initial_quota = self.quota.copy()  # the walk takes from `quota` and `capacity`
        self.estimates = estimates
        columns = estimates.columns
        self.order = order
        self.best: list[int] = estimates.best.tolist()  # ranking position of each job's best option, -1: none
        self.rankings = estimates.streams.rankings
        self.signature: list[int] = columns.signature.tolist()
        self.region_set: list[int] = columns.region_set.tolist()
        self.region_codes: list[frozenset[int] | None] = [None] + [
            frozenset(c) for c in estimates.region_codes[1:]
        ]
        # Jobs that need a pool with room: some option, and GPUs to place.
        searchable = (estimates.counts > 0) & (columns.gpus_per_worker > 0)
        shapes, shape = _shapes(columns.workers, columns.gpus_per_worker, searchable)
        self.fit = FitTracker(self.table, self.capacities, shapes)
        self.shape_of = shape
        self.shape: list[int] = shape.tolist()
        self.groups = self._group_matrix(columns.signatures, columns.signature, columns.region_set)
        # Only allocations from before this cycle that hold GPUs can be preempted.
        self.preemptor = Preemptor.of(snapshot)
        self.lowest_priority = self.preemptor.lowest_priority
        quotas = self.quota.quotas
        has_quota = np.array([j.queue in quotas for j in pending], dtype=bool) if quotas else False
        # A job that fits nowhere can wait without a second look, unless its quota or a
        # preemption would change what it is told.
        self.may_skip = searchable & ~has_quota & (columns.priority <= self.lowest_priority)
        self.admissions: list[tuple[int, int]] = []  # (pool row, GPUs), in order
        self.admitted: list[tuple[int, int]] = []  # (job, ranking position of its option), in order
        self.waiting: list[int] = []  # jobs that fit no pool now, in order
        self.static: list[int] = []  # jobs no pool can ever take (explained when read)
        self.decided: dict[int, Decision] = {}  # quota waits, preemptions
        self.misfits: dict[tuple[object, ...], tuple[Reason, str]] = {}  # request -> static reason

    @cached_property
    def initial_capacity(self) -> dict[str, PoolCapacity]:
        """The capacity before the walk took any (the exact path and local search start from it)."""
        return build_capacity(self.snapshot.pools, self.snapshot.allocations, self.snapshot.policy)

    @cached_property
    def order_rank(self) -> dict[int, int]:
        return {index: rank for rank, index in enumerate(self.order)}

    def _group_matrix(
        self, signatures: list[Signature], signature: np.ndarray, region_set: np.ndarray
    ) -> np.ndarray:
        """Per job: its (GPU type, region) groups in the fit tracker, -1 where none."""
        fit = self.fit
        type_of_signature = np.array(
            [fit.any_type if gpu is None else fit.type_code.get(gpu, -1) for gpu, _, _ in signatures],
            dtype=np.int64,
        )
        job_type = type_of_signature[signature][:, None]
        codes = self.estimates.code_matrix[region_set]
        return np.where((codes >= 0) & (job_type >= 0), fit.group(job_type, codes), -1)

    def run(self) -> None:
        """Decide every job in order. Per chunk of the order, the jobs that no pool can fit are
        found with NumPy first: capacity only shrinks, so they still fit nowhere at their turn."""
        order = self.order
        for start in range(0, len(order), WALK_CHUNK):
            chunk = order[start : start + WALK_CHUNK]
            for index, fits_nowhere in zip(chunk, self._fit_nowhere(chunk), strict=True):
                if fits_nowhere:
                    self.waiting.append(index)
                else:
                    self.decide(index)

    def _fit_nowhere(self, chunk: list[int]) -> list[bool]:
        jobs = np.array(chunk, dtype=np.int64)
        may_skip = self.may_skip[jobs]
        if not may_skip.any():
            return [False] * len(chunk)
        groups = self.groups[jobs]
        alive = np.array(self.fit.alive)[np.maximum(self.shape_of[jobs], 0)[:, None], np.maximum(groups, 0)]
        return (may_skip & ~((alive > 0) & (groups >= 0)).any(axis=1)).tolist()

    def decide(self, index: int) -> None:
        job = self.jobs[index]
        if self.best[index] < 0:
            self.static.append(index)
            return
        quota_problem, allowed = self._quota_check(index, job)
        if quota_problem is not None:
            position = None
        elif allowed is None:
            position = self._choose(index, job)
        else:
            position = self._choose_within(index, job, allowed)
            if position is None:
                quota_problem = self._quota_wait(index, job, allowed)
        if position is not None:
            self._admit(index, job, position)
            return
        if job.priority > self.lowest_priority:
            entry = self.cache.estimate(job)
            preemption = self.preemptor.plan(entry, self.quota)
            if preemption is not None:
                option, victims = preemption
                self.decided[index] = preempt_decision(entry, option, victims)
                return
        if quota_problem is not None:
            self.decided[index] = Decision(
                job.key, Action.WAIT, Fit.NO_FIT, Reason.QUOTA_EXCEEDED, quota_problem
            )
        else:
            self.waiting.append(index)

    def _quota_check(self, index: int, job: JobRequest) -> tuple[str | None, frozenset[str] | None]:
        """Quotas are per GPU type (capacity.QuotaLedger): why the job's queue may take its gang
        of no GPU type it could run on, or None and the types it may take (None: all of them)."""
        quota = self.quota
        if job.queue not in quota.quotas or job.gang_gpus == 0:
            return None, None
        if job.gpu_type is not None:
            return quota.why_not(job.queue, job.gpu_type, job.gang_gpus), None
        types = self._types_of(index)
        problems = {t: quota.why_not(job.queue, t, job.gang_gpus) for t in types}
        refused = [p for p in problems.values() if p is not None]
        if not refused:
            return None, None
        if len(refused) == len(types):
            return "; ".join(refused), None
        return None, frozenset(t for t, p in problems.items() if p is None)

    def _types_of(self, index: int) -> list[str]:
        """The GPU types of the pools among the job's options, sorted."""
        signature = self.signature[index]
        found = self.types_of.get(signature)
        if found is None:
            rows = self.rankings[signature].lists.pool
            found = self.types_of[signature] = sorted({self.row_type[row] for row in rows})
        return found

    def _quota_wait(self, index: int, job: JobRequest, allowed: frozenset[str]) -> str:
        """Why a job of any GPU type waits when its queue has quota for some of its types only and
        no pool of those has room for the gang now."""
        problems = (self.quota.why_not(job.queue, t, job.gang_gpus) for t in self._types_of(index) if t not in allowed)
        blocked = [p for p in problems if p is not None]
        return (
            f"queue {job.queue} has quota for {job.gang_gpus} GPUs of {', '.join(sorted(allowed))} only, "
            f"and no pool of {'that type' if len(allowed) == 1 else 'those types'} has room for the gang now; "
            + "; ".join(blocked)
        )

    def _choose_within(self, index: int, job: JobRequest, allowed: frozenset[str]) -> int | None:
        """`_choose` among the options on pools of the GPU types in `allowed` (those the job's
        queue has quota for now): the positions whose pool fits the gang, best first, then ties
        by the utilization policy."""
        shape = self.shape[index]
        signature = self.signature[index]
        ranking = self.rankings[signature]
        lists = ranking.lists
        positions = self.fit.fitting_positions(signature, ranking, shape)
        fit = self.fit.workers_that_fit[job.gpus_per_worker]
        row_type = self.row_type
        first = None
        read = 0
        while first is None:
            for position in positions[read:]:
                row = lists.pool[position]
                if row_type[row] in allowed and fit[row] >= job.workers and self._kept(index, job, lists, position):
                    first = position
                    break
            read = len(positions)
            if first is None and not self.fit.read_more(signature, ranking, shape, positions):
                return None
        threshold = _score(lists, first, job) + 1e-9
        best, best_key = first, self._tie_key(lists.pool[first])
        for position in range(first + 1, len(lists.pool)):
            row = lists.pool[position]
            if row_type[row] not in allowed or not self._kept(index, job, lists, position):
                continue
            if _score(lists, position, job) > threshold:
                break
            if fit[row] < job.workers:
                continue
            key = self._tie_key(row)
            if key < best_key:
                best, best_key = position, key
        return best

    def static_misfit(self, index: int) -> Decision:
        """A job no pool can ever take: explained once per distinct request in a cycle."""
        job = self.jobs[index]
        request = (
            self.signature[index],
            job.regions,
            job.workers,
            job.gpus_per_worker,
            job.max_usd_per_gpu_hour,
            job.budget_usd,
            job.estimated_hours,
        )
        found = self.misfits.get(request)
        if found is None:
            ranking = self.rankings[self.signature[index]]
            found = self.misfits[request] = explain_static_misfit(job, self.table, ranking)
        return Decision(job.key, Action.WAIT, Fit.NO_FIT, found[0], found[1])

    def _choose(self, index: int, job: JobRequest) -> int | None:
        """Ranking position of the best option whose pool can take the whole gang now; among
        options of equal score, the utilization policy decides."""
        if job.gpus_per_worker == 0:
            return self._best_of_ties(index, job, self.best[index])
        shape = self.shape[index]
        if not self.fit.any_fits(shape, [g for g in self.groups[index].tolist() if g >= 0]):
            return None
        position = self._first_fitting(index, job, shape)
        return None if position is None else self._best_of_ties(index, job, position)

    def _first_fitting(self, index: int, job: JobRequest, shape: int) -> int | None:
        signature = self.signature[index]
        ranking = self.rankings[signature]
        lists = ranking.lists
        positions = self.fit.fitting_positions(signature, ranking, shape)
        fit = self.fit.workers_that_fit[job.gpus_per_worker]
        workers, pools, region, usd, cost = (
            job.workers,
            lists.pool,
            lists.region_code,
            lists.usd,
            lists.cost_per_gpu_hour,
        )
        codes = self.region_codes[self.region_set[index]]
        cap = job.max_usd_per_gpu_hour
        limit = None if job.budget_usd is None else budget_limit(job.budget_usd)
        gang_hours = job.gang_gpus * job.estimated_hours
        unfit: list[int] = []  # indices into positions of pools that stopped fitting
        scanned = 0
        found = None
        while found is None:
            for position in positions[scanned:] if scanned else positions:
                if fit[pools[position]] < workers:
                    unfit.append(scanned)
                elif (
                    (codes is None or region[position] in codes)
                    and (cap is None or within_price_cap(usd[position], cap))
                    and (limit is None or within_budget(cost[position], gang_hours, limit))
                ):
                    found = position
                    break
                scanned += 1
            if found is None and not self.fit.read_more(signature, ranking, shape, positions):
                break
        for at in reversed(unfit):  # capacity only shrinks: they fit no later job of the shape either
            del positions[at]
        return found

    def _best_of_ties(self, index: int, job: JobRequest, first: int) -> int:
        lists = self.rankings[self.signature[index]].lists
        threshold = _score(lists, first, job) + 1e-9
        if _no_tie_after(lists, first, job, threshold):
            return first
        best, best_key = first, self._tie_key(lists.pool[first])
        if _monotone(lists, job):
            # Scores never fall along the ranking: the first option over the threshold ends the
            # ties, kept or not. A pool that fits the gang now fits it empty (no gang check).
            fit = self.fit.workers_that_fit[job.gpus_per_worker] if job.gpus_per_worker else None
            for position in range(first + 1, len(lists.pool)):
                if _score(lists, position, job) > threshold:
                    break
                row = lists.pool[position]
                if fit is not None and fit[row] < job.workers:
                    continue
                if not self._kept(index, job, lists, position, gang=False):
                    continue
                key = self._tie_key(row)
                if key < best_key:
                    best, best_key = position, key
            return best
        for position in range(first + 1, len(lists.pool)):
            if not self._kept(index, job, lists, position):
                continue
            if _score(lists, position, job) > threshold:
                break
            row = lists.pool[position]
            if job.gpus_per_worker and self.fit.workers_that_fit[job.gpus_per_worker][row] < job.workers:
                continue
            key = self._tie_key(row)
            if key < best_key:
                best, best_key = position, key
        return best

    def _tie_key(self, row: int) -> tuple[float, int, str]:
        # Nodes that exist before nodes to buy (elastic.py); then binpack: fill the pool with the
        # fewest free GPUs, keeping whole nodes free elsewhere.
        free = self.free[row]
        return self.startup[row], (free if self.policy is UtilizationPolicy.BINPACK else -free), self.names[row]

    def _kept(self, index: int, job: JobRequest, lists: RankingLists, position: int, gang: bool = True) -> bool:
        """Whether the option passes the job's static limits (the cost map's, as JobOptions.keep);
        `gang=False` skips the gang limit (for a caller that checked the pool fits the gang now)."""
        codes = self.region_codes[self.region_set[index]]
        if codes is not None and lists.region_code[position] not in codes:
            return False
        if gang and not gang_fits_empty(
            job.workers, job.gpus_per_worker, lists.nodes[position], lists.gpus_per_node[position]
        ):
            return False
        cap = job.max_usd_per_gpu_hour
        if cap is not None and not within_price_cap(lists.usd[position], cap):
            return False
        return job.budget_usd is None or bool(
            within_budget(
                lists.cost_per_gpu_hour[position], job.gang_gpus * job.estimated_hours, budget_limit(job.budget_usd)
            )
        )

    def _admit(self, index: int, job: JobRequest, position: int) -> None:
        row = self.rankings[self.signature[index]].lists.pool[position]
        levels = self.capacities[row].take(job.workers, job.gpus_per_worker, self.policy)
        self.free[row] -= job.gang_gpus
        if job.gpus_per_worker:
            self.fit.taken(row, levels, job.gpus_per_worker)
        self.quota.take(job.queue, self.row_type[row], job.gang_gpus)
        if self.snapshot.allocations:
            self.preemptor.admitted(
                Allocation(
                    job.key,
                    self.names[row],
                    job.workers,
                    job.gpus_per_worker,
                    job.priority,
                    job.queue,
                    math.inf,
                )
            )
        self.admissions.append((row, job.gang_gpus))
        self.admitted.append((index, position))

    def placement(self, index: int, position: int) -> Placement:
        """The job's placement at this position of its ranking."""
        job = self.jobs[index]
        lists = self.rankings[self.signature[index]].lists
        return _placements(self.snapshot.pools, lists, (position,), job.estimated_hours, job.gang_gpus)[0]


def _placements(
    pools: Sequence[PoolState],
    lists: RankingLists,
    positions: Sequence[int],
    estimated_hours: float,
    gpus: int,
) -> list[Placement]:
    """The placements of a job at these ranking positions (as JobOptions.option_at builds them)."""
    out = []
    rows, usds, hours_per_hour, classes = lists.pool, lists.usd, lists.hours_per_hour, lists.price_class
    for position in positions:
        pool = pools[rows[position]]
        usd = usds[position]
        hours = hours_per_hour[position] * estimated_hours
        out.append(
            new_placement(
                pool.name,
                pool.region,
                pool.gpu_type,
                classes[position],
                usd,
                gpus,
                hours + pool.startup_hours,
                placement_cost(usd, gpus, hours),
                pool.zone,
            )
        )
    return out


def _shapes(
    workers: np.ndarray, gpus_per_worker: np.ndarray, jobs: np.ndarray
) -> tuple[list[Shape], np.ndarray]:
    """The distinct gang shapes of the jobs selected by `jobs`, and per job its shape's index (-1 if
    not selected)."""
    shape = np.full(len(workers), -1, dtype=np.int64)
    if not jobs.any():
        return [], shape
    width = int(gpus_per_worker[jobs].max()) + 1
    distinct, shape[jobs] = np.unique(workers[jobs] * width + gpus_per_worker[jobs], return_inverse=True)
    return [(int(key) // width, int(key) % width) for key in distinct], shape


def _monotone(lists: RankingLists, job: JobRequest) -> bool:
    """Whether the job's scores never fall along the ranking (every preference ranks by its own
    score per unit of job size first; see costmap.rank), so that a score over a threshold means
    every later one is over it too."""
    return lists.non_negative and job.estimated_hours >= 0 and job.gang_gpus >= 0


def _no_tie_after(lists: RankingLists, first: int, job: JobRequest, threshold: float) -> bool:
    """Whether no option ranked after `first` can score within `threshold`, judged from the next
    position alone. It can when scores never fall along the ranking: `cheapest` ranks by cost,
    `fastest` by hours (its score is hours x 1e6 plus a non-negative cost)."""
    following = first + 1
    if following >= len(lists.pool):
        return True
    if not lists.non_negative or job.estimated_hours < 0 or job.gang_gpus < 0:
        return False
    if job.prefer is Preference.CHEAPEST:
        return _score(lists, following, job) > threshold
    if job.prefer is Preference.FASTEST:
        return lists.hours_per_hour[following] * job.estimated_hours * 1e6 > threshold
    return False


def _score(lists: RankingLists, position: int, job: JobRequest) -> float:
    """The cost map's score of the job's option at this ranking position."""
    cost = lists.cost_per_gpu_hour[position] * (job.gang_gpus * job.estimated_hours)
    hours = lists.hours_per_hour[position] * job.estimated_hours
    return float(score(cost, hours, job.prefer))
