"""TransferJob status conditions: transition times that move only when a status flips, and the
spec generation each condition was written for. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from transfer_operator.api.enums import ConditionType, Reason


def iso(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(timestamp: str | None, now: datetime) -> float | None:
    if not timestamp:
        return None
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return max(0.0, (now - then).total_seconds())


def upsert_condition(
    conditions: Iterable[Mapping[str, Any]],
    kind: ConditionType,
    status: bool,
    reason: Reason,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """A new list with `kind` set; the transition time moves only when the status flips.
    `generation` is the metadata.generation of the spec the condition speaks of."""
    value = "True" if status else "False"
    updated: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != kind.value:
            updated.append(dict(condition))
            continue
        found = True
        moved = condition.get("status") != value
        since = iso(now) if moved else condition.get("lastTransitionTime", iso(now))
        updated.append(_condition(kind, value, reason, message, since, generation))
    if not found:
        updated.append(_condition(kind, value, reason, message, iso(now), generation))
    return updated


def _condition(
    kind: ConditionType, value: str, reason: Reason, message: str, since: str, generation: int | None
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind.value,
        "status": value,
        "reason": reason.value,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
