from __future__ import annotations

from datetime import UTC, datetime, timedelta

from transfer_operator.api.enums import ConditionType, Phase, Reason
from transfer_operator.handlers.conditions import phase_patch, upsert_condition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_transition_time_moves_only_when_status_flips():
    first = upsert_condition([], ConditionType.READY, False, Reason.NO_FITTING_POOL, "waiting", T0)
    same = upsert_condition(
        first, ConditionType.READY, False, Reason.QUOTA_EXCEEDED, "quota", T0 + timedelta(1)
    )
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert same[0]["reason"] == "QuotaExceeded"
    flipped = upsert_condition(same, ConditionType.READY, True, Reason.ADMITTED, "ok", T0 + timedelta(2))
    assert flipped[0]["lastTransitionTime"] == "2026-01-03T00:00:00Z"


def test_phase_patch_sets_ready_and_finished():
    patch = phase_patch({}, Phase.FAILED, Reason.BUDGET_EXCEEDED, "over budget", T0)
    types = {c["type"]: c for c in patch["conditions"]}
    assert patch["phase"] == "Failed"
    assert types["Ready"]["status"] == "False" and types["Finished"]["reason"] == "BudgetExceeded"
