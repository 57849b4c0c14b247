"""Property tests over random fleets: no placement ever breaks a limit; same input, same output."""

from __future__ import annotations

import os
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_operator.api.enums import Preference, PriceClass, UtilizationPolicy
from transfer_operator.scheduler import (
    Action,
    Allocation,
    ClusterSnapshot,
    JobRequest,
    PoolState,
    QueueQuota,
    schedule,
)
from transfer_operator.scheduler.capacity import PoolCapacity

REGIONS = ["eu-west", "us-east", "ap-south"]
GPUS = ["A100", "H100", "L4"]


@st.composite
def pools(draw) -> tuple[PoolState, ...]:
    count = draw(st.integers(1, 6))
    result = []
    for i in range(count):
        on_demand = draw(st.floats(0.3, 8.0))
        spot = draw(st.one_of(st.none(), st.floats(0.1, 1.0).map(lambda f: round(f * on_demand, 3))))
        result.append(
            PoolState(
                name=f"pool-{i}",
                region=draw(st.sampled_from(REGIONS)),
                gpu_type=draw(st.sampled_from(GPUS)),
                nodes=draw(st.integers(0, 4)),
                gpus_per_node=draw(st.sampled_from([1, 2, 4, 8])),
                on_demand_usd_per_gpu_hour=round(on_demand, 3),
                spot_usd_per_gpu_hour=spot,
                spot_interruptions_per_hour=draw(st.floats(0, 0.5)),
                cordoned=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return tuple(result)


@st.composite
def jobs(draw, queues: list[str]) -> list[JobRequest]:
    count = draw(st.integers(0, 12))
    return [
        JobRequest(
            key=f"ns/job-{i}",
            workers=draw(st.integers(1, 4)),
            gpus_per_worker=draw(st.sampled_from([0, 1, 2, 4, 8])),
            gpu_type=draw(st.one_of(st.none(), st.sampled_from(GPUS))),
            regions=frozenset(draw(st.lists(st.sampled_from(REGIONS), max_size=2))),
            spot=draw(st.booleans()),
            max_usd_per_gpu_hour=draw(st.one_of(st.none(), st.floats(0.2, 9.0))),
            budget_usd=draw(st.one_of(st.none(), st.floats(1.0, 500.0))),
            estimated_hours=draw(st.floats(0.1, 10.0)),
            priority=draw(st.integers(0, 3)),
            queue=draw(st.sampled_from(queues)),
            created_at_s=float(draw(st.integers(0, 5))),
            prefer=draw(st.sampled_from(list(Preference))),
        )
        for i in range(count)
    ]


@st.composite
def scenarios(draw):
    fleet = draw(pools())
    queues = ["default", "nlp", "vision"]
    quotas = tuple(
        QueueQuota(
            q,
            draw(st.integers(0, 32)),
            draw(st.sampled_from([None, "research"])),
            draw(st.one_of(st.none(), st.integers(0, 16))),
        )
        for q in queues[1:]
        if draw(st.booleans())
    )
    running = []
    for i in range(draw(st.integers(0, 4))):
        pool = draw(st.sampled_from(fleet))
        gpus = draw(st.sampled_from([g for g in (1, 2, 4, 8) if g <= pool.gpus_per_node]))
        running.append(
            Allocation(
                f"ns/run-{i}",
                pool.name,
                1,
                gpus,
                draw(st.integers(0, 3)),
                draw(st.sampled_from(queues)),
                float(i),
            )
        )
    # Only keep allocations that really fit, as the cluster would.
    fitting, used = [], defaultdict(lambda: None)
    for allocation in running:
        pool = next(p for p in fleet if p.name == allocation.pool)
        cap = used[pool.name] or PoolCapacity.empty(pool)
        if cap.fits(allocation.workers, allocation.gpus_per_worker):
            cap.take(allocation.workers, allocation.gpus_per_worker, UtilizationPolicy.BINPACK)
            fitting.append(allocation)
        used[pool.name] = cap
    policy = draw(st.sampled_from(list(UtilizationPolicy)))
    return ClusterSnapshot(fleet, tuple(fitting), quotas, policy), draw(jobs(queues))


@settings(max_examples=int(os.environ.get("TRANSFER_FUZZ_EXAMPLES", "300")), deadline=None)
@given(scenarios())
def test_no_admission_breaks_a_limit(scenario):
    snapshot, pending = scenario
    decisions = schedule(snapshot, pending)
    assert sorted(d.job_key for d in decisions) == sorted(j.key for j in pending)
    by_key = {j.key: j for j in pending}
    by_pool = {p.name: p for p in snapshot.pools}
    held: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for allocation in snapshot.allocations:
        held[allocation.pool].append((allocation.workers, allocation.gpus_per_worker))
    for decision in decisions:
        if decision.action is not Action.ADMIT:
            continue
        job, placement = by_key[decision.job_key], decision.placement
        pool = by_pool[placement.pool]
        assert not pool.cordoned
        assert job.gpu_type is None or job.gpu_type == pool.gpu_type
        assert not job.regions or pool.region in job.regions
        if placement.price_class is PriceClass.SPOT:
            assert job.spot and placement.usd_per_gpu_hour == pool.spot_usd_per_gpu_hour
        else:
            assert placement.usd_per_gpu_hour == pool.on_demand_usd_per_gpu_hour
        if job.max_usd_per_gpu_hour is not None:
            assert placement.usd_per_gpu_hour <= job.max_usd_per_gpu_hour
        if job.budget_usd is not None:
            assert placement.expected_cost_usd <= job.budget_usd + 1e-9
        assert placement.gpus == job.gang_gpus
        held[pool.name].append((job.workers, job.gpus_per_worker))
    for name, gangs in held.items():
        pool = by_pool[name]
        assert sum(w * g for w, g in gangs) <= pool.capacity_gpus
        # Node level: first-fit decreasing of every worker must succeed.
        capacity = PoolCapacity.empty(pool)
        for workers, gpus in sorted(gangs, key=lambda wg: -wg[1]):
            assert capacity.fits(workers, gpus), f"{name} over-committed at node level"
            capacity.take(workers, gpus, UtilizationPolicy.BINPACK)
    quota_of = {q.name: q for q in snapshot.quotas}
    used: dict[str, int] = defaultdict(int)
    for allocation in snapshot.allocations:
        used[allocation.queue] += allocation.gpus
    for decision in decisions:
        if decision.action is Action.ADMIT:
            used[by_key[decision.job_key].queue] += by_key[decision.job_key].gang_gpus
    for queue, quota in quota_of.items():
        before = sum(a.gpus for a in snapshot.allocations if a.queue == queue)
        if used[queue] > before and quota.cohort is None:
            assert used[queue] <= quota.nominal_gpus
    for cohort in {q.cohort for q in snapshot.quotas if q.cohort}:
        members = [q for q in snapshot.quotas if q.cohort == cohort]
        before = sum(a.gpus for a in snapshot.allocations if a.queue in {q.name for q in members})
        after = sum(used[q.name] for q in members)
        # Borrowing takes only the cohort's unused nominal GPUs; a queue taking its own nominal
        # quota is always allowed, even where a peer borrowed those GPUs before (no reclaim).
        own_quota_left = sum(
            max(0, q.nominal_gpus - sum(a.gpus for a in snapshot.allocations if a.queue == q.name))
            for q in members
        )
        if after > before:
            assert after <= max(before, sum(q.nominal_gpus for q in members)) + own_quota_left


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_preemption_only_takes_lower_priority_victims(scenario):
    snapshot, pending = scenario
    priority_of = {a.job_key: a.priority for a in snapshot.allocations}
    by_key = {j.key: j for j in pending}
    seen: set[str] = set()
    for decision in schedule(snapshot, pending):
        if decision.action is Action.PREEMPT:
            assert decision.victims
            for victim in decision.victims:
                assert priority_of[victim] < by_key[decision.job_key].priority
                assert victim not in seen, "a victim is claimed by one preemptor only"
                seen.add(victim)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_deterministic(scenario):
    snapshot, pending = scenario
    assert schedule(snapshot, pending) == schedule(snapshot, list(reversed(pending)))


def _key_of(nominal: dict[str, int], gpu_type: str) -> str:
    """The quota key a pool's type counts against, restated from QueueQuota's docstring."""
    if gpu_type in nominal or "*" not in nominal:
        return gpu_type
    return "*"


@st.composite
def typed_scenarios(draw):
    """Scenarios whose quotas are per GPU type (some with `*`), in and out of one cohort."""
    snapshot, pending = draw(scenarios())
    queues = ["default", "nlp", "vision"]
    quotas = tuple(
        QueueQuota(
            q,
            draw(st.dictionaries(st.sampled_from([*GPUS, "*"]), st.integers(0, 16), max_size=3)),
            draw(st.sampled_from([None, "research"])),
            draw(st.one_of(st.none(), st.integers(0, 8))),
        )
        for q in queues
        if draw(st.booleans())
    )
    return ClusterSnapshot(snapshot.pools, snapshot.allocations, quotas, snapshot.policy), pending


@settings(max_examples=int(os.environ.get("TRANSFER_FUZZ_EXAMPLES", "300")), deadline=None)
@given(typed_scenarios())
def test_no_admission_breaks_a_quota_of_its_gpu_type(scenario):
    """Per queue and quota key: no cohort, at most the nominal GPUs; with a cohort, at most the
    nominal plus the borrowing limit, and a cohort grows only into GPUs it does not use (or a
    queue's own nominal ones), whatever path decided the cycle."""
    snapshot, pending = scenario
    decisions = schedule(snapshot, pending)
    by_key = {j.key: j for j in pending}
    type_of = {p.name: p.gpu_type for p in snapshot.pools}
    nominal = {q.name: q.by_type() for q in snapshot.quotas}
    quota_of = {q.name: q for q in snapshot.quotas}

    def usage(admitted: bool) -> dict[tuple[str, str], int]:
        used: dict[tuple[str, str], int] = defaultdict(int)
        for allocation in snapshot.allocations:
            if allocation.queue in nominal:
                used[allocation.queue, _key_of(nominal[allocation.queue], type_of[allocation.pool])] += allocation.gpus
        for decision in decisions if admitted else ():
            job = by_key[decision.job_key]
            if decision.action is Action.ADMIT and job.queue in nominal:
                pool_type = type_of[decision.placement.pool]
                assert job.gpu_type is None or job.gpu_type == pool_type
                used[job.queue, _key_of(nominal[job.queue], pool_type)] += job.gang_gpus
        return used

    before, after = usage(False), usage(True)
    for (queue, key), gpus in after.items():
        if gpus <= before[queue, key]:
            continue
        quota = quota_of[queue]
        own = nominal[queue].get(key, 0)
        if quota.cohort is None:
            assert gpus <= own, (queue, key)
        elif quota.borrowing_limit_gpus is not None:
            assert gpus <= own + quota.borrowing_limit_gpus, (queue, key)
    # A cohort lends only what it has: typed quotas cover their type's use, `*` quotas the rest
    # (the types' overflows). Past that, only a queue's own nominal GPUs may take it (always
    # allowed, even where a peer borrowed them before; no reclaim within a cycle).
    for cohort in {q.cohort for q in snapshot.quotas if q.cohort}:
        members = [q.name for q in snapshot.quotas if q.cohort == cohort]
        typed: dict[str, int] = defaultdict(int)
        for m in members:
            for key, count in nominal[m].items():
                if key != "*":
                    typed[key] += count
        any_type = sum(nominal[m].get("*", 0) for m in members)

        def excess(admitted: bool) -> int:
            used_of_type: dict[str, int] = defaultdict(int)
            for allocation in snapshot.allocations:
                if allocation.queue in members:
                    used_of_type[type_of[allocation.pool]] += allocation.gpus
            for decision in decisions if admitted else ():
                job = by_key[decision.job_key]
                if decision.action is Action.ADMIT and job.queue in members:
                    used_of_type[type_of[decision.placement.pool]] += job.gang_gpus
            return sum(max(0, used - typed[t]) for t, used in used_of_type.items()) - any_type

        own_left = sum(max(0, n - before[m, key]) for m in members for key, n in nominal[m].items())
        assert excess(True) <= max(0, excess(False)) + own_left, cohort
