"""Bad input costs little: zero-GPU jobs hold and cost nothing, the preemption search is bounded,
and a job that can never fit is explained once per cycle."""

from __future__ import annotations

import importlib

import pytest

from transfer_operator.api.enums import Reason
from transfer_operator.scheduler import Action, preemption, schedule

from .builders import a_job, a_pool, held, snapshot_of


def counting(monkeypatch, module, name):
    calls = {"n": 0}
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_zero_gpu_jobs_hold_no_capacity_and_cost_nothing():
    pool = a_pool(nodes=1, gpus_per_node=8)
    zero = [held(f"ns/zero-{i}", pool.name, workers=4, gpus=0) for i in range(50)]
    decisions = {
        d.job_key: d
        for d in schedule(
            snapshot_of(pool, allocations=tuple(zero)),
            [a_job("ns/eight", gpus=8), a_job("ns/none", workers=64, gpus=0)],
        )
    }
    assert decisions["ns/eight"].action is Action.ADMIT  # 50 zero-GPU jobs left all 8 GPUs free
    assert decisions["ns/none"].action is Action.ADMIT
    assert decisions["ns/none"].placement.expected_cost_usd == 0.0
    assert decisions["ns/none"].placement.gpus == 0


def test_zero_gpu_allocations_are_never_victims(monkeypatch):
    checks = counting(monkeypatch, preemption, "build_capacity")
    pools = [a_pool(f"p{i}", nodes=2, gpus_per_node=8, usd=3.0 + i / 100) for i in range(20)]
    allocations = [held(f"ns/top-{i}", f"p{i}", workers=2, priority=100) for i in range(20)]
    allocations += [held(f"ns/zero-{i}", f"p{i % 20}", workers=4, gpus=0, at=i) for i in range(2000)]
    jobs = [a_job(f"ns/urgent-{i}", priority=50) for i in range(10)]
    decisions = schedule(snapshot_of(*pools, allocations=tuple(allocations)), jobs)
    assert all(d.action is Action.WAIT and d.reason is Reason.NO_FITTING_POOL for d in decisions)
    assert checks["n"] == 0  # no allocation that holds GPUs has a lower priority: no search at all


def test_a_failed_search_is_not_repeated_and_costs_one_check_per_option(monkeypatch):
    checks = counting(monkeypatch, preemption, "build_capacity")
    pools = [a_pool(f"p{i}", nodes=2, gpus_per_node=8, usd=3.0 + i / 100) for i in range(20)]
    # Each pool: one node held at priority 100, one at priority 0; a 2-node gang never fits.
    allocations = [held(f"ns/top-{i}", f"p{i}", priority=100) for i in range(20)]
    allocations += [held(f"ns/low-{i}", f"p{i}", priority=0, at=1) for i in range(20)]
    allocations += [held(f"ns/zero-{i}", f"p{i % 20}", workers=4, gpus=0, at=i) for i in range(2000)]
    jobs = [a_job(f"ns/urgent-{i}", workers=2, priority=50) for i in range(10)]
    decisions = schedule(snapshot_of(*pools, allocations=tuple(allocations)), jobs)
    assert all(d.action is Action.WAIT for d in decisions)
    assert checks["n"] == 20  # the first job: one check per pool; the nine others: none


def test_many_victims_are_found_by_bisection(monkeypatch):
    checks = counting(monkeypatch, preemption, "build_capacity")
    pool = a_pool("big", nodes=250, gpus_per_node=8)
    allocations = tuple(held(f"ns/one-{i:04d}", "big", gpus=1, at=i) for i in range(2000))
    decisions = schedule(snapshot_of(pool, allocations=allocations), [a_job(workers=250, priority=5)])
    assert decisions[0].action is Action.PREEMPT
    assert len(decisions[0].victims) == 2000
    assert decisions[0].message.endswith("and 1990 more")
    assert checks["n"] <= 2 + 12  # every candidate gone, then bisection over 2000


@pytest.mark.parametrize("count", [1, 500])
def test_a_job_that_never_fits_is_explained_once(monkeypatch, count):
    explained = counting(
        monkeypatch, importlib.import_module("transfer_operator.scheduler.admit"), "explain_static_misfit"
    )
    jobs = [a_job(f"ns/huge-{i}", workers=100) for i in range(count)]
    decisions = schedule(snapshot_of(a_pool()), jobs)
    assert {d.reason for d in decisions} == {Reason.INVALID_SPEC}
    assert explained["n"] == 1
