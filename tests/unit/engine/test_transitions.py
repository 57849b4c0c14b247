"""Every phase transition, as a table: (job in a phase, event) -> new phase, effects, fields. And
the rule that no other module of the operator produces a `status.phase`."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from transfer_operator.api.enums import Phase, Reason
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.api.models import TransferJob
from transfer_operator.api.validation import parse_transferjob
from transfer_operator.engine import transitions as t
from transfer_operator.engine.conditions import upsert_condition
from transfer_operator.engine.transitions import CreateRayJob, DeleteRayJob, Event, Transition

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
PLACEMENT = {
    "pool": "eu-a100",
    "region": "eu-west",
    "gpuType": "A100",
    "priceClass": "onDemand",
    "usdPerGpuHour": 3.0,
    "usdPerHour": 24.0,
    "gpus": 8,
}
RUNNING_RAY = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}


def a_job(phase: str | None = None, generation: int = 3, **status: Any) -> tuple[TransferJob, dict[str, Any]]:
    body = transferjob_manifest("a", namespace="ns", budget={"maxDollars": 10.0})
    body["metadata"].update(generation=generation, creationTimestamp="2026-01-01T00:00:00Z")
    if phase in ("Admitted", "Running"):
        status = {
            "placement": PLACEMENT,
            "rayJobName": "a-a1",
            "attempts": 1,
            "admittedAt": "2026-01-01T00:30:00Z",
            "costAccruedAt": "2026-01-01T00:30:00Z",
            **status,
        }
    body["status"] = {**({"phase": phase} if phase else {}), **status}
    return parse_transferjob(body), body["status"]


def holding(phase: str = "Running") -> tuple[TransferJob, dict[str, Any]]:
    return a_job(phase)


def kinds(change: Transition) -> list[str]:
    return [type(e).__name__ + (f":{e.reason.value}" if isinstance(e, Event) else "") for e in change.effects]


CASES: list[Any] = [
    # (id, job, event -> Transition, new phase or None, effects)
    ("new-job-waits", a_job(), lambda j, s: t.wait(j, s, Reason.NO_FITTING_POOL, "no room", NOW),
     Phase.PENDING, ["Event:NoFittingPool"]),
    ("invalid-against-the-fleet", a_job(), lambda j, s: t.wait(j, s, Reason.INVALID_SPEC, "no T4", NOW),
     Phase.PENDING, ["Event:InvalidSpec"]),
    ("pending-admitted", a_job("Pending"),
     lambda j, s: t.admit(j, s, PLACEMENT, "a-a1", "/ckpt", "placed", NOW),
     Phase.ADMITTED, ["CreateRayJob", "Event:Admitted"]),
    ("preempted-admitted-again", a_job("Preempted", attempts=1, requeueAfter="2026-01-01T00:59:00Z"),
     lambda j, s: t.admit(j, s, PLACEMENT, "a-a2", "/ckpt", "placed", NOW),
     Phase.ADMITTED, ["CreateRayJob", "Event:Admitted"]),
    ("admitted-preempted-by-priority", holding("Admitted"),
     lambda j, s: t.preempt(j, s, Reason.PREEMPTED, "by b", NOW, requeue_after_s=10),
     Phase.PREEMPTED, ["DeleteRayJob", "Event:Preempted"]),
    ("running-pool-lost", holding(),
     lambda j, s: t.preempt(j, s, Reason.POOL_LOST, "pool gone", NOW, requeue_after_s=0, failover=True),
     Phase.PREEMPTED, ["DeleteRayJob", "Event:PoolLost"]),
    ("running-resized", holding(),
     lambda j, s: t.resize(j, s, {**PLACEMENT, "gpus": 16}, "a-a2", "grown", NOW),
     Phase.ADMITTED, ["DeleteRayJob", "CreateRayJob", "Event:Resized"]),
    ("preempted-out-of-attempts", a_job("Preempted", attempts=3),
     lambda j, s: t.give_up(j, s, NOW), Phase.FAILED, ["Event:MaxAttemptsReached"]),
    ("pending-invalid-spec", a_job("Pending"),
     lambda j, s: t.reject_spec(Phase.PENDING, s, "bad", NOW, 4), Phase.PENDING, ["Event:InvalidSpec"]),
    ("running-invalid-spec-keeps-running", holding(),
     lambda j, s: t.reject_spec(Phase.RUNNING, s, "bad", NOW, 4), None, ["Event:InvalidSpec"]),
    ("running-suspended", holding(), lambda j, s: t.suspend(j, s, NOW), Phase.SUSPENDED, ["DeleteRayJob"]),
    ("pending-suspended", a_job("Pending"), lambda j, s: t.suspend(j, s, NOW), Phase.SUSPENDED, []),
    ("suspended-resumed", a_job("Suspended"), lambda j, s: t.resume(j, s, NOW), Phase.PENDING, []),
    ("running-over-budget", holding(),
     lambda j, s: t.exceed_budget(j, s, 9.9, 10, NOW), Phase.FAILED, ["DeleteRayJob", "Event:BudgetExceeded"]),
    ("running-budget-warning", holding(), lambda j, s: t.warn_budget(j, 8.1, 0.8), None, ["Event:BudgetWarning"]),
    ("running-rayjob-lost", holding(),
     lambda j, s: t.lose_rayjob(j, s, NOW, requeue_after_s=10), Phase.PREEMPTED, ["DeleteRayJob", "Event:RayJobLost"]),
    ("admitted-rayjob-running", holding("Admitted"),
     lambda j, s: t.mirror(j, s, RUNNING_RAY, NOW, requeue_after_s=10), Phase.RUNNING, ["Event:Running"]),
    ("running-rayjob-succeeded", holding(),
     lambda j, s: t.mirror(j, s, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, NOW, requeue_after_s=10),
     Phase.SUCCEEDED, ["Event:Succeeded"]),
    ("running-rayjob-failed", holding(),
     lambda j, s: t.mirror(j, s, {"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}, NOW, requeue_after_s=10),
     Phase.FAILED, ["Event:Failed"]),
    ("running-rayjob-lost-capacity", holding(),
     lambda j, s: t.mirror(j, s, {"jobDeploymentStatus": "Failed", "reason": "AppFailed-NodeLost"}, NOW, requeue_after_s=10),
     Phase.PREEMPTED, ["DeleteRayJob", "Event:RayJobLost"]),
    ("running-rayjob-suspended", holding(),
     lambda j, s: t.mirror(j, s, {"jobDeploymentStatus": "Suspended"}, NOW, requeue_after_s=10),
     Phase.SUSPENDED, ["Event:Suspended"]),
]


@pytest.mark.parametrize("job_status, event, phase, effects", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_transition(
    job_status: tuple[TransferJob, dict[str, Any]],
    event: Callable[[TransferJob, dict[str, Any]], Transition],
    phase: Phase | None,
    effects: list[str],
) -> None:
    job, status = job_status
    change = event(job, status)
    assert change.phase is phase
    assert kinds(change) == effects
    if phase is not None:  # every phase change keeps Ready in step and names the generation
        ready = next(c for c in change.status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == ("True" if phase in (Phase.ADMITTED, Phase.RUNNING, Phase.SUCCEEDED) else "False")
        assert ready["observedGeneration"] in (3, 4) and change.status["observedGeneration"] in (3, 4)
    if phase is not None and not phase.holds_capacity:
        assert change.status.get("placement", "absent") in (None, "absent")


def test_admission_writes_the_attempt_and_the_childs_name_and_clears_the_requeue():
    job, status = a_job("Preempted", attempts=1, requeueAfter="2026-01-01T00:59:00Z")
    change = t.admit(job, status, PLACEMENT, "a-a2", "/ckpt", "placed", NOW)
    assert change.status["attempts"] == 2 and change.status["rayJobName"] == "a-a2"
    assert change.status["admittedAt"] == change.status["costAccruedAt"] == "2026-01-01T01:00:00Z"
    assert change.status["requeueAfter"] is None
    assert change.effects[0] == CreateRayJob("eu-a100", 2)


def test_a_resize_bills_the_old_size_starts_the_next_attempt_and_spends_no_placement():
    job, status = holding()
    change = t.resize(job, status, {**PLACEMENT, "gpus": 16, "usdPerHour": 48.0}, "a-a2", "grown", NOW)
    assert change.status["costSoFar"] == pytest.approx(12.0) and change.billed_usd == pytest.approx(12.0)
    assert change.status["attempts"] == 2 and change.status["resizes"] == 1
    assert change.status["placement"]["gpus"] == 16 and change.status["admittedAt"] == "2026-01-01T01:00:00Z"
    assert change.effects[:2] == (DeleteRayJob("a-a1"), CreateRayJob("eu-a100", 2))
    assert change.preempted is None and change.failover is None
    resized = parse_transferjob({**transferjob_manifest("a", namespace="ns"), "status": {"attempts": 5, "resizes": 3}})
    assert resized.status.placements == 2  # maxAttempts counts placements, not resizes


def test_preemption_bills_up_to_now_and_queues_after_the_backoff():
    job, status = holding()
    change = t.preempt(job, status, Reason.PREEMPTED, "by b", NOW, requeue_after_s=10)
    assert change.status["costSoFar"] == pytest.approx(12.0) and change.billed_usd == pytest.approx(12.0)
    assert change.status["requeueAfter"] == "2026-01-01T01:00:10Z" and change.status["placement"] is None
    assert change.effects[0] == DeleteRayJob("a-a1") and change.preempted is Reason.PREEMPTED
    assert change.failover is None
    lost = t.lose_rayjob(job, status, NOW, requeue_after_s=10)
    assert lost.preempted is lost.failover is Reason.RAYJOB_LOST


def test_waiting_writes_only_what_changed_and_tells_only_a_new_reason():
    job, status = a_job()
    first = t.wait(job, status, Reason.NO_FITTING_POOL, "no room", NOW)
    job, status = a_job(**first.status)
    assert not t.wait(job, status, Reason.NO_FITTING_POOL, "no room", NOW + timedelta(seconds=2))
    other = t.wait(job, status, Reason.NO_FITTING_POOL, "still no room", NOW)
    assert other.status["message"] == "still no room" and not other.effects and "phase" not in other.status


def test_mirroring_an_unchanged_or_unreported_rayjob_is_nothing():
    job, status = holding("Admitted")
    assert not t.mirror(job, status, {}, NOW, requeue_after_s=10)
    running = t.mirror(job, status, RUNNING_RAY, NOW, requeue_after_s=10)
    job, status = a_job("Running", **{k: v for k, v in running.status.items() if k != "phase"})
    assert not t.mirror(job, status, RUNNING_RAY, NOW + timedelta(seconds=5), requeue_after_s=10)


def test_bill_writes_cost_only():
    job, _ = holding()
    change = t.bill(job, NOW)
    assert set(change.status) == {"costSoFar", "costAccruedAt"} and change.phase is None
    assert change.billed_usd == pytest.approx(12.0)


def test_transition_time_moves_only_when_the_status_flips():
    first = upsert_condition([], t.ConditionType.READY, False, Reason.NO_FITTING_POOL, "waiting", NOW, 1)
    same = upsert_condition(first, t.ConditionType.READY, False, Reason.QUOTA_EXCEEDED, "quota", NOW + timedelta(1), 2)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert same[0]["reason"] == "QuotaExceeded" and same[0]["observedGeneration"] == 2
    flipped = upsert_condition(same, t.ConditionType.READY, True, Reason.ADMITTED, "ok", NOW + timedelta(2), 2)
    assert flipped[0]["lastTransitionTime"] == "2026-01-03T01:00:00Z"


def test_finished_phases_set_the_finished_condition():
    job, status = holding()
    change = t.exceed_budget(job, status, 9.9, 10, NOW)
    finished = next(c for c in change.status["conditions"] if c["type"] == "Finished")
    assert finished["status"] == "True" and finished["reason"] == "BudgetExceeded"


# --- one writer of status.phase ---------------------------------------------------------------

OPERATOR = Path(__file__).resolve().parents[3] / "operator" / "transfer_operator"
THE_WRITER = OPERATOR / "engine" / "transitions.py"
# The dev cluster's podman node stands in for a kubelet: the phases it writes are Pods', not jobs'.
POD_PHASE_WRITERS = {OPERATOR / "devcluster" / "podlet.py"}


def phase_writes(tree: ast.AST) -> list[int]:
    """Lines that put a "phase" key into a mapping: {"phase": ...}, x["phase"] = ...,
    .update(phase=...), dict(phase=...), .setdefault("phase", ...)."""
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            found += [node.lineno for k in node.keys if isinstance(k, ast.Constant) and k.value == "phase"]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            if isinstance(node.slice, ast.Constant) and node.slice.value == "phase":
                found.append(node.lineno)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("update", "dict") and any(k.arg == "phase" for k in node.keywords):
                found.append(node.lineno)
            first = node.args[0] if node.args else None
            if name == "setdefault" and isinstance(first, ast.Constant) and first.value == "phase":
                found.append(node.lineno)
    return found


def test_only_the_transition_module_writes_status_phase():
    offenders = {
        str(path.relative_to(OPERATOR)): lines
        for path in sorted(OPERATOR.rglob("*.py"))
        if path != THE_WRITER
        and path not in POD_PHASE_WRITERS
        and (lines := phase_writes(ast.parse(path.read_text())))
    }
    assert offenders == {}, f"status.phase written outside engine/transitions.py: {offenders}"
    assert phase_writes(ast.parse(THE_WRITER.read_text()))  # the check sees the real writer


def test_the_check_catches_each_form():
    for source in ('s = {"phase": "Failed"}', 's["phase"] = "Failed"', 's.update(phase="Failed")',
                   'dict(phase="x")', 's.setdefault("phase", "Pending")'):
        assert phase_writes(ast.parse(source)) == [1], source
