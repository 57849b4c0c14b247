"""Preemption: for a job that fits nowhere, the fewest lower-priority jobs whose eviction makes room.

The search is bounded, whatever the fleet holds:
- only allocations that hold GPUs are candidates (a zero-GPU job frees nothing), indexed by pool
  and by queue, lowest priority first, newest first;
- per option, one check with every candidate gone comes first; an option that cannot fit even
  then costs that one check; past LINEAR_SEARCH candidates the shortest prefix is found by
  bisection and not pruned further (pruning k victims costs k checks of the whole pool);
- across queues, only the cohort reclaims (Kueue's rule): a job may preempt a job of another
  queue only when both queues have quotas in the same cohort and the other queue uses more than
  its nominal GPUs of the victim's GPU type (it borrows them); with no quotas at all, any lower-priority job on the pool;
- a search that found nothing is remembered for the rest of the cycle: capacity only shrinks and
  claimed victims stay claimed, so a later job asking for the same with no higher priority is
  answered at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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


def preempt_decision(entry: JobOptions, option: Option, victims: tuple[str, ...]) -> Decision:
    return Decision(
        entry.job.key,
        Action.PREEMPT,
        Fit.PREEMPT,
        Reason.PREEMPTING,
        f"preempting {len(victims)} lower-priority job(s) on {option.placement.pool}: "
        + ", ".join(victims[:NAMED_VICTIMS])
        + (f" and {len(victims) - NAMED_VICTIMS} more" if len(victims) > NAMED_VICTIMS else ""),
        placement=option.placement,
        victims=victims,
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
        candidates = sorted((a for a in snapshot.allocations if a.gpus > 0), key=_victim_order)
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

    def plan(self, entry: JobOptions, quota: QuotaLedger) -> tuple[Option, tuple[str, ...]] | None:
        """The option that fits once the fewest lower-priority jobs leave, and those jobs; None if
        there is none (remembered for this cycle). Claims the victims it returns."""
        job = entry.job
        if job.priority <= self.lowest_priority:
            return None
        request = _request_of(job)
        if self.failed.get(request, -(2**63)) >= job.priority:
            return None
        best: tuple[tuple[int, float, str], Option, tuple[str, ...]] | None = None
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
            key = (len(victims), option.score, pool_name)
            if best is None or key < best[0]:
                best = (key, option, victims)
        if best is None:
            self.failed[request] = max(job.priority, self.failed.get(request, -(2**63)))
            return None
        self.taken.update(best[2])
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
        self, job: JobRequest, pool: PoolState, removed: list[Allocation], quota: QuotaLedger
    ) -> bool:
        """Would the job fit on `pool` (and in its quota) if `removed` were evicted?"""
        if job.queue in quota.quotas:
            trial_quota = quota.copy()
            for allocation in removed:
                gpu_type = quota.type_of(allocation.pool)
                if gpu_type is not None:
                    trial_quota.give_back(allocation.queue, gpu_type, allocation.gpus)
            if trial_quota.why_not(job.queue, pool.gpu_type, job.gang_gpus) is not None:
                return False
        removed_keys = {a.job_key for a in removed}
        staying = [a for a in self.held.get(pool.name, ()) if a.job_key not in removed_keys]
        return build_capacity([pool], staying, self.policy)[pool.name].fits(job.workers, job.gpus_per_worker)

    def _minimal_victims(
        self, job: JobRequest, pool: PoolState, candidates: list[Allocation], quota: QuotaLedger
    ) -> tuple[str, ...] | None:
        """The shortest prefix of the candidates after which the job fits, pruned to a minimal set."""
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
            return tuple(sorted(a.job_key for a in removed))  # the shortest prefix; pruning would cost k^2
        # Prune: keep a victim only if the job no longer fits without evicting it.
        for allocation in list(reversed(removed)):
            trial = [a for a in removed if a is not allocation]
            if self._fits_without(job, pool, trial, quota):
                removed = trial
        return tuple(sorted(a.job_key for a in removed))


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
