"""The cycle's spec checks: a spec the checks refuse gets InvalidSpec, and spec.suspend suspends
or resumes a job. Read from the watch-fed index like the rest of the cycle.

Why here and not in a kopf create/update handler: kopf would watch every TransferJob a second
time, and write for each new job an annotation (its last-handled state) and two Events (its
handler logs), three writes of the five an admission used to cost the API server.
"""

from __future__ import annotations

from datetime import datetime

from transfer_operator.api.enums import Phase
from transfer_operator.engine import transitions
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.effects import perform, perform_on_body
from transfer_operator.handlers.fleet import Fleet
from transfer_operator.handlers.informer import job_key

_SETTLED = (Phase.SUSPENDED, Phase.SUCCEEDED, Phase.FAILED)


def review_specs(ctx: Ctx, fleet: Fleet, now: datetime) -> None:
    for body, problems in fleet.invalid:
        metadata, current = body["metadata"], body.get("status") or {}
        phase = Phase(current.get("phase") or Phase.PENDING.value)
        message = "invalid spec: " + "; ".join(problems)
        change = transitions.reject_spec(phase, current, message, now, metadata.get("generation"))
        key = job_key(body)
        if key in fleet.jobs:  # it holds GPUs and runs on the spec it started with
            fleet.jobs[key] = (body, perform(ctx, body, fleet.jobs[key][1], change))
        else:
            perform_on_body(ctx, body, change)
    refused = {job_key(b) for b, _ in fleet.invalid}
    for key, (body, job) in list(fleet.jobs.items()):
        if key in refused:
            continue
        phase = job.status.phase
        if job.spec.suspend and phase not in _SETTLED:
            change = transitions.suspend(job, body.get("status") or {}, now)
        elif not job.spec.suspend and phase is Phase.SUSPENDED:
            change = transitions.resume(job, body.get("status") or {}, now)
        else:
            continue
        fleet.jobs[key] = (body, perform(ctx, body, job, change))
