"""Table cases per step of a cycle: estimate, order, admit, solve, explain."""

from __future__ import annotations

import pytest

from transfer_operator.api.enums import Preference, Reason, UtilizationPolicy
from transfer_operator.scheduler import Action, schedule
from transfer_operator.scheduler.admit import Walk
from transfer_operator.scheduler.batch import Estimates
from transfer_operator.scheduler.explain import options_of
from transfer_operator.scheduler.options import OptionCache
from transfer_operator.scheduler.schedule import SolvePath, schedule_cycle

from .builders import a_job, a_pool, held, snapshot_of

POOLS = (
    a_pool("cheap", usd=1.0, nodes=1),
    a_pool("middle", usd=2.0, nodes=1),
    a_pool("dear", usd=4.0, nodes=2, region="us-east"),
)


@pytest.mark.parametrize(
    "job, want",
    [
        pytest.param(a_job(), ["cheap", "middle", "dear"], id="by-cost"),
        pytest.param(a_job(regions=("us-east",)), ["dear"], id="regions-filter"),
        pytest.param(a_job(workers=2), ["dear"], id="gang-against-empty-pool"),
        pytest.param(a_job(max_usd=2.0), ["cheap", "middle"], id="price-cap"),
        pytest.param(a_job(budget=8.0), ["cheap"], id="budget"),
        pytest.param(a_job(gpu="H100"), [], id="gpu-type"),
    ],
)
def test_estimate_keeps_the_options_within_the_limits(job, want):
    estimates = Estimates([job], OptionCache(POOLS))
    entry = OptionCache(POOLS).estimate(job)
    assert [o.placement.pool for o in entry.options] == want
    assert estimates.head[0] == entry.keep[:2].tolist()


@pytest.mark.parametrize(
    "jobs, want",
    [
        pytest.param([a_job("ns/a"), a_job("ns/b", priority=1)], ["ns/b", "ns/a"], id="priority-first"),
        # a has a second choice ($8 dearer); b has one option only, so its regret is infinite.
        pytest.param(
            [a_job("ns/a", regions=("eu-west",)), a_job("ns/b", max_usd=1.5)],
            ["ns/b", "ns/a"],
            id="regret-infinite-with-one-option",
        ),
        pytest.param(
            [a_job("ns/b", created=2), a_job("ns/a", created=1)], ["ns/a", "ns/b"], id="older-first"
        ),
    ],
)
def test_order(jobs, want):
    estimates = Estimates(jobs, OptionCache(POOLS))
    assert [jobs[i].key for i in estimates.order().tolist()] == want


def walk_of(snapshot, jobs) -> Walk:
    cache = OptionCache(snapshot.pools)
    estimates = Estimates(jobs, cache)
    walk = Walk(snapshot, jobs, cache, estimates, estimates.order().tolist())
    walk.run()
    return walk


def test_admit_takes_capacity_for_later_jobs_and_sets_aside_jobs_that_fit_nowhere():
    jobs = [
        a_job("ns/a", created=0),
        a_job("ns/b", created=1),
        a_job("ns/c", created=2),
        a_job("ns/d", created=3),
    ]
    walk = walk_of(snapshot_of(*POOLS), jobs)
    placed = {jobs[i].key: walk.placement(i, p).pool for i, p in walk.admitted}
    assert placed == {"ns/a": "cheap", "ns/b": "middle", "ns/c": "dear", "ns/d": "dear"}
    walk = walk_of(snapshot_of(*POOLS), [*jobs, a_job("ns/e", created=4)])
    assert walk.waiting == [4]


@pytest.mark.parametrize(
    "count, allocations, budget, want",
    [
        pytest.param(3, (), 0.2, SolvePath.EXACT, id="small-exact"),
        pytest.param(3, (), 0.0, SolvePath.LOCAL_SEARCH, id="exact-off-small"),
        pytest.param(400, (), 0.0, SolvePath.GREEDY, id="exact-off-large"),
        pytest.param(3, (held("ns/low", "cheap", priority=0),), 0.2, SolvePath.GREEDY, id="preemption"),
    ],
)
def test_solve_path(count, allocations, budget, want):
    jobs = [a_job(f"ns/j{i}", priority=1, created=i) for i in range(count)]
    if allocations:
        jobs = [a_job("ns/hi", priority=5, regions=("eu-west",), workers=1, max_usd=1.0)]
    result = schedule_cycle(snapshot_of(*POOLS, allocations=allocations), jobs, exact_budget_s=budget)
    assert result.path is want


def admitted(result) -> dict[str, str]:
    return {d.job_key: d.placement.pool for d in result.decisions if d.action is Action.ADMIT}


def test_exact_path_out_of_time_before_it_starts_falls_back_to_the_walk():
    jobs = [a_job(f"ns/j{i}", priority=i % 2, created=i) for i in range(3)]
    off = schedule_cycle(snapshot_of(*POOLS), jobs, exact_budget_s=0)
    late = schedule_cycle(snapshot_of(*POOLS), jobs, exact_budget_s=1e-12)
    assert late.path is SolvePath.LOCAL_SEARCH and "out of time before" in late.detail
    assert admitted(late) == admitted(off)


class StepClock:
    """perf_counter for the exact path, one second later at every read: the budget runs out
    after the first level HiGHS solves, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


TWO_TIERS = [a_job("ns/hi", priority=5, created=0), a_job("ns/lo", priority=0, created=1, workers=2)]
# One tier, one 4-GPU node: in order the walk admits the 3-GPU job; the tier's optimum is the two 2-GPU jobs.
KNAPSACK = ([a_pool("p", nodes=1, gpus_per_node=4)],
            [a_job("ns/three", gpus=3, created=0), a_job("ns/two-a", gpus=2, created=1),
             a_job("ns/two-b", gpus=2, created=2)])


@pytest.mark.parametrize(
    "pools, jobs, budget, paths, detail, want",
    [
        # the walk places both tiers, so no tier is solved: the clock is first read at the cost level
        pytest.param(POOLS, TWO_TIERS, 0.5, {SolvePath.LOCAL_SEARCH}, "out of time before the cost level",
                     {"ns/hi", "ns/lo"}, id="before-the-cost-level"),
        pytest.param(POOLS, TWO_TIERS, 1.5, {SolvePath.EXACT}, "out of time before the utilization tie-break",
                     {"ns/hi", "ns/lo"}, id="before-the-tie-break"),
        # the tier is solved (4 GPUs), then time is out: HiGHS's answer is kept over the walk's (and
        # local search's) 3 GPUs
        pytest.param(*KNAPSACK, 1.5, {SolvePath.BEST_FOUND},
                     "out of time before the cost level", {"ns/two-a", "ns/two-b"}, id="tier-solved-then-out"),
    ],
)
def test_exact_path_out_of_time_between_levels(monkeypatch, pools, jobs, budget, paths, detail, want):
    from transfer_operator.scheduler import solve

    monkeypatch.setattr(solve.time, "perf_counter", StepClock())
    result = schedule_cycle(snapshot_of(*pools), jobs, exact_budget_s=budget)
    assert result.path in paths and detail in result.detail
    assert admitted(result).keys() == want


def test_explain_says_where_a_waiting_job_would_run_and_what_must_free_up():
    pools = (a_pool("eu", nodes=2, usd=1.0), a_pool("eu-dear", nodes=1, usd=2.0))
    allocations = (held("ns/x", "eu", gpus=4), held("ns/y", "eu-dear", gpus=8))
    decision = schedule(snapshot_of(*pools, allocations=allocations), [a_job(workers=2)])[0]
    assert decision.reason is Reason.NO_FITTING_POOL
    assert decision.message.endswith("would run on eu ($16.00/h) once 4 GPUs free up there")
    _, views = options_of(snapshot_of(*pools, allocations=allocations), a_job(workers=2))
    assert [(v.placement.pool, v.free_gpus, v.short_gpus, v.fits_now) for v in views] == [
        ("eu", 12, 4, False)
    ]


def test_explain_fragmented_pool_names_the_nodes():
    pools = (a_pool("eu", nodes=2, usd=1.0),)
    allocations = (held("ns/x", "eu", gpus=4), held("ns/y", "eu", gpus=4, at=1))
    snapshot = snapshot_of(*pools, allocations=allocations, policy=UtilizationPolicy.SPREAD)
    decision = schedule(snapshot, [a_job()])[0]
    assert decision.message.endswith("once 1 worker(s) x 8 GPUs fit on its nodes"), decision.message


def test_preference_changes_the_ranking_not_the_limits():
    pools = (a_pool("a100", usd=3.0), a_pool("h100", gpu="H100", usd=9.0))
    cheapest = OptionCache(pools).estimate(a_job())
    fastest = OptionCache(pools).estimate(a_job(prefer=Preference.FASTEST))
    assert [o.placement.pool for o in cheapest.options] == ["a100", "h100"]
    assert [o.placement.pool for o in fastest.options] == ["h100", "a100"]
    assert schedule(snapshot_of(*pools), [a_job(prefer=Preference.FASTEST)])[0].action is Action.ADMIT


def test_decisions_are_built_as_they_are_read():
    snapshot = snapshot_of(a_pool("only", nodes=1))
    jobs = [a_job("ns/fits", created=0), a_job("ns/waits", created=1), a_job("ns/never", created=2, gpu="H100")]
    decisions = schedule_cycle(snapshot, jobs).decisions
    assert decisions.actions().tolist() == [0, 1, 2]  # admitted, waits for capacity, never fits
    assert decisions._built == {}  # nothing built before a decision is read
    waiting = decisions[1]
    assert len(decisions._built) == 1 and waiting.reason is Reason.NO_FITTING_POOL
    assert decisions[1] is waiting  # built once
    assert decisions == schedule(snapshot, jobs)
    assert [d.reason for d in decisions[-1:]] == [Reason.INVALID_SPEC]


@pytest.mark.parametrize(
    "found, other, want",
    [
        pytest.param((-10.0, 5.0, 1.0), (-9.0, 1.0, 0.0), True, id="more-gpus-of-a-tier-wins"),
        pytest.param((-10.0, 5.0, 1.0), (-10.0, 6.0, 0.0), True, id="same-tiers-lower-cost"),
        pytest.param((-10.0, 5.0, 1.0), (-10.0, 5.0, 1.0), False, id="equal-keeps-the-walk"),
        pytest.param((-10.0, 5.0 + 1e-12, 0.0), (-10.0, 5.0, 1.0), True, id="rounding-is-a-tie"),
        pytest.param((-9.0, 1.0, 0.0), (-10.0, 5.0, 1.0), False, id="fewer-gpus-loses"),
    ],
)
def test_best_found_is_kept_only_when_lexicographically_better(found, other, want):
    from transfer_operator.scheduler.solve import better

    assert better(found, other) is want


def test_local_search_from_another_answer_keeps_its_jobs_and_lowers_the_cost():
    from transfer_operator.scheduler.improve import local_search

    jobs = [a_job(f"ns/j{i}", created=i) for i in range(2)]
    walk = walk_of(snapshot_of(*POOLS), jobs)
    start = {0: walk.placement(0, 2), 1: walk.placement(1, 1)}  # on "dear" and "middle"
    improved = local_search(walk, start)
    assert set(improved) == {0, 1}
    assert sum(p.expected_cost_usd for p in improved.values()) < sum(p.expected_cost_usd for p in start.values())
