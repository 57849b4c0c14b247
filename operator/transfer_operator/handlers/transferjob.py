"""kopf handlers: validate TransferJobs on create/update, and spec.suspend. Thin: parse, call the
core, write status through `patch`. RayJob status is mirrored by the scheduling cycle alone
(handlers/running.py), from the watch-fed index."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from transfer_operator.api.enums import GROUP, VERSION, ConditionType, Phase, Reason
from transfer_operator.api.validation import InvalidSpec, parse_transferjob
from transfer_operator.handlers.conditions import phase_patch, upsert_condition
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.writes import delete_rayjob

log = logging.getLogger(__name__)


def _document(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.status),
    }


@kopf.on.resume(GROUP, VERSION, "transferjobs", id="validate")
@kopf.on.create(GROUP, VERSION, "transferjobs", id="validate")
@kopf.on.update(GROUP, VERSION, "transferjobs", id="validate", field="spec")
def validate(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    """Semantic checks the CRD schema cannot express, and spec.suspend. A bad spec gets
    InvalidSpec, never a crash; a running job keeps running on the spec it started with."""
    now = datetime.now(UTC)
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    try:
        job = parse_transferjob(_document(body))
    except InvalidSpec as error:
        message = "invalid spec: " + "; ".join(error.problems)
        if phase.holds_capacity or phase.is_terminal:
            conditions = upsert_condition(
                list(status.get("conditions") or []),
                ConditionType.READY,
                False,
                Reason.INVALID_SPEC,
                message,
                now,
            )
            patch.status.update(conditions=conditions, message=message)
        else:
            patch.status.update(phase_patch(dict(status), Phase.PENDING, Reason.INVALID_SPEC, message, now))
        kopf.warn(body, reason=Reason.INVALID_SPEC.value, message=message)
        return
    if job.spec.suspend and phase not in (Phase.SUSPENDED, Phase.SUCCEEDED, Phase.FAILED):
        message = "spec.suspend is true"
        if phase.holds_capacity and job.status.ray_job_name:
            ctx: Ctx = memo.ctx
            delete_rayjob(ctx, job.metadata.namespace or "default", job.status.ray_job_name)
            message += "; RayJob deleted, checkpoints kept"
        patch.status.update(phase_patch(dict(status), Phase.SUSPENDED, Reason.SUSPENDED, message, now))
        patch.status["placement"] = None
        return
    if not job.spec.suspend and phase is Phase.SUSPENDED:
        patch.status.update(
            phase_patch(
                dict(status), Phase.PENDING, Reason.NO_FITTING_POOL, "resumed; waiting for a pool", now
            )
        )
    # A new job is left alone: no phase means Pending, and the scheduling cycle owns that status
    # (writing "Pending" here could land after the cycle's "Admitted" and undo it).
