"""kopf handlers: validate TransferJobs on create/update, and mirror RayJob status as soon as it
changes. Thin: parse, call the core, write status through `patch`. Jobs that hold GPUs are also
reconciled by the scheduling cycle (handlers/running.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from transfer_operator.api.enums import GROUP, VERSION, ConditionType, Phase, Reason
from transfer_operator.api.validation import InvalidSpec, parse_transferjob
from transfer_operator.engine.rayjob import LABEL_MANAGED_BY, MANAGER
from transfer_operator.handlers.conditions import phase_patch, upsert_condition
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.running import mirror_patch

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
            ctx.kube.delete_rayjob(job.metadata.namespace or "default", job.status.ray_job_name)
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


@kopf.on.event("ray.io", "v1", "rayjobs", labels={LABEL_MANAGED_BY: MANAGER})
def mirror_rayjob(body: kopf.Body, type: str | None, memo: Any, **_: Any) -> None:
    """Mirror a RayJob's status as soon as it changes (the cycle's reconcile pass is the fallback)."""
    ctx: Ctx | None = getattr(memo, "ctx", None)
    if ctx is not None:
        ctx.rayjobs.observe(type, body)
    owners = [o for o in body.metadata.get("ownerReferences", []) if o.get("kind") == "TransferJob"]
    if ctx is None or not owners or not body.get("status"):
        return
    namespace = body.metadata.namespace or "default"
    owner = ctx.kube.get_transferjob(namespace, owners[0]["name"])
    if owner is None:
        return
    try:
        job = parse_transferjob(owner)
    except InvalidSpec:
        return
    if job.status.ray_job_name != body.metadata.name or not job.status.phase.holds_capacity:
        return
    status = mirror_patch(ctx, owner, job, dict(body), datetime.now(UTC))
    if status:
        ctx.kube.patch_transferjob_status(namespace, job.metadata.name, status)
