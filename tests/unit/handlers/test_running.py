"""The cycle's reconcile pass over jobs that hold GPUs: RayJob status from the watch-fed index (a
miss is confirmed by a GET), cost, budget, suspend, a lost or never-created RayJob."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from transfer_operator.handlers.context import Ctx

from .fake_kube import FakeKube
from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle, status_of

LATER = NOW + timedelta(seconds=15)  # past the 10 s reconcile interval
RUNNING = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}


class CountingKube(FakeKube):
    gets: int = 0

    def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return super().get_rayjob(namespace, name)



def admitted(*jobs: dict[str, Any], pool_nodes: int = 1) -> tuple[Ctx, CountingKube]:
    kube = CountingKube()
    ctx, _ = ctx_with(a_pool(nodes=pool_nodes), *(jobs or (a_job("a"),)), kube=kube)
    run_cycle(ctx, NOW)
    return ctx, kube


def test_mirrors_a_changed_rayjob_in_the_next_cycle_without_a_get():
    ctx, kube = admitted()
    kube.rayjobs[("default", "a-a1")]["status"] = RUNNING  # the watch reports it
    run_cycle(ctx, NOW + timedelta(seconds=2))  # before the full pass is due
    assert status_of(kube, "a")["phase"] == "Running" and kube.gets == 0


def test_a_miss_in_the_index_is_confirmed_with_a_get():
    ctx, kube = admitted()
    kube.rayjobs[("default", "a-a1")]["status"] = RUNNING
    ctx.index.step_all()
    ctx.index.rayjobs.items.pop(("default", "a-a1"))  # as if the watch had not delivered it
    ctx.index.rayjobs.take_changed()
    run_cycle(ctx, LATER)
    assert status_of(kube, "a")["phase"] == "Running" and kube.gets == 1
    assert ctx.index.rayjobs.get(("default", "a-a1")) is not None


def test_an_unchanged_rayjob_is_not_reconciled_between_passes():
    ctx, kube = admitted()
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "a")["phase"] == "Admitted" and kube.gets == 0


def test_a_lost_rayjob_requeues_and_a_missing_one_is_created():
    ctx, kube = admitted()
    del kube.rayjobs[("default", "a-a1")]
    run_cycle(ctx, LATER)  # still Admitted: the RayJob never landed, so it is created
    assert ("default", "a-a1") in kube.rayjobs
    kube.transferjobs[("default", "a")]["status"]["phase"] = "Running"
    del kube.rayjobs[("default", "a-a1")]
    run_cycle(ctx, LATER + timedelta(seconds=15))
    status = status_of(kube, "a")
    assert status["phase"] == "Preempted" and "placement" not in status
    assert any(e[2] == "RayJobLost" for e in kube.events)


def test_budget_warns_then_stops_before_it_is_passed():
    # 8 GPUs at $3/h = $24/h: $0.40 in 60 s. Budget $1: warning at $0.80, stop before $1.
    job = a_job("a", budget={"maxDollars": 1.0}, resources={"workers": 1, "gpusPerWorker": 8, "estimatedHours": 0.02})
    ctx, kube = admitted(job)
    kube.rayjobs[("default", "a-a1")]["status"] = RUNNING
    run_cycle(ctx, NOW + timedelta(seconds=60))
    assert status_of(kube, "a")["phase"] == "Running" and not status_of(kube, "a").get("budgetWarned")
    run_cycle(ctx, NOW + timedelta(seconds=125))  # $0.83
    assert status_of(kube, "a")["budgetWarned"] is True
    assert sum(e[2] == "BudgetWarning" for e in kube.events) == 1
    run_cycle(ctx, NOW + timedelta(seconds=140))  # $0.93, and the next 10 s would reach $1.00
    status = status_of(kube, "a")
    assert status["phase"] == "Failed" and status["conditions"][0]["reason"] == "BudgetExceeded"
    assert 0.93 <= status["costSoFar"] < 1.0
    assert ("default", "a-a1") not in kube.rayjobs


def test_cost_is_written_every_few_minutes_not_every_pass():
    ctx, kube = admitted()
    kube.rayjobs[("default", "a-a1")]["status"] = RUNNING
    run_cycle(ctx, LATER)
    assert "costSoFar" not in status_of(kube, "a")
    run_cycle(ctx, NOW + timedelta(seconds=301))
    assert abs(status_of(kube, "a")["costSoFar"] - 24.0 * 301 / 3600) < 1e-6


def test_suspend_while_admitted_deletes_the_rayjob():
    ctx, kube = admitted()
    kube.transferjobs[("default", "a")]["spec"]["suspend"] = True
    run_cycle(ctx, LATER)
    assert status_of(kube, "a")["phase"] == "Suspended" and ("default", "a-a1") not in kube.rayjobs



def test_cost_writes_of_jobs_admitted_together_are_spread_over_passes():
    many = [a_job(f"j{i}", gpus=1) for i in range(30)]
    ctx, kube = admitted(*many, pool_nodes=4)
    for key in list(kube.rayjobs):
        kube.rayjobs[key]["status"] = RUNNING
    run_cycle(ctx, NOW + timedelta(seconds=2))  # mirrored: Running, no cost yet
    run_cycle(ctx, NOW + timedelta(seconds=301))  # all 30 are due; at most 20 write
    billed = [n for n in (f"j{i}" for i in range(30)) if "costSoFar" in status_of(kube, n)]
    assert len(billed) == 20
    run_cycle(ctx, NOW + timedelta(seconds=312))  # the next pass writes the rest
    assert all("costSoFar" in status_of(kube, f"j{i}") for i in range(30))
