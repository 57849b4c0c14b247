"""Admissions written in the background (handlers/inflight.py): what the cycles see while an
admission's writes are in flight, and what a failed write or a lost Lease leaves."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from transfer_operator import metrics
from transfer_operator.handlers import scheduling
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.inflight import InFlight, Latest, Lease

from .fake_kube import FakeKube
from .test_scheduling import NOW, a_job, a_pool, ctx_with, status_of


class GatedKube(FakeKube):
    """Status patches of the jobs in `held` wait at the gate (an API server that has not answered
    yet); those of the jobs in `refuse` fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()  # a patch waits at the gate
        self.held: set[str] = set()
        self.refuse: set[str] = set()

    def patch_transferjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        if name in self.held:
            self.waiting.set()
            assert self.gate.wait(timeout=30)
        if name in self.refuse:
            raise RuntimeError("the API server answered 500")
        return super().patch_transferjob_status(namespace, name, status)


def cycle(ctx: Ctx, seconds: float) -> list[Any]:
    ctx.index.step_all()
    return list(scheduling.run_cycle(ctx, NOW + timedelta(seconds=seconds)))


def test_the_next_cycle_counts_an_admission_in_flight_and_leaves_the_job_alone():
    kube = GatedKube()
    ctx, _ = ctx_with(a_pool(nodes=1), a_job("a", priority=0), kube=kube)
    kube.held = {"a"}
    [first] = cycle(ctx, 0)
    assert first.action.value == "admit" and len(ctx.in_flight) == 1
    # While a's writes wait for the API server: a higher-priority job finds the pool taken
    # (a is no victim), a is not decided again, and a cordon does not move it yet.
    kube.add(a_job("b", priority=100))
    kube.gpupools["eu-a100"]["spec"]["cordoned"] = True
    kube._bump(kube.gpupools["eu-a100"])
    decisions = cycle(ctx, 2)
    assert [(d.job_key, d.action.value) for d in decisions] == [("default/b", "wait")]
    assert "phase" not in status_of(kube, "a") and not kube.rayjobs
    assert kube.gpupools["eu-a100"]["status"]["allocatedGpus"] == 8  # the pool status counts a
    kube.gate.set()
    assert ctx.in_flight.drain(timeout_s=30)
    assert status_of(kube, "a")["phase"] == "Admitted" and list(kube.rayjobs) == [("default", "a-a1")]
    # Done: the cycle after sees a in the index, and the cordon now sends it back to the queue.
    cycle(ctx, 4)
    assert ctx.in_flight.drain(timeout_s=30)
    assert status_of(kube, "a")["phase"] == "Preempted" and status_of(kube, "a")["attempts"] == 1


def test_an_admission_whose_status_write_failed_is_decided_again():
    kube = GatedKube()
    ctx, _ = ctx_with(a_pool(), a_job("a"), kube=kube)
    kube.refuse = {"a"}
    cycle(ctx, 0)
    assert ctx.in_flight.drain(timeout_s=30)
    assert "phase" not in status_of(kube, "a") and not kube.rayjobs
    kube.refuse = set()
    [again] = cycle(ctx, 2)
    assert again.action.value == "admit"
    assert ctx.in_flight.drain(timeout_s=30)
    assert status_of(kube, "a")["attempts"] == 1 and list(kube.rayjobs) == [("default", "a-a1")]


def test_a_job_deleted_while_its_admission_waits_gets_no_rayjob_and_no_error():
    kube = GatedKube()
    ctx, _ = ctx_with(a_pool(), a_job("a"), kube=kube)
    kube.held = {"a"}
    errors = metrics.RECONCILE_ERRORS.labels(stage="admit")._value.get()
    cycle(ctx, 0)
    assert kube.waiting.wait(timeout=30)
    del kube.transferjobs[("default", "a")]  # deleted before the API server answered: a 404
    kube.gate.set()
    assert ctx.in_flight.drain(timeout_s=30)
    assert not kube.rayjobs and not any(kind == "Secret" for kind, _, _ in kube.owned)
    assert metrics.RECONCILE_ERRORS.labels(stage="admit")._value.get() == errors


def test_losing_the_lease_drops_the_admissions_not_started_yet():
    kube = GatedKube()
    ctx, _ = ctx_with(a_pool(nodes=2), a_job("a"), a_job("b"), kube=kube)
    ctx.in_flight = InFlight(writers=1)  # a's writes hold the only writer; b's wait in the queue
    kube.held = {"a", "b"}
    assert len(cycle(ctx, 0)) == 2
    assert kube.waiting.wait(timeout=30)  # a's writes have started
    kube.lease_holder = "another replica"
    assert not scheduling.hold_lease(ctx, 15)
    assert len(ctx.in_flight) == 1  # b's were dropped; a's are being written
    kube.gate.set()
    assert ctx.in_flight.drain(timeout_s=30)
    assert [status_of(kube, n).get("phase") for n in ("a", "b")] == ["Admitted", None]
    assert list(kube.rayjobs) == [("default", "a-a1")]


def test_no_write_goes_out_past_the_lease_expiry():
    ctx, kube = ctx_with(a_pool(), a_job("a"))
    ctx.lease.expires_at = time.monotonic() - 1  # the last renewal was too long ago
    cycle(ctx, 0)
    assert ctx.in_flight.drain(timeout_s=30)
    assert "phase" not in status_of(kube, "a") and not kube.rayjobs
    assert scheduling.hold_lease(ctx, 15) and ctx.lease.held()


def test_lease_states():
    lease = Lease()
    assert lease.held()
    lease.lost.set()
    assert not lease.held()


def test_only_the_latest_pool_status_is_written_and_a_repeat_is_not():
    latest, lease, gate, written = Latest(), Lease(), threading.Event(), []

    def write(value: int, fail: bool = False) -> None:
        assert gate.wait(timeout=30)
        if fail:
            raise RuntimeError("the API server answered 500")
        written.append(value)

    latest.submit("eu", 1, lease, lambda: write(1))  # being written: waits at the gate
    deadline = time.monotonic() + 10
    while latest.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    latest.submit("eu", 2, lease, lambda: write(2))
    latest.submit("eu", 3, lease, lambda: write(3))  # replaces 2, never written
    gate.set()
    assert latest.drain(timeout_s=30) and written == [1, 3]
    latest.submit("eu", 3, lease, lambda: write(3))  # what is there already: no write
    assert latest.drain(timeout_s=30) and written == [1, 3]
    latest.submit("eu", 4, lease, lambda: write(4, fail=True))
    assert latest.drain(timeout_s=30) and written == [1, 3]
    latest.submit("eu", 3, lease, lambda: write(3))  # after a failure, even the old value is written again
    assert latest.drain(timeout_s=30) and written == [1, 3, 3]
    lease.lost.set()
    latest.submit("eu", 5, lease, lambda: write(5))
    assert latest.drain(timeout_s=30) and written == [1, 3, 3]  # no write without the Lease
