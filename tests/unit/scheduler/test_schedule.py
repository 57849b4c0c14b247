from __future__ import annotations

import dataclasses

import pytest

from transfer_operator.api.enums import Preference, PriceClass, Reason, UtilizationPolicy
from transfer_operator.scheduler import Action, Decision, Fit, QueueQuota, schedule

from .builders import a_job, a_pool, held, snapshot_of


def decide(snapshot, *jobs) -> dict[str, Decision]:
    return {d.job_key: d for d in schedule(snapshot, list(jobs))}


@pytest.mark.parametrize(
    "pools, want_fit, want_reason",
    [
        pytest.param(
            [a_pool(nodes=1, gpus_per_node=4)], Fit.NO_FIT, Reason.INVALID_SPEC, id="gang-larger-than-pool"
        ),
        pytest.param([a_pool(nodes=1, gpus_per_node=8)], Fit.FITS, Reason.ADMITTED, id="fits"),
        pytest.param([a_pool(cordoned=True)], Fit.NO_FIT, Reason.NO_FITTING_POOL, id="cordoned"),
        pytest.param([a_pool(gpu="L4")], Fit.NO_FIT, Reason.INVALID_SPEC, id="wrong-gpu-type"),
        pytest.param([a_pool(region="us-east")], Fit.NO_FIT, Reason.INVALID_SPEC, id="region-not-served"),
    ],
)
def test_grades_a_job_against_pools(pools, want_fit, want_reason):
    decision = decide(snapshot_of(*pools), a_job(gpus=8, gpu="A100", regions=("eu-west",)))["ns/job"]
    assert decision.fit is want_fit
    assert decision.reason is want_reason
    assert decision.message


def test_gang_is_all_workers_in_one_pool_or_none():
    # 12 GPUs free in total, but 6 + 6 across two pools: a 2 x 4 gang fits neither... only one
    pools = [a_pool("a", nodes=1, gpus_per_node=6), a_pool("b", nodes=1, gpus_per_node=6)]
    decision = decide(snapshot_of(*pools), a_job(workers=2, gpus=4))["ns/job"]
    assert decision.action is Action.WAIT
    assert decision.reason is Reason.INVALID_SPEC  # 2 x 4 never fits a 1 x 6 pool


@pytest.mark.parametrize(
    "policy, want",
    [
        pytest.param(UtilizationPolicy.SPREAD, Action.WAIT, id="spread-leaves-4-free-on-each-node"),
        pytest.param(UtilizationPolicy.BINPACK, Action.ADMIT, id="binpack-keeps-a-whole-node-free"),
    ],
)
def test_worker_needs_its_gpus_on_one_node(policy, want):
    allocations = (held("ns/x", "eu-a100", gpus=4), held("ns/y", "eu-a100", gpus=4, at=1))
    snapshot = snapshot_of(a_pool(nodes=2, gpus_per_node=8), allocations=allocations, policy=policy)
    # 8 GPUs are free either way; a worker of 8 needs them on one node.
    assert decide(snapshot, a_job(workers=1, gpus=8))["ns/job"].action is want


def test_cheapest_pool_wins_and_spot_prices_risk():
    pools = [
        a_pool("dear", usd=4.0),
        a_pool("cheap", usd=3.0, spot_usd=1.0, spot_rate=0.2),
    ]
    on_demand = decide(snapshot_of(*pools), a_job())["ns/job"]
    assert on_demand.placement.pool == "cheap"
    assert on_demand.placement.price_class is PriceClass.ON_DEMAND
    spot = decide(snapshot_of(*pools), a_job(spot=True))["ns/job"]
    assert spot.placement.price_class is PriceClass.SPOT
    assert spot.placement.expected_hours == pytest.approx(1.0 * (1 + 0.2 * 0.25))
    assert spot.placement.expected_cost_usd == pytest.approx(1.0 * 8 * 1.05)


def test_fastest_prefers_the_faster_gpu_even_when_dearer():
    pools = [a_pool("a100", gpu="A100", usd=3.0), a_pool("h100", gpu="H100", usd=9.0)]
    assert decide(snapshot_of(*pools), a_job(prefer=Preference.CHEAPEST))["ns/job"].placement.pool == "a100"
    assert decide(snapshot_of(*pools), a_job(prefer=Preference.FASTEST))["ns/job"].placement.pool == "h100"


def test_max_price_and_budget_are_limits_with_reasons():
    pools = [a_pool(usd=3.4)]
    priced_out = decide(snapshot_of(*pools), a_job(max_usd=2.0))["ns/job"]
    assert priced_out.reason is Reason.INVALID_SPEC
    assert "maxPricePerGpuHour $2.00" in priced_out.message and "$3.40" in priced_out.message
    broke = decide(snapshot_of(*pools), a_job(budget=20.0))["ns/job"]
    assert broke.reason is Reason.BUDGET_TOO_LOW
    assert "budget $20.00 < $27.20" in broke.message


def test_waiting_reason_names_region_and_free_gpus():
    pool = a_pool(nodes=1)
    snapshot = snapshot_of(pool, allocations=(held("ns/x", "eu-a100", workers=1, gpus=4),))
    decision = decide(snapshot, a_job(gpu="A100", regions=("eu-west",)))["ns/job"]
    assert decision.reason is Reason.NO_FITTING_POOL
    assert "no pool in eu-west has 1 worker(s) x 8 free A100" in decision.message
    assert "most free: 4 on eu-a100" in decision.message


@pytest.mark.parametrize(
    "policy, want",
    [
        pytest.param(UtilizationPolicy.BINPACK, "busy", id="binpack-fills-the-fuller-pool"),
        pytest.param(UtilizationPolicy.SPREAD, "idle", id="spread-picks-the-emptier-pool"),
    ],
)
def test_utilization_policy_breaks_price_ties(policy, want):
    pools = [a_pool("busy", nodes=2), a_pool("idle", nodes=2)]
    snapshot = snapshot_of(*pools, allocations=(held("ns/x", "busy", gpus=8),), policy=policy)
    assert decide(snapshot, a_job(gpus=8))["ns/job"].placement.pool == want


def test_higher_priority_goes_first_when_capacity_is_short():
    pool = a_pool(nodes=1)
    decisions = decide(
        snapshot_of(pool), a_job("ns/low", priority=1, created=0), a_job("ns/high", priority=9, created=5)
    )
    assert decisions["ns/high"].action is Action.ADMIT
    assert decisions["ns/low"].action is Action.WAIT


def test_preempts_the_fewest_lower_priority_jobs():
    pool = a_pool(nodes=2)
    allocations = (
        held("ns/old-low", "eu-a100", priority=1, at=0),
        held("ns/new-low", "eu-a100", priority=1, at=10),
    )
    decision = decide(snapshot_of(pool, allocations=allocations), a_job("ns/vip", priority=5))["ns/vip"]
    assert decision.action is Action.PREEMPT
    assert decision.victims == ("ns/new-low",)  # newest first: it loses the least work


def test_never_preempts_an_admission_still_being_written():
    pool = a_pool(nodes=2)
    allocations = (
        dataclasses.replace(held("ns/writing", "eu-a100", priority=1, at=10), in_flight=True),
        held("ns/settled", "eu-a100", priority=1, at=0),
    )
    decision = decide(snapshot_of(pool, allocations=allocations), a_job("ns/vip", priority=5))["ns/vip"]
    assert decision.action is Action.PREEMPT
    assert decision.victims == ("ns/settled",)  # not the newer one, whose writes are in flight
    alone = decide(snapshot_of(a_pool(nodes=1), allocations=allocations[:1]), a_job("ns/vip", priority=5))
    assert alone["ns/vip"].action is Action.WAIT


def test_never_preempts_equal_or_higher_priority():
    pool = a_pool(nodes=1)
    allocations = (held("ns/peer", "eu-a100", priority=5),)
    decision = decide(snapshot_of(pool, allocations=allocations), a_job("ns/vip", priority=5))["ns/vip"]
    assert decision.action is Action.WAIT


def test_quota_nominal_and_cohort_borrowing():
    pools = [a_pool(nodes=4)]
    quotas = (
        QueueQuota("nlp", nominal_gpus=8, cohort="research"),
        QueueQuota("vision", nominal_gpus=8, cohort="research"),
        QueueQuota("solo", nominal_gpus=8),
    )
    snapshot = snapshot_of(*pools, quotas=quotas, allocations=(held("ns/a", "eu-a100", queue="nlp"),))
    # nlp used its 8; vision lends its unused 8 within the cohort.
    assert decide(snapshot, a_job(queue="nlp"))["ns/job"].action is Action.ADMIT
    # Both borrowers in one cycle: the second finds the cohort empty.
    decisions = decide(snapshot, a_job("ns/j1", queue="nlp"), a_job("ns/j2", queue="nlp", created=1))
    assert decisions["ns/j2"].reason is Reason.QUOTA_EXCEEDED
    assert "cohort research has only 0 unused GPUs" in decisions["ns/j2"].message
    solo = snapshot_of(*pools, quotas=quotas, allocations=(held("ns/s", "eu-a100", queue="solo"),))
    assert decide(solo, a_job(queue="solo"))["ns/job"].reason is Reason.QUOTA_EXCEEDED


def test_borrowing_limit():
    quotas = (QueueQuota("nlp", 8, "research", borrowing_limit_gpus=0), QueueQuota("vision", 8, "research"))
    snapshot = snapshot_of(
        a_pool(nodes=4), quotas=quotas, allocations=(held("ns/a", "eu-a100", queue="nlp"),)
    )
    decision = decide(snapshot, a_job(queue="nlp"))["ns/job"]
    assert decision.reason is Reason.QUOTA_EXCEEDED and "borrowing limit 0" in decision.message


def test_same_input_same_output():
    pools = [a_pool(f"p{i}", usd=3.0, nodes=1) for i in range(5)]
    jobs = [a_job(f"ns/j{i}", gpus=4, created=i % 3) for i in range(12)]
    first = schedule(snapshot_of(*pools), jobs)
    assert all(schedule(snapshot_of(*pools), jobs) == first for _ in range(3))
    assert schedule(snapshot_of(*pools), list(reversed(jobs))) == first


def test_pool_deleted_under_an_allocation_holds_nothing():
    snapshot = snapshot_of(a_pool(nodes=1), allocations=(held("ns/ghost", "gone-pool"),))
    assert decide(snapshot, a_job())["ns/job"].action is Action.ADMIT
