"""Elastic pools (ready nodes and nodes to buy) and elastic gangs (min..max workers)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_operator.api.enums import Preference, Reason
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.engine.elastic_pool import ProvisionerView, scaling_readiness
from transfer_operator.scheduler import Allocation, ClusterSnapshot, JobRequest, PoolState, schedule
from transfer_operator.scheduler.capacity import build_capacity
from transfer_operator.scheduler.from_api import allocation_of, job_request_of, pool_state_of
from transfer_operator.scheduler.types import Action

STARTUP_H = 0.1


def elastic_pool(name: str = "eu-a100", *, nodes: int = 1, to_buy: int = 4, usd: float = 3.0) -> PoolState:
    return PoolState(name, "eu-west", "A100", nodes, 8, usd, provisionable_nodes=to_buy, startup_hours=STARTUP_H)


def test_a_snapshot_splits_an_elastic_pool_into_ready_and_to_buy_rows():
    snapshot = ClusterSnapshot(pools=(elastic_pool(),))
    assert [(p.name, p.nodes, p.startup_hours, p.parent) for p in snapshot.pools] == [
        ("eu-a100", 1, 0.0, None),
        ("eu-a100/provisionable", 4, STARTUP_H, "eu-a100"),
    ]


def test_free_ready_nodes_win_a_price_tie_and_nodes_to_buy_carry_their_start_up():
    snapshot = ClusterSnapshot(pools=(elastic_pool(nodes=1),))
    first, second = schedule(snapshot, [JobRequest("ns/a", 8, 1, created_at_s=1), JobRequest("ns/b", 8, 1, created_at_s=2)])
    assert first.placement is not None and second.placement is not None
    assert (first.job_key, first.placement.pool, first.placement.expected_hours) == ("ns/a", "eu-a100", 1.0)
    # The second job needs a node to be bought: same pool and price, start-up added to its hours.
    assert second.placement.pool == "eu-a100"
    assert second.placement.expected_hours == 1.0 + STARTUP_H
    assert second.placement.expected_cost_usd == first.placement.expected_cost_usd
    assert "nodes to be bought" in second.message


def test_a_cheaper_pool_to_buy_beats_a_dearer_ready_one():
    snapshot = ClusterSnapshot(pools=(elastic_pool("cheap", nodes=0, usd=2.0), PoolState("dear", "eu-west", "A100", 1, 8, 3.0)))
    (decision,) = schedule(snapshot, [JobRequest("ns/a", 8, 1)])
    assert decision.placement is not None and decision.placement.pool == "cheap"


def test_fastest_prefers_ready_nodes_of_equal_speed():
    snapshot = ClusterSnapshot(pools=(elastic_pool(nodes=1),))
    (decision,) = schedule(snapshot, [JobRequest("ns/a", 8, 1, prefer=Preference.FASTEST)])
    assert decision.placement is not None and decision.placement.expected_hours == 1.0


def test_allocations_fill_ready_nodes_then_the_nodes_bought_for_them():
    pools = ClusterSnapshot(pools=(elastic_pool(nodes=1, to_buy=2),)).pools
    held = [Allocation("ns/a", "eu-a100", 1, 8), Allocation("ns/b", "eu-a100", 2, 8, admitted_at_s=1)]
    capacity = build_capacity(pools, held, pools and ClusterSnapshot(pools=pools).policy)
    assert capacity["eu-a100"].free_gpus == 0
    assert capacity["eu-a100/provisionable"].free_gpus == 0


def test_an_elastic_gang_takes_the_most_workers_that_fit():
    snapshot = ClusterSnapshot(pools=(PoolState("p", "eu-west", "A100", 1, 8, 3.0),))
    (decision,) = schedule(snapshot, [JobRequest("ns/e", 16, 1, min_workers=2)])
    assert decision.action is Action.ADMIT and decision.placement is not None
    assert decision.placement.gpus == 8


def test_an_elastic_gang_below_its_minimum_waits():
    snapshot = ClusterSnapshot(
        pools=(PoolState("p", "eu-west", "A100", 1, 8, 3.0),), allocations=(Allocation("ns/x", "p", 7, 1, priority=5),)
    )
    (decision,) = schedule(snapshot, [JobRequest("ns/e", 8, 1, min_workers=2)])
    assert decision.action is Action.WAIT


def test_an_elastic_gang_is_sized_within_its_budget():
    snapshot = ClusterSnapshot(pools=(PoolState("p", "eu-west", "A100", 2, 8, 2.0),))
    # $2/GPU-hour x 1 h: $9 buys 4 workers of one GPU, not 16.
    (decision,) = schedule(snapshot, [JobRequest("ns/e", 16, 1, min_workers=1, budget_usd=9.0)])
    assert decision.placement is not None and decision.placement.gpus == 4
    assert decision.placement.expected_cost_usd <= 9.0


def test_an_elastic_gang_shrinks_to_what_higher_priority_jobs_leave():
    snapshot = ClusterSnapshot(pools=(PoolState("p", "eu-west", "A100", 1, 8, 3.0),))
    decisions = {
        d.job_key: d
        for d in schedule(snapshot, [JobRequest("ns/hi", 6, 1, priority=10), JobRequest("ns/e", 8, 1, min_workers=1)])
    }
    assert decisions["ns/hi"].action is Action.ADMIT
    placement = decisions["ns/e"].placement
    assert placement is not None and placement.gpus == 2


@settings(max_examples=150, deadline=None)
@given(
    ready=st.integers(0, 3),
    to_buy=st.integers(0, 4),
    jobs=st.lists(st.tuples(st.integers(1, 16), st.integers(1, 16), st.integers(0, 3)), min_size=1, max_size=8),
)
def test_admissions_never_exceed_ready_plus_buyable_nodes_and_respect_gang_ranges(ready, to_buy, jobs):
    pool = PoolState("p", "eu-west", "A100", ready, 8, 3.0, provisionable_nodes=to_buy, startup_hours=STARTUP_H)
    requests = [
        JobRequest(f"ns/j{i}", max(a, b), 1, min_workers=min(a, b), priority=priority, created_at_s=i)
        for i, (a, b, priority) in enumerate(jobs)
    ]
    decisions = schedule(ClusterSnapshot(pools=(pool,)), requests)
    by_key = {job.key: job for job in requests}
    admitted = [d for d in decisions if d.action is Action.ADMIT]
    assert sum(d.placement.gpus for d in admitted if d.placement) <= (ready + to_buy) * 8
    for decision in admitted:
        assert decision.placement is not None and decision.placement.pool == "p"
        job = by_key[decision.job_key]
        assert job.min_workers is not None and job.min_workers <= decision.placement.gpus <= job.workers
        # on nodes to buy exactly when the start-up shows in its hours
        assert decision.placement.expected_hours in (1.0, 1.0 + STARTUP_H)
    # A job on nodes to buy only when the ready nodes could not take it at that size.
    ready_gpus = sum(d.placement.gpus for d in admitted if d.placement and d.placement.expected_hours == 1.0)
    assert ready_gpus <= ready * 8
    assert sum(d.placement.gpus for d in admitted if d.placement) - ready_gpus <= to_buy * 8


def _pool(scaling: dict | None, ready: int = 0) -> GPUPool:
    spec = {
        "region": "eu-west",
        "gpuType": "A100",
        "nodes": 0,
        "gpusPerNode": 8,
        "pricing": {"onDemandPerGpuHour": 3.4},
    }
    if scaling is not None:
        spec["scaling"] = scaling
    return GPUPool.model_validate(
        {"metadata": {"name": "eu-a100"}, "spec": spec, "status": {"nodes": {"ready": ready}}}
    )


def test_an_elastic_pool_counts_provisioned_ready_nodes_and_what_it_may_still_buy():
    state = pool_state_of(_pool({"maxNodes": 4, "nodeStartupSeconds": 360}, ready=1))
    assert (state.nodes, state.provisionable_nodes, state.startup_hours) == (1, 3, 0.1)
    assert pool_state_of(_pool({"maxNodes": 4}, ready=1), scaling_ready=False).provisionable_nodes == 0


def test_scaling_readiness_names_the_reason_and_the_fix():
    referenced = _pool({"maxNodes": 4, "nodePoolRef": {"name": "gpu"}})
    assert scaling_readiness(referenced, ProvisionerView(installed=False))[1] is Reason.PROVISIONER_NOT_INSTALLED
    ready, reason, message = scaling_readiness(referenced, ProvisionerView(installed=True))
    assert (ready, reason) == (False, Reason.NODE_POOL_NOT_FOUND) and "gpu" in message and "nodePoolRef" in message
    assert scaling_readiness(referenced, ProvisionerView(True, frozenset({"gpu"})))[0]
    node_class = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}
    generated = _pool({"maxNodes": 4, "nodeClassRef": node_class})
    assert scaling_readiness(generated, ProvisionerView(True, frozenset({"eu-a100"})))[0]
    no_class = scaling_readiness(_pool({"maxNodes": 4}), ProvisionerView(True, frozenset({"eu-a100"})))
    assert no_class[1] is Reason.INVALID_SCALING and "nodeClassRef" in no_class[2]
    broken = _pool({"maxNodes": 4}).model_copy()
    assert broken.spec.scaling is not None
    broken.spec.scaling.__dict__["max_nodes"] = 0
    broken.spec.scaling.__dict__["min_nodes"] = 2
    assert scaling_readiness(broken, ProvisionerView(True))[1] is Reason.INVALID_SCALING


def test_max_nodes_below_min_nodes_is_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="maxNodes must be at least"):
        _pool({"minNodes": 3, "maxNodes": 2})


def test_an_elastic_job_is_requested_at_its_range_and_holds_its_admitted_size():
    job = TransferJob.model_validate(
        {
            "metadata": {"name": "e", "namespace": "ns"},
            "spec": {
                "model": {"source": "builtin:digits-cnn"},
                "dataset": {"uri": "builtin:digits"},
                "strategy": {"type": "fineTune"},
                "resources": {"minWorkers": 2, "maxWorkers": 8, "gpusPerWorker": 2},
            },
            "status": {
                "phase": "Running",
                "placement": {
                    "pool": "p",
                    "region": "eu-west",
                    "gpuType": "A100",
                    "priceClass": "onDemand",
                    "usdPerGpuHour": 3.0,
                    "usdPerHour": 18.0,
                    "gpus": 6,
                },
            },
        }
    )
    request = job_request_of(job)
    assert (request.min_workers, request.workers) == (2, 8)
    assert job.held_workers == 3
    allocation = allocation_of(job)
    assert allocation is not None and allocation.gpus == 6
