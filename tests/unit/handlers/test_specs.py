"""The cycle's spec checks (handlers/specs.py): InvalidSpec said once, a running job kept on the
spec it started with, and spec.suspend / resume — over a FakeKube."""

from __future__ import annotations

from datetime import timedelta

from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle, status_of

REFUSED = {"type": "lora", "layerLrDecay": 0.8}  # layerLrDecay is for fineTune/progressiveUnfreezing


def ready_of(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def invalid_spec_events(kube, name: str) -> int:
    return sum(1 for e in kube.events if e[0] == name and e[2] == "InvalidSpec")


def test_a_refused_spec_gets_invalid_spec_once_and_is_never_placed():
    bad = a_job("bad", strategy=REFUSED)
    bad["metadata"]["generation"] = 1
    ctx, kube = ctx_with(a_pool(), bad)
    for i in range(3):
        run_cycle(ctx, NOW + timedelta(seconds=2 * i))
    status = status_of(kube, "bad")
    ready = ready_of(status)
    assert status["phase"] == "Pending" and ready["reason"] == "InvalidSpec"
    assert "spec.strategy.layerLrDecay" in ready["message"] and ready["observedGeneration"] == 1
    assert invalid_spec_events(kube, "bad") == 1 and not kube.rayjobs
    # Fixed: the next cycle places it.
    kube.transferjobs[("default", "bad")]["spec"]["strategy"] = {"type": "lora"}
    kube.transferjobs[("default", "bad")]["metadata"]["generation"] = 2
    run_cycle(ctx, NOW + timedelta(seconds=8))
    assert status_of(kube, "bad")["phase"] == "Admitted"


def test_a_running_job_whose_new_spec_is_refused_keeps_its_gpus_on_the_spec_it_started_with():
    ctx, kube = ctx_with(a_pool(), a_job("a", priority=5), a_job("b"))
    run_cycle(ctx, NOW)
    assert status_of(kube, "a")["phase"] == "Admitted" and status_of(kube, "b")["phase"] == "Pending"
    running = kube.transferjobs[("default", "a")]
    running["spec"]["strategy"] = REFUSED
    running["metadata"]["generation"] = 2
    run_cycle(ctx, NOW + timedelta(seconds=2))
    run_cycle(ctx, NOW + timedelta(seconds=4))
    status = status_of(kube, "a")
    assert status["phase"] == "Admitted" and ready_of(status)["reason"] == "InvalidSpec"
    assert invalid_spec_events(kube, "a") == 1
    assert kube.gpupools["eu-a100"]["status"]["allocatedGpus"] == 8  # still its GPUs: b waits
    assert status_of(kube, "b")["phase"] == "Pending" and list(kube.rayjobs) == [("default", "a-a1")]


def test_suspend_frees_the_gpus_for_the_next_job_in_the_same_cycle_and_resume_queues_it_again():
    ctx, kube = ctx_with(a_pool(), a_job("a", priority=5), a_job("b"))
    run_cycle(ctx, NOW)
    kube.transferjobs[("default", "a")]["spec"]["suspend"] = True
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "a")["phase"] == "Suspended" and status_of(kube, "a").get("placement") is None
    assert ("default", "a-a1") not in kube.rayjobs
    assert status_of(kube, "b")["phase"] == "Admitted"  # placed in the cycle that suspended a
    kube.transferjobs[("default", "a")]["spec"]["suspend"] = False
    run_cycle(ctx, NOW + timedelta(seconds=4))
    status = status_of(kube, "a")
    assert status["phase"] == "Pending" and ready_of(status)["reason"] == "Preempting"  # b, lower priority
