"""Growing running elastic gangs (scheduler/growth.py): into free ready capacity the queue does not
want, by enough to pay for the restart, within the budget left."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_operator.scheduler import Allocation, ClusterSnapshot, JobRequest, PoolState
from transfer_operator.scheduler.capacity import build_capacity
from transfer_operator.scheduler.growth import Growth, Running, grow


def pool(name: str = "p", nodes: int = 2, gpu: str = "A100", region: str = "eu-west", **kw: object) -> PoolState:
    return PoolState(name, region, gpu, nodes, 8, 3.0, **kw)  # type: ignore[arg-type]


def running(key: str = "ns/e", workers: int = 2, most: int = 8, gpus: int = 1, **kw: object) -> Running:
    return Running(key, "p", workers, most, gpus, 3.0, **kw)  # type: ignore[arg-type]


def snapshot_with(*jobs: Running, pools: tuple[PoolState, ...] = (pool(),), held: tuple[Allocation, ...] = ()) -> ClusterSnapshot:
    allocations = tuple(Allocation(r.key, r.pool, r.workers, r.gpus_per_worker, r.priority) for r in jobs) + held
    return ClusterSnapshot(pools=pools, allocations=allocations)


def test_a_running_gang_grows_to_its_most_when_the_pool_has_room():
    job = running(workers=2, most=8)
    assert grow(snapshot_with(job), [job], []) == [Growth("ns/e", "p", 2, 8, 1)]


def test_it_grows_to_what_fits_beside_the_other_jobs():
    job = running(workers=4, most=16, gpus=2)
    other = Allocation("ns/x", "p", 1, 6)  # one node keeps 2 free GPUs: one more worker of 2 there
    assert grow(snapshot_with(job, held=(other,)), [job], []) == [Growth("ns/e", "p", 4, 5, 2)]


def test_a_gain_too_small_for_a_restart_is_not_taken_unless_it_reaches_the_most():
    job = running(workers=8, most=16)
    other = Allocation("ns/x", "p", 1, 7)  # 1 GPU left: 8 -> 9 is below a quarter more
    assert grow(snapshot_with(job, held=(other,)), [job], []) == []
    to_most = running(workers=8, most=9)
    assert grow(snapshot_with(to_most, held=(other,)), [to_most], []) == [Growth("ns/e", "p", 8, 9, 1)]


def test_the_queue_comes_first_for_its_priority_and_above():
    job = running(workers=2, most=8, priority=5)
    snap = snapshot_with(job)
    assert grow(snap, [job], [JobRequest("ns/w", 32, 1, gpu_type="a100", priority=5)]) == []
    assert grow(snap, [job], [JobRequest("ns/w", 32, 1, priority=9)]) == []
    # A lower priority, another GPU type or another region leaves the pool to the growth.
    for other in (
        JobRequest("ns/w", 32, 1, priority=4),
        JobRequest("ns/w", 32, 1, gpu_type="H100", priority=9),
        JobRequest("ns/w", 32, 1, regions=frozenset({"us-east"}), priority=9),
    ):
        assert grow(snap, [job], [other]) == [Growth("ns/e", "p", 2, 8, 1)]


def test_the_budget_left_bounds_the_new_size():
    # $3/GPU-hour x 1 h: $15 pays for 5 workers of one GPU.
    job = running(workers=2, most=8, budget_usd=15.0)
    assert grow(snapshot_with(job), [job], []) == [Growth("ns/e", "p", 2, 5, 1)]


def test_higher_priority_grows_first_and_takes_the_room():
    low = running("ns/low", workers=4, most=12, priority=0)
    high = running("ns/high", workers=4, most=12, priority=1)
    # 16 GPUs, 8 held: the high one takes the 8 free, the low one finds none.
    assert grow(snapshot_with(low, high), [low, high], []) == [Growth("ns/high", "p", 4, 12, 1)]


def test_nodes_still_to_buy_are_not_grown_into():
    job = running(workers=8, most=16)
    snap = snapshot_with(job, pools=(pool(nodes=1, provisionable_nodes=4, startup_hours=0.1),))
    assert grow(snap, [job], []) == []


def test_fixed_zero_gpu_and_unknown_pool_gangs_do_not_grow():
    fixed = running("ns/a", workers=4, most=4)
    zero = running("ns/b", workers=1, most=4, gpus=0)
    lost = Running("ns/c", "gone", 1, 4, 1, 3.0)
    assert grow(snapshot_with(fixed, zero, lost), [fixed, zero, lost], []) == []


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.integers(0, 4),
    gangs=st.lists(
        st.tuples(st.integers(1, 6), st.integers(0, 10), st.sampled_from([1, 2, 4, 8]), st.integers(0, 2)),
        min_size=1,
        max_size=5,
    ),
)
def test_growths_never_overfill_the_pool_and_stay_in_range(nodes, gangs):
    jobs = [
        running(f"ns/j{i}", workers=w, most=w + more, gpus=g, priority=p) for i, (w, more, g, p) in enumerate(gangs)
    ]
    snap = snapshot_with(*jobs, pools=(pool(nodes=nodes),))
    growths = {g.key: g for g in grow(snap, jobs, [])}
    for job in jobs:
        found = growths.get(job.key)
        if found is not None:
            assert job.workers < found.workers_to <= job.max_workers
    grown = [
        Allocation(j.key, j.pool, growths[j.key].workers_to if j.key in growths else j.workers, j.gpus_per_worker)
        for j in jobs
    ]
    before = build_capacity(snap.pools, snap.allocations, snap.policy)["p"].free_gpus
    after = build_capacity(snap.pools, grown, snap.policy)["p"].free_gpus
    # What the growths took is exactly their new workers, and never more than was free.
    assert before - after == sum((g.workers_to - g.workers_from) * g.gpus_per_worker for g in growths.values())
    assert after >= 0
