"""Preemption: for a job that fits nowhere, the fewest lower-priority jobs whose eviction makes room.

The search is bounded, whatever the fleet holds:
- only allocations that hold GPUs are candidates (a zero-GPU job frees nothing; an admission
  still being written is no victim), indexed by pool and by queue, lowest priority first, newest
  first;
- per option, one check with every candidate gone comes first; an option that cannot fit even
  then costs that one check; past LINEAR_SEARCH candidates the shortest prefix is found by
  bisection and not pruned further (pruning k victims costs k checks of the whole pool);
- across queues, only the cohort reclaims (Kueue's rule): a job may preempt a job of another
  queue only when both queues have quotas in the same cohort and the other queue uses more than
  its nominal GPUs of the victim's GPU type (it borrows them); with no quotas at all, any lower-priority job on the pool;
- a search that found nothing is remembered for the rest of the cycle: capacity only shrinks and
  claimed victims stay claimed, so a later job asking for the same with no higher priority is
  answered at once;
- running elastic gangs are shrunk rather than evicted: first alone (no eviction at all) when
  shrinking them to their minimum is enough; else each gang among the evicted keeps the most
  workers (at least its minimum) that still leave room. The operator restarts a shrunk gang at its
  new size from its checkpoint, as a growth does.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from transfer_operator.api.enums import Reason, UtilizationPolicy
from transfer_operator.scheduler.capacity import QuotaLedger, build_capacity
from transfer_operator.scheduler.options import JobOptions, Option
from transfer_operator.scheduler.types import (
    Action,
    Allocation,
    ClusterSnapshot,
    Decision,
    Fit,
    JobRequest,
    PoolState,
)

PREEMPTION_OPTIONS = 50  # a job that fits nowhere looks for victims on its best pools only
NAMED_VICTIMS = 10  # victims a message names; the decision carries them all
LINEAR_SEARCH = 64  # candidates up to which victims are added one by one; beyond, by bisection


def _victim_order(allocation: Allocation) -> tuple[int, float, str]:
    return (allocation.priority, -allocation.admitted_at_s, allocation.job_key)


@dataclass(frozen=True, slots=True)
class Victims:
    """What makes room for a job: lower-priority jobs to evict, and elastic gangs to shrink,
    each with the workers it keeps."""

    evicted: tuple[str, ...]
    shrunk: tuple[tuple[str, int], ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.evicted + tuple(key for key, _ in self.shrunk)

    @property
    def order(self) -> tuple[int, int]:
        """Fewer evictions first, then fewer shrinks."""
        return len(self.evicted), len(self.shrunk)


def preempt_decision(entry: JobOptions, option: Option, victims: Victims) -> Decision:
    pool = option.placement.pool
    said = [*victims.evicted, *(f"{key} (shrunk to {keep} workers)" for key, keep in victims.shrunk)]
    verb = "preempting" if victims.evicted else "shrinking"
    return Decision(
        entry.job.key,
        Action.PREEMPT,
        Fit.PREEMPT,
        Reason.PREEMPTING,
        f"{verb} {len(said)} lower-priority job(s) on {pool}: "
        + ", ".join(said[:NAMED_VICTIMS])
        + (f" and {len(said) - NAMED_VICTIMS} more" if len(said) > NAMED_VICTIMS else ""),
        placement=option.placement,
        victims=victims.evicted,
        shrinks=victims.shrunk,
    )


@dataclass
class Preemptor:
    """What one cycle's preemption searches share: the candidates by pool and by queue, what
    every pool holds now, the victims claimed so far, and the searches that found nothing."""

    pools: dict[str, PoolState]
    policy: UtilizationPolicy
    by_pool: dict[str, list[Allocation]]  # candidates, in victim order
    by_queue: dict[str, list[Allocation]]
    held: dict[str, list[Allocation]]  # everything holding GPUs now, this cycle's admissions too
    lowest_priority: float  # of any candidate
    taken: set[str] = field(default_factory=set)
    failed: dict[tuple[object, ...], int] = field(default_factory=dict)  # request -> highest priority

    @classmethod
    def of(cls, snapshot: ClusterSnapshot) -> Preemptor:
        candidates = sorted((a for a in snapshot.allocations if a.gpus > 0 and not a.in_flight), key=_victim_order)
        by_pool: defaultdict[str, list[Allocation]] = defaultdict(list)
        by_queue: defaultdict[str, list[Allocation]] = defaultdict(list)
        held: defaultdict[str, list[Allocation]] = defaultdict(list)
        for allocation in candidates:
            by_pool[allocation.pool].append(allocation)
            by_queue[allocation.queue].append(allocation)
        for allocation in snapshot.allocations:
            held[allocation.pool].append(allocation)
        return cls(
            {pool.name: pool for pool in snapshot.pools},
            snapshot.policy,
            dict(by_pool),
            dict(by_queue),
            held,
            min((a.priority for a in candidates), default=float("inf")),
        )

    def admitted(self, allocation: Allocation) -> None:
        self.held[allocation.pool].append(allocation)

    def plan(self, entry: JobOptions, quota: QuotaLedger) -> tuple[Option, Victims] | None:
        """The option that fits once the fewest lower-priority jobs leave (or shrink), and those
        jobs; None if there is none (remembered for this cycle). Claims the victims it returns."""
        job = entry.job
        if job.priority <= self.lowest_priority:
            return None
        request = _request_of(job)
        if self.failed.get(request, -(2**63)) >= job.priority:
            return None
        best: tuple[tuple[int, int, float, str], Option, Victims] | None = None
        quota_matters = job.queue in quota.quotas
        for position in range(min(entry.count, PREEMPTION_OPTIONS)):
            option = entry.option_at(position)
            pool_name = option.placement.pool
            candidates = self._candidates(job, pool_name, quota_matters, quota)
            if not candidates:
                continue
            victims = self._minimal_victims(job, self.pools[pool_name], candidates, quota)
            if victims is None:
                continue
            key = (*victims.order, option.score, pool_name)
            if best is None or key < best[0]:
                best = (key, option, victims)
        if best is None:
            self.failed[request] = max(job.priority, self.failed.get(request, -(2**63)))
            return None
        self.taken.update(best[2].keys)
        return best[1], best[2]

    def _candidates(
        self, job: JobRequest, pool: str, quota_matters: bool, quota: QuotaLedger
    ) -> list[Allocation]:
        """Lower-priority allocations on the pool, or (when its quota may be what stops the job)
        in the job's own queue, unclaimed, in victim order."""

        def usable(found: Iterable[Allocation]) -> list[Allocation]:
            out = []
            for allocation in found:
                if allocation.priority >= job.priority:
                    break  # in victim order: every later one has an equal or higher priority
                if allocation.job_key not in self.taken and may_reclaim(job.queue, allocation, quota):
                    out.append(allocation)
            return out

        on_pool = usable(self.by_pool.get(pool, ()))
        if not quota_matters:
            return on_pool
        # Its own queue's jobs elsewhere free its quota only where they count against the same
        # GPU type's quota as this pool (quotas are per GPU type).
        key = quota.key_of(job.queue, self.pools[pool].gpu_type)
        in_queue = [
            a
            for a in usable(self.by_queue.get(job.queue, ()))
            if a.pool != pool and a.pool in self.pools and quota.key_of(job.queue, self.pools[a.pool].gpu_type) == key
        ]
        return sorted(on_pool + in_queue, key=_victim_order)

    def _fits_without(
        self, job: JobRequest, pool: PoolState, removed: Sequence[Allocation], quota: QuotaLedger
    ) -> bool:
        """Would the job fit on `pool` (and in its quota) if `removed` were evicted?"""
        return self._fits_after(job, pool, [(a, 0) for a in removed], quota)

    def _fits_after(
        self, job: JobRequest, pool: PoolState, freed: Sequence[tuple[Allocation, int]], quota: QuotaLedger
    ) -> bool:
        """Would the job fit on `pool` (and in its quota) if each allocation of `freed` kept only
        its given workers (0: evicted)?"""
        if job.queue in quota.quotas:
            trial_quota = quota.copy()
            for allocation, keep in freed:
                gpu_type = quota.type_of(allocation.pool)
                if gpu_type is not None:
                    trial_quota.give_back(
                        allocation.queue, gpu_type, (allocation.workers - keep) * allocation.gpus_per_worker
                    )
            if trial_quota.why_not(job.queue, pool.gpu_type, job.gang_gpus) is not None:
                return False
        kept = {a.job_key: keep for a, keep in freed}
        staying = []
        for allocation in self.held.get(pool.name, ()):
            workers = kept.get(allocation.job_key)
            if workers is None:
                staying.append(allocation)
            elif workers > 0:
                staying.append(dataclasses.replace(allocation, workers=workers))
        return build_capacity([pool], staying, self.policy)[pool.name].fits(job.workers, job.gpus_per_worker)

    def _minimal_victims(
        self, job: JobRequest, pool: PoolState, candidates: list[Allocation], quota: QuotaLedger
    ) -> Victims | None:
        """What makes room with the least lost: shrinking elastic gangs alone when that is enough;
        else the shortest prefix of the candidates after which the job fits, pruned to a minimal
        set, with the elastic gangs among it shrunk rather than evicted where that is enough."""
        shrinkable = [a for a in candidates if _shrinkable(a)][:LINEAR_SEARCH]
        if shrinkable:
            freed = [(a, a.min_workers or 0) for a in shrinkable]
            if self._fits_after(job, pool, freed, quota):
                return self._least_taken(job, pool, freed, quota)
        if not self._fits_without(job, pool, candidates, quota):
            return None
        if len(candidates) <= LINEAR_SEARCH:
            end = next(
                k for k in range(1, len(candidates) + 1) if self._fits_without(job, pool, candidates[:k], quota)
            )
        else:
            low, end = 0, len(candidates)  # fits with candidates[:end]; not known for low
            while end - low > 1:
                middle = (low + end) // 2
                if self._fits_without(job, pool, candidates[:middle], quota):
                    end = middle
                else:
                    low = middle
        removed = candidates[:end]
        if len(removed) > LINEAR_SEARCH:
            return Victims(tuple(sorted(a.job_key for a in removed)))  # the shortest prefix; pruning would cost k^2
        # Prune: keep a victim only if the job no longer fits without evicting it.
        for allocation in list(reversed(removed)):
            trial = [a for a in removed if a is not allocation]
            if self._fits_without(job, pool, trial, quota):
                removed = trial
        return self._least_taken(job, pool, [(a, 0) for a in removed], quota)

    def _least_taken(
        self, job: JobRequest, pool: PoolState, freed: list[tuple[Allocation, int]], quota: QuotaLedger
    ) -> Victims:
        """`freed` (each allocation with the workers it keeps) with which the job fits, each elastic
        gang (the last in victim order first) then given back the most workers it may keep."""
        freed = list(freed)
        for index in reversed(range(len(freed))):
            freed[index] = (freed[index][0], self._most_kept(job, pool, freed, index, quota))
        return Victims(
            tuple(sorted(a.job_key for a, keep in freed if keep == 0)),
            tuple(sorted((a.job_key, keep) for a, keep in freed if 0 < keep < a.workers)),
        )

    def _most_kept(
        self, job: JobRequest, pool: PoolState, freed: list[tuple[Allocation, int]], index: int, quota: QuotaLedger
    ) -> int:
        """The most workers (0, or min_workers up to all it holds) the allocation `freed[index]`
        may keep with the job still fitting, given what it keeps now does. Fitting only gets easier
        as it keeps less, so the size is found by bisection."""
        allocation, keep = freed[index]
        if not _shrinkable(allocation):
            return keep

        def fits_keeping(workers: int) -> bool:
            return self._fits_after(job, pool, [*freed[:index], (allocation, workers), *freed[index + 1 :]], quota)

        fewest = allocation.min_workers or 0
        if keep < fewest and not fits_keeping(fewest):
            return keep
        low, high = max(keep, fewest), allocation.workers + 1  # fits keeping `low`, not keeping `high`
        while high - low > 1:
            middle = (low + high) // 2
            if fits_keeping(middle):
                low = middle
            else:
                high = middle
        return low


def _shrinkable(allocation: Allocation) -> bool:
    fewest = allocation.min_workers
    return fewest is not None and 0 < fewest < allocation.workers


def may_reclaim(queue: str, victim: Allocation, quota: QuotaLedger) -> bool:
    """May a job of `queue` preempt `victim` (priority aside)? Of its own queue: yes. Of another:
    only within a cohort, from a queue that borrows GPUs of the victim's pool's type (uses more
    than its nominal GPUs of the quota that type counts against, as Kueue reclaims per flavor);
    a queue outside every cohort is never preempted from outside. With no quota for either
    queue (no TransferQueue, no configured queue), only the pools limit jobs: yes."""
    victim_queue = victim.queue
    if queue == victim_queue:
        return True
    mine, theirs = quota.quotas.get(queue), quota.quotas.get(victim_queue)
    if mine is None and theirs is None:
        return True
    if mine is None or theirs is None or mine.cohort is None or mine.cohort != theirs.cohort:
        return False
    gpu_type = quota.type_of(victim.pool)
    return gpu_type is not None and quota.borrows(victim_queue, gpu_type)


def _request_of(job: JobRequest) -> tuple[object, ...]:
    """What a preemption search depends on besides the priority: the same options and gang."""
    return (
        job.workers,
        job.gpus_per_worker,
        None if job.gpu_type is None else job.gpu_type.upper(),
        job.regions,
        job.spot,
        job.max_usd_per_gpu_hour,
        job.budget_usd,
        job.estimated_hours,
        job.queue,
        job.prefer,
    )
