"""Status patches for TransferJobs: conditions with transition times, phases with reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from transfer_operator.api.enums import ConditionType, Phase, Reason


def iso(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def upsert_condition(
    conditions: list[dict[str, Any]],
    kind: ConditionType,
    status: bool,
    reason: Reason,
    message: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new list with `kind` set; the transition time moves only when the status flips."""
    value = "True" if status else "False"
    updated: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != kind.value:
            updated.append(condition)
            continue
        found = True
        moved = condition.get("status") != value
        updated.append(
            {
                "type": kind.value,
                "status": value,
                "reason": reason.value,
                "message": message,
                "lastTransitionTime": iso(now) if moved else condition.get("lastTransitionTime", iso(now)),
            }
        )
    if not found:
        updated.append(
            {
                "type": kind.value,
                "status": value,
                "reason": reason.value,
                "message": message,
                "lastTransitionTime": iso(now),
            }
        )
    return updated


_READY_PHASES = {Phase.ADMITTED, Phase.RUNNING, Phase.SUCCEEDED}


def phase_patch(
    current: dict[str, Any], phase: Phase, reason: Reason, message: str, now: datetime
) -> dict[str, Any]:
    """Status fields for a phase change, with the Ready condition in step."""
    conditions = upsert_condition(
        list(current.get("conditions") or []),
        ConditionType.READY,
        phase in _READY_PHASES,
        reason,
        message,
        now,
    )
    if phase in (Phase.SUCCEEDED, Phase.FAILED):
        conditions = upsert_condition(conditions, ConditionType.FINISHED, True, reason, message, now)
    present = {c.get("type") for c in conditions}
    # Admitted and Running follow the phase; once set, they are turned False rather than dropped.
    for kind, holds in (
        (ConditionType.ADMITTED, phase.holds_capacity),
        (ConditionType.RUNNING, phase is Phase.RUNNING),
    ):
        if holds or kind.value in present:
            conditions = upsert_condition(conditions, kind, holds, reason, message, now)
    return {"phase": phase.value, "message": message, "conditions": conditions}
