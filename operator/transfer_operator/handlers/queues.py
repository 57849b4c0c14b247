"""The cycle's queue rules: every job's queue and priority from the admin's TransferQueues and
TransferPriorityClasses (watch-fed), before the scheduler sees it. A queued job its namespace may
not run as it asks is refused with InvalidSpec (api/queues.py says the rule)."""

from __future__ import annotations

from datetime import datetime

from transfer_operator.api.enums import Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.api.queues import QueueRules, apply_queue_rules, namespace_labels_or_name
from transfer_operator.engine import transitions
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.effects import perform
from transfer_operator.handlers.fleet import Fleet


def queue_rules(ctx: Ctx) -> QueueRules:
    queues = sorted((q for q in ctx.index.transferqueues.values() if q), key=lambda q: q.metadata.name)
    classes = sorted((c for c in ctx.index.priorityclasses.values() if c), key=lambda c: c.metadata.name)
    return QueueRules(queues, classes)


def schedulable_jobs(ctx: Ctx, fleet: Fleet, rules: QueueRules, now: datetime) -> list[TransferJob]:
    """The fleet's jobs with their effective priorities; each refused one gets InvalidSpec (written
    only when the message changed) and is left out."""

    def labels_of(namespace: str) -> dict[str, str]:
        found = ctx.index.namespaces.get(("", namespace))
        return namespace_labels_or_name(namespace, (found or {}).get("metadata", {}).get("labels"))

    applied = apply_queue_rules((job for _, job in fleet.jobs.values()), rules, labels_of)
    for key, message in applied.refused.items():
        body, job = fleet.jobs[key]
        change = transitions.wait(job, body.get("status") or {}, Reason.INVALID_SPEC, message, now)
        fleet.jobs[key] = (body, perform(ctx, body, job, change))
    return applied.jobs
