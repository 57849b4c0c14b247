"""Step 4 of a cycle where the exact path does not run: local search after the greedy pass: fit waiting jobs by moving admitted ones, then make
admitted jobs cheaper by moves and swaps.

Nothing admitted is ever dropped, so priorities hold: a move only relocates a job to another
option it accepts. Bounded by `max_jobs`: past that size the greedy pass alone decides (its
regret order already does most of the work), keeping a 100k-job cycle fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from transfer_operator.api.enums import UtilizationPolicy
from transfer_operator.scheduler.capacity import PoolCapacity, QuotaLedger, build_capacity
from transfer_operator.scheduler.options import Option
from transfer_operator.scheduler.types import Allocation, JobRequest, Placement, PoolState

if TYPE_CHECKING:
    from transfer_operator.scheduler.admit import Walk

MAX_ROUNDS = 4


@dataclass(slots=True)
class Assignment:
    """Admitted jobs of this cycle, with the pools' capacity kept in step."""

    pools: dict[str, PoolState]
    fixed: dict[str, list[Allocation]]  # allocations from before this cycle, per pool
    chosen: dict[str, tuple[JobRequest, Option]]  # job key -> job and its option
    capacity: dict[str, PoolCapacity]
    policy: UtilizationPolicy

    def on_pool(self, pool: str) -> list[str]:
        return sorted(k for k, (_, o) in self.chosen.items() if o.placement.pool == pool)

    def rebuilt(
        self, pool: str, without: str | None = None, adding: JobRequest | None = None
    ) -> PoolCapacity:
        held = list(self.fixed.get(pool, []))
        for key, (job, option) in self.chosen.items():
            if option.placement.pool == pool and key != without:
                held.append(Allocation(key, pool, job.workers, job.gpus_per_worker))
        if adding is not None:
            held.append(Allocation(adding.key, pool, adding.workers, adding.gpus_per_worker))
        return build_capacity([self.pools[pool]], held, self.policy)[pool]

    def fits_after(self, pool: str, job: JobRequest, without: str | None = None) -> bool:
        if without is None:
            return self.capacity[pool].fits(job.workers, job.gpus_per_worker)
        return self.rebuilt(pool, without=without).fits(job.workers, job.gpus_per_worker)

    def place(self, job: JobRequest, option: Option) -> None:
        pool = option.placement.pool
        self.chosen[job.key] = (job, option)
        self.capacity[pool] = self.rebuilt(pool)

    def remove(self, key: str) -> None:
        _, option = self.chosen.pop(key)
        pool = option.placement.pool
        self.capacity[pool] = self.rebuilt(pool)


def _try_insert(
    assignment: Assignment,
    job: JobRequest,
    job_options: list[Option],
    options: dict[str, list[Option]],
    quota: QuotaLedger,
) -> bool:
    """Place `job` directly, or by moving one admitted job out of the way, where the job's queue
    has quota for the option's GPU type (and the moved job's for its new one); takes the quota."""
    job_options = [o for o in job_options if quota.why_not(job.queue, o.placement.gpu_type, job.gang_gpus) is None]
    for option in job_options:
        pool = option.placement.pool
        if assignment.fits_after(pool, job):
            assignment.place(job, option)
            quota.take(job.queue, option.placement.gpu_type, job.gang_gpus)
            return True
    for option in job_options:
        pool = option.placement.pool
        for other_key in assignment.on_pool(pool):
            other, other_option = assignment.chosen[other_key]
            if not assignment.fits_after(pool, job, without=other_key):
                continue
            for alternative in options[other_key]:
                target = alternative.placement.pool
                if target == pool or not assignment.fits_after(target, other):
                    continue
                if not _move_quota(quota, other, other_option, alternative):
                    continue
                assignment.remove(other_key)
                assignment.place(other, alternative)
                if assignment.fits_after(pool, job) and quota.why_not(
                    job.queue, option.placement.gpu_type, job.gang_gpus
                ) is None:
                    assignment.place(job, option)
                    quota.take(job.queue, option.placement.gpu_type, job.gang_gpus)
                    return True
                # Capacity interacts across pools only through the move; undo it.
                assignment.remove(other_key)
                assignment.place(other, other_option)
                _undo_quota(quota, other, alternative, other_option)
    return False


def _move_quota(quota: QuotaLedger, job: JobRequest, current: Option, new: Option) -> bool:
    """Move the job's GPUs in its queue's quota to the new option's GPU type, if it takes them."""
    return quota.move(job.queue, job.gang_gpus, current.placement.gpu_type, new.placement.gpu_type)


def _undo_quota(quota: QuotaLedger, job: JobRequest, moved_to: Option, back_to: Option) -> None:
    quota.move_back(job.queue, job.gang_gpus, moved_to.placement.gpu_type, back_to.placement.gpu_type)


def _cheaper_moves(assignment: Assignment, options: dict[str, list[Option]], quota: QuotaLedger) -> bool:
    improved = False
    for key in sorted(assignment.chosen):
        job, current = assignment.chosen[key]
        for option in options[key]:
            if option.score >= current.score - 1e-9:
                break
            pool = option.placement.pool
            fits = (
                assignment.rebuilt(pool, without=key).fits(job.workers, job.gpus_per_worker)
                if pool == current.placement.pool
                else assignment.fits_after(pool, job)
            )
            if fits and _move_quota(quota, job, current, option):
                assignment.remove(key)
                assignment.place(job, option)
                improved = True
                break
    return improved


def _cheaper_swaps(assignment: Assignment, options: dict[str, list[Option]], quota: QuotaLedger) -> bool:
    improved = False
    keys = sorted(assignment.chosen)
    for i, a_key in enumerate(keys):
        for b_key in keys[i + 1 :]:
            a_job, a_opt = assignment.chosen[a_key]
            b_job, b_opt = assignment.chosen[b_key]
            a_pool, b_pool = a_opt.placement.pool, b_opt.placement.pool
            if a_pool == b_pool:
                continue
            a_new = next((o for o in options[a_key] if o.placement.pool == b_pool), None)
            b_new = next((o for o in options[b_key] if o.placement.pool == a_pool), None)
            if a_new is None or b_new is None:
                continue
            if a_new.score + b_new.score >= a_opt.score + b_opt.score - 1e-9:
                continue
            if not _move_quota(quota, a_job, a_opt, a_new):
                continue
            if not _move_quota(quota, b_job, b_opt, b_new):
                _undo_quota(quota, a_job, a_new, a_opt)
                continue
            assignment.remove(a_key)
            assignment.remove(b_key)
            if assignment.fits_after(b_pool, a_job) and assignment.fits_after(a_pool, b_job):
                assignment.place(a_job, a_new)
                if assignment.fits_after(a_pool, b_job):
                    assignment.place(b_job, b_new)
                    improved = True
                    continue
                assignment.remove(a_key)
            assignment.place(a_job, a_opt)
            assignment.place(b_job, b_opt)
            _undo_quota(quota, b_job, b_new, b_opt)
            _undo_quota(quota, a_job, a_new, a_opt)
    return improved


def improve(
    assignment: Assignment,
    waiting: list[tuple[JobRequest, list[Option]]],
    options: dict[str, list[Option]],
    quota: QuotaLedger,
) -> list[str]:
    """Improve `assignment` in place; returns the keys of waiting jobs it managed to admit."""
    admitted: list[str] = []
    for _ in range(MAX_ROUNDS):
        changed = False
        for job, job_options in waiting:
            if job.key in assignment.chosen:
                continue
            if _try_insert(assignment, job, job_options, options, quota):
                admitted.append(job.key)
                changed = True
        changed |= _cheaper_moves(assignment, options, quota)
        changed |= _cheaper_swaps(assignment, options, quota)
        if not changed:
            break
    return admitted


def local_search(walk: Walk, start: dict[int, Placement] | None = None) -> dict[int, Placement]:
    """Step 4 on a small cycle without the exact path: improve the walk's admissions (moves,
    swaps, insertions) over the full options of every job; or, given `start` (another answer over
    the same options, say HiGHS's best found), improve that one instead. Returns every admitted
    job's placement."""
    entries = {index: walk.cache.estimate(walk.jobs[index]) for index in walk.order}
    if start is None:
        admitted = [(index, walk.placement(index, position)) for index, position in walk.admitted]
        capacity, quota = walk.capacity, walk.quota
        waits = set(walk.waiting)
    else:
        admitted = sorted(start.items(), key=lambda item: walk.order_rank[item[0]])
        held = [
            Allocation(walk.jobs[i].key, p.pool, walk.jobs[i].workers, walk.jobs[i].gpus_per_worker)
            for i, p in admitted
        ]
        capacity = build_capacity(walk.snapshot.pools, [*walk.snapshot.allocations, *held], walk.policy)
        quota = walk.initial_quota.copy()
        for index, placement in admitted:
            quota.take(walk.jobs[index].queue, placement.gpu_type, walk.jobs[index].gang_gpus)
        # The jobs that waited for capacity, or that the walk admitted and `start` does not.
        waits = {*walk.waiting, *(index for index, _ in walk.admitted)} - start.keys()
    chosen: dict[str, tuple[JobRequest, Option]] = {}
    for index, placement in admitted:
        option = next(o for o in entries[index].options if o.placement == placement)
        chosen[walk.jobs[index].key] = (walk.jobs[index], option)
    fixed: dict[str, list[Allocation]] = {}
    for allocation in walk.snapshot.allocations:
        fixed.setdefault(allocation.pool, []).append(allocation)
    pools = {p.name: p for p in walk.snapshot.pools}
    assignment = Assignment(pools, fixed, chosen, capacity, walk.policy)
    waiting = [(walk.jobs[i], entries[i].options) for i in walk.order if i in waits and entries[i].options]
    improve(assignment, waiting, {e.job.key: e.options for e in entries.values()}, quota)
    index_of = {walk.jobs[i].key: i for i in walk.order}
    return {index_of[key]: option.placement for key, (_, option) in chosen.items()}
