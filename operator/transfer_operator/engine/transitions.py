"""Every change of a TransferJob's phase, as pure functions: (the job, its status as written, an
event) -> the status patch to write and the side effects to perform. Pure.

This is the only module that produces a `status.phase` (tests/unit/engine/test_transitions.py
checks the source tree for any other). The handlers and the scheduling cycle call these functions
and perform what they return, in a fixed order (`handlers/effects.py`):

1. `DeleteRayJob` before the status write: a job never says Preempted, Suspended or Failed while
   it can still start again under the old attempt; if the delete fails, nothing is written and
   the next cycle tries again.
2. the status patch;
3. `CreateRayJob` after it: the child's name is in status before the child exists;
4. `Event`s last.

`Transition.billed_usd` is the cost accrued up to `now` that the patch bills (for the cost
counter), `preempted` / `failover` the reason to count, when the job went back to the queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from transfer_operator.api.enums import ConditionType, Phase, Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.engine.conditions import iso, seconds_since, upsert_condition
from transfer_operator.engine.outputs import outputs_status
from transfer_operator.engine.status import Mirrored, mirror_rayjob_status

Status = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteRayJob:
    name: str


@dataclass(frozen=True, slots=True)
class CreateRayJob:
    pool: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # "Normal" or "Warning"
    reason: Reason
    message: str


Effect = DeleteRayJob | CreateRayJob | Event


@dataclass(frozen=True, slots=True)
class Transition:
    status: dict[str, Any] = field(default_factory=dict)  # merge patch of status; {}: write nothing
    effects: tuple[Effect, ...] = ()
    billed_usd: float = 0.0
    preempted: Reason | None = None
    failover: Reason | None = None

    @property
    def phase(self) -> Phase | None:
        value = self.status.get("phase")
        return Phase(value) if value else None

    def __bool__(self) -> bool:
        return bool(self.status or self.effects)


NOTHING = Transition()
_READY_PHASES = {Phase.ADMITTED, Phase.RUNNING, Phase.SUCCEEDED}


def _generation(job: TransferJob) -> int | None:
    return job.metadata.generation


def _phase(job: TransferJob, current: Status, phase: Phase, reason: Reason, message: str, now: datetime) -> dict[str, Any]:
    """Status fields for a phase change, with the conditions in step."""
    generation = _generation(job)
    conditions = upsert_condition(
        current.get("conditions") or [], ConditionType.READY, phase in _READY_PHASES, reason, message, now, generation
    )
    if phase.is_terminal:
        conditions = upsert_condition(conditions, ConditionType.FINISHED, True, reason, message, now, generation)
    present = {c.get("type") for c in conditions}
    # Admitted and Running follow the phase; once set, they are turned False rather than dropped.
    for kind, holds in (
        (ConditionType.ADMITTED, phase.holds_capacity),
        (ConditionType.RUNNING, phase is Phase.RUNNING),
    ):
        if holds or kind.value in present:
            conditions = upsert_condition(conditions, kind, holds, reason, message, now, generation)
    status: dict[str, Any] = {"phase": phase.value, "message": message, "conditions": conditions}
    if generation is not None:
        status["observedGeneration"] = generation
    return status


# --- cost -------------------------------------------------------------------------------------


def accrue_cost(job: TransferJob, now: datetime) -> tuple[float, float]:
    """(total cost so far, dollars added since the last accrual) from the price class in use."""
    placement = job.status.placement
    if placement is None or not job.status.phase.holds_capacity:
        return job.status.cost_so_far, 0.0
    elapsed_s = seconds_since(job.status.cost_accrued_at or job.status.admitted_at, now) or 0.0
    added = placement.usd_per_hour * elapsed_s / 3600.0
    return job.status.cost_so_far + added, added


def _bill(job: TransferJob, now: datetime) -> tuple[dict[str, Any], float]:
    total, added = accrue_cost(job, now)
    if added <= 0:
        return {}, 0.0
    return {"costSoFar": round(total, 6), "costAccruedAt": iso(now)}, added


def bill(job: TransferJob, now: datetime) -> Transition:
    """Write the cost accrued up to `now` (no phase change)."""
    fields, added = _bill(job, now)
    return Transition(fields, billed_usd=added) if fields else NOTHING


# --- the queue --------------------------------------------------------------------------------


def wait(job: TransferJob, current: Status, reason: Reason, message: str, now: datetime) -> Transition:
    """Not placed this cycle: the reason on the Ready condition, written only when it changed (a
    new job also gets phase Pending). An event when the reason changes."""
    ready = next((c for c in job.status.conditions if c.type == ConditionType.READY.value), None)
    if ready is not None and ready.reason == reason.value and ready.message == message:
        return NOTHING
    status: dict[str, Any] = {
        "message": message,
        "conditions": upsert_condition(
            current.get("conditions") or [], ConditionType.READY, False, reason, message, now, _generation(job)
        ),
    }
    if not current.get("phase"):
        status["phase"] = Phase.PENDING.value
    if _generation(job) is not None:
        status["observedGeneration"] = _generation(job)
    effects: tuple[Effect, ...] = ()
    if ready is None or ready.reason != reason.value:
        kind = "Warning" if reason in (Reason.INVALID_SPEC, Reason.BUDGET_TOO_LOW) else "Normal"
        effects = (Event(kind, reason, message),)
    return Transition(status, effects)


def admit(
    job: TransferJob,
    current: Status,
    placement: dict[str, Any],
    rayjob_name: str,
    checkpoint: str,
    message: str,
    now: datetime,
) -> Transition:
    """Pending or Preempted -> Admitted on `placement["pool"]`, as the next attempt."""
    attempt = job.status.attempts + 1
    status = _phase(job, current, Phase.ADMITTED, Reason.ADMITTED, message, now)
    status.update(
        placement=placement,
        lastCluster=placement.get("cluster"),
        rayJobName=rayjob_name,  # the child's name is in status before the child exists
        lastCheckpoint=checkpoint,
        attempts=attempt,
        admittedAt=iso(now),
        costAccruedAt=iso(now),
        requeueAfter=None,
    )
    effects = (
        CreateRayJob(placement["pool"], attempt),
        Event("Normal", Reason.ADMITTED, f"{message}; RayJob {rayjob_name}"),
    )
    return Transition(status, effects)


def preempt(
    job: TransferJob,
    current: Status,
    reason: Reason,
    message: str,
    now: datetime,
    *,
    requeue_after_s: float,
    failover: bool = False,
) -> Transition:
    """Admitted or Running -> Preempted: the RayJob goes, the job is queued again after
    `requeue_after_s`; its checkpoints stay. Billed up to now."""
    status = _phase(job, current, Phase.PREEMPTED, reason, message, now)
    cost, added = _bill(job, now)
    status.update(cost, placement=None, requeueAfter=iso(now + timedelta(seconds=requeue_after_s)))
    effects: list[Effect] = [DeleteRayJob(job.status.ray_job_name)] if job.status.ray_job_name else []
    effects.append(Event("Warning", reason, message))
    return Transition(status, tuple(effects), added, preempted=reason, failover=reason if failover else None)


def resize(
    job: TransferJob,
    current: Status,
    placement: dict[str, Any],
    rayjob_name: str,
    message: str,
    now: datetime,
) -> Transition:
    """Running -> Admitted at a new gang size (`placement["gpus"]`), as the next attempt: the old
    RayJob goes, the new one resumes from the latest checkpoint. Billed up to now at the old size;
    the attempt is a resize, not a placement against spec.maxAttempts."""
    attempt = job.status.attempts + 1
    status = _phase(job, current, Phase.ADMITTED, Reason.RESIZED, message, now)
    cost, added = _bill(job, now)
    status.update(
        cost,
        placement=placement,
        rayJobName=rayjob_name,
        attempts=attempt,
        resizes=job.status.resizes + 1,
        admittedAt=iso(now),
        costAccruedAt=iso(now),
    )
    effects: list[Effect] = [DeleteRayJob(job.status.ray_job_name)] if job.status.ray_job_name else []
    effects += [CreateRayJob(placement["pool"], attempt), Event("Normal", Reason.RESIZED, f"{message}; RayJob {rayjob_name}")]
    return Transition(status, tuple(effects), added)


def give_up(job: TransferJob, current: Status, now: datetime) -> Transition:
    """Preempted with every attempt used -> Failed (MaxAttemptsReached)."""
    message = (
        f"preempted after {job.status.placements} of spec.maxAttempts={job.spec.max_attempts} placements; "
        f"checkpoints kept at {job.status.last_checkpoint or '(none yet)'}; raise maxAttempts to retry"
    )
    status = _phase(job, current, Phase.FAILED, Reason.MAX_ATTEMPTS, message, now)
    return Transition(status, (Event("Warning", Reason.MAX_ATTEMPTS, message),))


# --- the user: spec and suspend ---------------------------------------------------------------


def reject_spec(job_phase: Phase, current: Status, message: str, now: datetime, generation: int | None) -> Transition:
    """A spec the checks refuse: InvalidSpec on Ready. A job that holds GPUs or is finished keeps
    its phase (it runs on the spec it started with); any other stays or becomes Pending. Said
    once: nothing when the Ready condition already says it of this generation."""
    ready = next((c for c in current.get("conditions") or [] if c.get("type") == ConditionType.READY.value), None)
    if (
        ready is not None
        and ready.get("reason") == Reason.INVALID_SPEC.value
        and ready.get("message") == message
        and ready.get("observedGeneration") == generation
    ):
        return NOTHING
    effects = (Event("Warning", Reason.INVALID_SPEC, message),)
    conditions = upsert_condition(
        current.get("conditions") or [], ConditionType.READY, False, Reason.INVALID_SPEC, message, now, generation
    )
    if job_phase.holds_capacity or job_phase.is_terminal:
        return Transition({"conditions": conditions, "message": message}, effects)
    status: dict[str, Any] = {"phase": Phase.PENDING.value, "message": message, "conditions": conditions}
    if generation is not None:
        status["observedGeneration"] = generation
    return Transition(status, effects)


def suspend(job: TransferJob, current: Status, now: datetime) -> Transition:
    """spec.suspend: -> Suspended; a RayJob of a job that holds GPUs goes (checkpoints stay)."""
    message = "spec.suspend is true"
    effects: tuple[Effect, ...] = ()
    if job.status.phase.holds_capacity and job.status.ray_job_name:
        effects = (DeleteRayJob(job.status.ray_job_name),)
        message += "; RayJob deleted, checkpoints kept"
    status = _phase(job, current, Phase.SUSPENDED, Reason.SUSPENDED, message, now)
    cost, added = _bill(job, now)
    status.update(cost, placement=None)
    return Transition(status, effects, added)


def resume(job: TransferJob, current: Status, now: datetime) -> Transition:
    """spec.suspend turned false: Suspended -> Pending (queued again)."""
    return Transition(_phase(job, current, Phase.PENDING, Reason.NO_FITTING_POOL, "resumed; waiting for a pool", now))


# --- a job that holds GPUs --------------------------------------------------------------------


def exceed_budget(job: TransferJob, current: Status, total_usd: float, horizon_s: float, now: datetime) -> Transition:
    """-> Failed (BudgetExceeded), before the next `horizon_s` would spend past the budget."""
    assert job.spec.budget is not None
    message = (
        f"spent ${total_usd:.2f} of the ${job.spec.budget.max_dollars:.2f} budget (the next "
        f"{horizon_s:g} s would pass it); stopped, checkpoint kept"
    )
    status = _phase(job, current, Phase.FAILED, Reason.BUDGET_EXCEEDED, message, now)
    cost, added = _bill(job, now)
    status.update(cost)
    effects: list[Effect] = [DeleteRayJob(job.status.ray_job_name)] if job.status.ray_job_name else []
    effects.append(Event("Warning", Reason.BUDGET_EXCEEDED, message))
    return Transition(status, tuple(effects), added)


def warn_budget(job: TransferJob, total_usd: float, fraction: float) -> Transition:
    """The budget warning, once (no phase change)."""
    assert job.spec.budget is not None
    message = f"spent ${total_usd:.2f}, {fraction:.0%} of the ${job.spec.budget.max_dollars:.2f} budget"
    return Transition({"budgetWarned": True}, (Event("Warning", Reason.BUDGET_WARNING, message),))


def lose_rayjob(job: TransferJob, current: Status, now: datetime, *, requeue_after_s: float) -> Transition:
    """Running, but the RayJob is gone -> Preempted (RayJobLost), queued again after a backoff."""
    message = f"RayJob {job.status.ray_job_name} disappeared; back in the queue"
    return preempt(job, current, Reason.RAYJOB_LOST, message, now, requeue_after_s=requeue_after_s, failover=True)


def _news(job: TransferJob, rayjob_status: Mapping[str, Any] | None) -> Mirrored | None:
    """What KubeRay reports, when it reports something the job does not say yet."""
    if not rayjob_status:
        return None
    mirrored = mirror_rayjob_status(dict(rayjob_status))
    if mirrored.phase is job.status.phase and job.status.message == mirrored.message:
        return None
    return mirrored


def mirrors_nothing(job: TransferJob, rayjob_status: Mapping[str, Any] | None) -> bool:
    """Whether `mirror` has nothing to do: KubeRay has not reported, or reports what the job says."""
    return _news(job, rayjob_status) is None


def mirror(
    job: TransferJob,
    current: Status,
    rayjob_status: Mapping[str, Any] | None,
    now: datetime,
    *,
    requeue_after_s: float,
    manifest: Mapping[str, Any] | None = None,
) -> Transition:
    """The RayJob's status -> Running, Succeeded, Failed, Suspended or Preempted (KubeRay lost the
    machines). Nothing while KubeRay has not reported, or when nothing changed. On Succeeded,
    `status.outputs` and `status.metrics` from the trainer's output `manifest` (engine/outputs.py)."""
    mirrored = _news(job, rayjob_status)
    if mirrored is None:
        return NOTHING
    if mirrored.phase is Phase.PREEMPTED:
        return preempt(
            job, current, mirrored.reason, mirrored.message, now, requeue_after_s=requeue_after_s, failover=True
        )
    status = _phase(job, current, mirrored.phase, mirrored.reason, mirrored.message, now)
    if mirrored.phase is Phase.SUCCEEDED:
        status.update(outputs_status(job, manifest))
    added = 0.0
    if not mirrored.phase.holds_capacity:  # the GPUs are released now: bill up to this moment
        cost, added = _bill(job, now)
        status.update(cost)
    effects: tuple[Effect, ...] = ()
    if mirrored.phase is not job.status.phase:
        kind = "Warning" if mirrored.phase is Phase.FAILED else "Normal"
        effects = (Event(kind, mirrored.reason, mirrored.message),)
    return Transition(status, effects, added)
