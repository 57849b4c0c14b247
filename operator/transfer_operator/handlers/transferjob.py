"""kopf handlers: validate TransferJobs on create/update, and spec.suspend. Thin: parse, call the
core, write status through `patch`. RayJob status is mirrored by the scheduling cycle alone
(handlers/running.py), from the watch-fed index."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from transfer_operator import metrics
from transfer_operator.api.enums import GROUP, VERSION, Phase
from transfer_operator.api.validation import InvalidSpec, parse_transferjob
from transfer_operator.engine import transitions
from transfer_operator.engine.transitions import DeleteRayJob, Event, Transition
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


def perform_in_handler(ctx: Ctx | None, body: kopf.Body, change: Transition, patch: kopf.Patch) -> None:
    """A transition inside a kopf handler: the status goes through kopf's `patch` (applied when
    the handler returns), deletions now, events through kopf."""
    namespace = body.metadata.namespace or "default"
    cluster = (body.status.get("placement") or {}).get("cluster")  # where the attempt runs
    for effect in change.effects:
        if isinstance(effect, DeleteRayJob) and ctx is not None:
            delete_rayjob(ctx, namespace, effect.name, cluster)
    patch.status.update(change.status)
    for effect in change.effects:
        if isinstance(effect, Event):
            emit = kopf.warn if effect.type == "Warning" else kopf.info
            emit(body, reason=effect.reason.value, message=effect.message)
    if change.billed_usd > 0:
        metrics.JOB_COST.labels(namespace=namespace).inc(change.billed_usd)


@kopf.on.resume(GROUP, VERSION, "transferjobs", id="validate")
@kopf.on.create(GROUP, VERSION, "transferjobs", id="validate")
@kopf.on.update(GROUP, VERSION, "transferjobs", id="validate", field="spec")
def validate(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    """Semantic checks the CRD schema cannot express, and spec.suspend. A bad spec gets
    InvalidSpec, never a crash; a running job keeps running on the spec it started with."""
    now = datetime.now(UTC)
    ctx: Ctx | None = getattr(memo, "ctx", None)
    current = dict(status)
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    try:
        job = parse_transferjob(_document(body))
    except InvalidSpec as error:
        message = "invalid spec: " + "; ".join(error.problems)
        generation = body.metadata.get("generation")
        perform_in_handler(
            ctx, body, transitions.reject_spec(phase, current, message, now, generation), patch
        )
        return
    if job.spec.suspend and phase not in (Phase.SUSPENDED, Phase.SUCCEEDED, Phase.FAILED):
        perform_in_handler(ctx, body, transitions.suspend(job, current, now), patch)
    elif not job.spec.suspend and phase is Phase.SUSPENDED:
        perform_in_handler(ctx, body, transitions.resume(job, current, now), patch)
    # A new job is left alone: no phase means Pending, and the scheduling cycle owns that status
    # (writing "Pending" here could land after the cycle's "Admitted" and undo it).
