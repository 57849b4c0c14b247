"""Growing a running elastic gang in the cycle (handlers/growth.py) over a FakeKube: it starts at the
size free, grows once the GPUs free up and its cooldown has passed, as a new attempt of the new
size that spends no placement of maxAttempts, and never while the queue wants the pool; and
shrinking one for a higher-priority job instead of preempting it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from transfer_operator.api.config import OperatorConfig
from transfer_operator.handlers.context import Ctx

from .fake_kube import FakeKube
from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle, status_of

RUNNING = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
COMPLETE = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}


def elastic_job(name: str = "e", fewest: int = 1, most: int = 8, **spec: Any) -> dict[str, Any]:
    job = a_job(name, gpus=1, **spec)
    job["spec"]["resources"] = {"minWorkers": fewest, "maxWorkers": most, "gpusPerWorker": 1}
    return job


def started(*jobs: dict[str, Any], grow_after_s: float = 60.0) -> tuple[Ctx, FakeKube]:
    """The pool (8 GPUs) with `x` (6 GPUs) and the elastic gang admitted, and both Running."""
    ctx, kube = ctx_with(a_pool(), a_job("x", gpus=6, priority=5), *jobs)
    ctx.config = OperatorConfig(grow_after_seconds=grow_after_s)
    run_cycle(ctx, NOW)
    for rayjob in kube.rayjobs.values():
        rayjob["status"] = RUNNING
    run_cycle(ctx, NOW + timedelta(seconds=2))
    return ctx, kube


def workers_of(kube: FakeKube, rayjob: str) -> int:
    groups = kube.rayjobs[("default", rayjob)]["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    return sum(group["replicas"] for group in groups)


def finish_x(ctx: Ctx, kube: FakeKube, at_s: float) -> None:
    kube.rayjobs[("default", "x-a1")]["status"] = COMPLETE
    run_cycle(ctx, NOW + timedelta(seconds=at_s))


def test_a_gang_grows_into_freed_gpus_after_its_cooldown_as_a_new_attempt():
    ctx, kube = started(elastic_job())
    status = status_of(kube, "e")
    assert status["phase"] == "Running" and status["placement"]["gpus"] == 2
    finish_x(ctx, kube, 30)  # x's GPUs free up before the cooldown: no growth yet
    assert status_of(kube, "e")["attempts"] == 1
    run_cycle(ctx, NOW + timedelta(seconds=61))
    status = status_of(kube, "e")
    assert (status["phase"], status["attempts"], status["resizes"]) == ("Admitted", 2, 1)
    assert status["placement"]["gpus"] == 8 and status["placement"]["usdPerHour"] == 24.0
    assert ("default", "e-a1") not in kube.rayjobs and workers_of(kube, "e-a2") == 8
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Resized" and "grown from 2 to 8 workers" in ready["message"]
    # The first attempt was billed at 2 GPUs up to the resize: $3 x 2 x 61 s.
    assert abs(status["costSoFar"] - 3.0 * 2 * 61 / 3600) < 1e-6
    assert kube.gpupools["eu-a100"]["status"]["allocatedGpus"] == 8


def test_a_spot_gang_grows_only_as_far_as_its_budget_pays_for_the_spot_rework():
    """The budget's horizon of a growth is the admission's: spot hours include the rework of the
    pool's interruptions (costmap.expected_hours), here 1.25 h per hour of work."""
    pricing = {"onDemandPerGpuHour": 3.0, "spotPerGpuHour": 1.0, "spotInterruptionRate": 1.0}
    gang = elastic_job(placement={"spot": True}, budget={"maxDollars": 8.0})
    gang["spec"]["resources"]["estimatedHours"] = 1.0
    ctx, kube = ctx_with(a_pool(pricing=pricing), a_job("x", gpus=6, priority=5), gang)
    ctx.config = OperatorConfig(grow_after_seconds=60.0)
    run_cycle(ctx, NOW)
    for rayjob in kube.rayjobs.values():
        rayjob["status"] = RUNNING
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "e")["placement"]["priceClass"] == "spot"
    finish_x(ctx, kube, 61)
    # $8 less the $0.03 spent pays for 6 workers at $1 x 1.25 h (7 at $1 x 1 h, without the rework).
    status = status_of(kube, "e")
    assert (status["attempts"], status["placement"]["gpus"]) == (2, 6)


def test_a_gang_does_not_grow_while_a_job_of_its_priority_waits_for_the_pool():
    ctx, kube = started(elastic_job())
    kube.add(a_job("waits", gpus=8))  # priority 0 as the gang: it wants the whole pool
    finish_x(ctx, kube, 61)
    # The waiting job could not fit beside the gang; the gang keeps its 2 and leaves the 6 free.
    assert status_of(kube, "e")["attempts"] == 1 and status_of(kube, "e")["placement"]["gpus"] == 2
    assert status_of(kube, "waits")["phase"] == "Pending"


def test_growth_can_be_turned_off():
    ctx, kube = started(elastic_job(), grow_after_s=0)
    finish_x(ctx, kube, 120)
    assert status_of(kube, "e")["attempts"] == 1


def test_resizes_do_not_use_up_max_attempts():
    ctx, kube = started(elastic_job(maxAttempts=1))
    finish_x(ctx, kube, 61)
    status = status_of(kube, "e")
    assert status["attempts"] == 2 and status["resizes"] == 1 and status["phase"] == "Admitted"


def test_a_higher_priority_job_shrinks_a_running_gang_instead_of_preempting_it():
    ctx, kube = ctx_with(a_pool(), elastic_job())
    run_cycle(ctx, NOW)
    kube.rayjobs[("default", "e-a1")]["status"] = RUNNING
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "e")["placement"]["gpus"] == 8
    kube.add(a_job("vip", gpus=3, priority=5))
    run_cycle(ctx, NOW + timedelta(seconds=10))
    status = status_of(kube, "e")
    assert (status["phase"], status["attempts"], status["resizes"]) == ("Admitted", 2, 1)
    assert status["placement"]["gpus"] == 5 and workers_of(kube, "e-a2") == 5
    assert ("default", "e-a1") not in kube.rayjobs
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "shrunk from 8 to 5 workers to make room for higher-priority default/vip" in ready["message"]
    assert status_of(kube, "vip")["phase"] == "Pending"
    run_cycle(ctx, NOW + timedelta(seconds=12))  # the gang's 3 GPUs are free: the job runs beside it
    assert status_of(kube, "vip")["phase"] == "Admitted"
    assert kube.gpupools["eu-a100"]["status"]["allocatedGpus"] == 8
    assert status_of(kube, "e")["placement"]["gpus"] == 5
