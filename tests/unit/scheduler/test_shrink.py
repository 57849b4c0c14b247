"""Preemption shrinks running elastic gangs before it evicts anyone (scheduler/preemption.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_operator.scheduler import Action, QueueQuota, schedule
from transfer_operator.scheduler.capacity import build_capacity
from transfer_operator.scheduler.types import Allocation, Decision

from .builders import a_job, a_pool, held, snapshot_of


def decide(snapshot, job) -> Decision:
    (decision,) = schedule(snapshot, [job])
    return decision


def one_gpu_workers(key: str, workers: int, fewest: int | None, *, at: float = 0.0, priority: int = 1) -> Allocation:
    return held(key, "eu-a100", workers=workers, gpus=1, priority=priority, at=at, min_workers=fewest)


def test_an_elastic_gang_is_shrunk_to_the_most_it_can_keep_instead_of_evicted():
    snapshot = snapshot_of(a_pool(nodes=1), allocations=(one_gpu_workers("ns/e", 8, 2),))
    decision = decide(snapshot, a_job("ns/vip", gpus=3, priority=5))
    assert decision.action is Action.PREEMPT
    assert (decision.victims, decision.shrinks) == ((), (("ns/e", 5),))
    assert "shrinking 1 lower-priority job(s) on eu-a100: ns/e (shrunk to 5 workers)" in decision.message


def test_shrinking_alone_beats_evicting_a_newer_fixed_gang():
    # The fixed gang is the newest, so eviction alone would pick it; shrinking the gang evicts nobody.
    allocations = (one_gpu_workers("ns/e", 4, 1, at=0), one_gpu_workers("ns/fixed", 4, None, at=10))
    decision = decide(snapshot_of(a_pool(nodes=1), allocations=allocations), a_job("ns/vip", gpus=2, priority=5))
    assert (decision.victims, decision.shrinks) == ((), (("ns/e", 2),))


def test_a_gang_at_its_minimum_is_evicted_and_a_fixed_one_beside_it_too_when_needed():
    allocations = (one_gpu_workers("ns/e", 2, 2, at=0), one_gpu_workers("ns/fixed", 6, None, at=10))
    decision = decide(snapshot_of(a_pool(nodes=1), allocations=allocations), a_job("ns/vip", gpus=8, priority=5))
    assert (decision.victims, decision.shrinks) == (("ns/e", "ns/fixed"), ())


def test_an_eviction_plan_shrinks_the_gangs_among_its_victims():
    # 8 GPUs: fixed 4 (newest) + gang 4 (min 1); the job needs 7: evict the fixed one, shrink the gang to 1.
    allocations = (one_gpu_workers("ns/e", 4, 1, at=0), one_gpu_workers("ns/fixed", 4, None, at=10))
    decision = decide(snapshot_of(a_pool(nodes=1), allocations=allocations), a_job("ns/vip", gpus=7, priority=5))
    assert (decision.victims, decision.shrinks) == (("ns/fixed",), (("ns/e", 1),))


def test_a_shrink_gives_back_quota_to_the_queue_that_needs_it():
    quotas = (QueueQuota("team", nominal_gpus=8),)
    gang = held("ns/e", "eu-a100", workers=8, gpus=1, priority=1, queue="team", min_workers=1)
    snapshot = snapshot_of(a_pool(nodes=2), allocations=(gang,), quotas=quotas)
    decision = decide(snapshot, a_job("ns/vip", gpus=4, priority=5, queue="team"))  # the pool has room; the quota does not
    assert (decision.victims, decision.shrinks) == ((), (("ns/e", 4),))


def test_a_gang_of_equal_priority_is_never_shrunk():
    snapshot = snapshot_of(a_pool(nodes=1), allocations=(one_gpu_workers("ns/e", 8, 1, priority=5),))
    assert decide(snapshot, a_job("ns/vip", gpus=4, priority=5)).action is Action.WAIT


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 8), st.integers(0, 8), st.booleans()), min_size=1, max_size=6),
    st.integers(1, 16),
)
def test_after_its_shrinks_and_evictions_the_job_fits_and_no_gang_could_keep_more(gangs, want):
    """The plan makes room, each gang keeps at least its minimum, and one more worker kept by any
    shrunk gang would not leave room."""
    pool = a_pool(nodes=2)
    allocations = []
    for i, (workers, fewest, elastic) in enumerate(gangs):
        allocations.append(one_gpu_workers(f"ns/g{i}", workers, max(1, min(fewest, workers)) if elastic else None, at=i))
    total = sum(a.gpus for a in allocations)
    if total > 16:
        return
    decision = decide(snapshot_of(pool, allocations=tuple(allocations)), a_job("ns/vip", workers=want, gpus=1, priority=5))
    if decision.action is Action.ADMIT:
        assert 16 - total >= want
        return
    assert decision.action is Action.PREEMPT
    kept = dict(decision.shrinks)

    def fits(keep: dict[str, int]) -> bool:
        staying = [
            a if a.job_key not in keep else Allocation(a.job_key, a.pool, keep[a.job_key], a.gpus_per_worker, a.priority)
            for a in allocations
            if a.job_key not in decision.victims
        ]
        return build_capacity([pool], staying, snapshot_of(pool).policy)[pool.name].fits(want, 1)

    assert fits(kept)
    by_key = {a.job_key: a for a in allocations}
    for key, keep in kept.items():
        assert by_key[key].min_workers is not None and by_key[key].min_workers <= keep < by_key[key].workers
        assert not fits({**kept, key: keep + 1})
