"""Queues and priorities as admin-owned, cluster-scoped objects, and which ones a job may use.

    TransferQueue          nominal GPUs per GPU type, cohort, borrowing limit (per type), the namespaces
                           that may use it (a label selector), the highest priority it allows,
                           and a default priority class
    TransferPriorityClass  a named priority value

Tenants may create TransferJobs but neither of these (RBAC). `resolve_queue` is the one rule:
job + queues + classes + the job namespace's labels -> the effective queue and priority, or
InvalidSpec naming the queues the namespace may use. Ours, not Kubernetes' PriorityClass: that
one also orders and preempts pods in kube-scheduler, cluster-wide, and its values go to 1e9 with
the system classes above; a job's priority here only orders jobs within the operator (Kueue's
WorkloadPriorityClass is separate for the same reason). See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from transfer_operator.api.enums import Phase
from transfer_operator.api.models import (
    GPU_TYPE_PATTERN,
    NAME_PATTERN,
    ApiModel,
    ObjectMeta,
    StatusModel,
    TransferJob,
)
from transfer_operator.api.validation import InvalidSpec, check_kind, validate_wire, with_defaults

ANY_GPU_TYPE = "*"
# The API server sets it on every namespace (Kubernetes >= 1.22): a selector may name namespaces.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MAX_PRIORITY = 1_000_000


class LabelSelectorRequirement(ApiModel):
    key: Annotated[str, Field(min_length=1, max_length=316)]
    operator: Annotated[str, Field(pattern=r"^(In|NotIn|Exists|DoesNotExist)$")]
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] = Field(
        default_factory=list
    )


class LabelSelector(ApiModel):
    """Kubernetes' label selector; an empty one selects every namespace."""

    match_labels: Annotated[
        dict[Annotated[str, Field(max_length=316)], Annotated[str, Field(max_length=63)]],
        Field(max_length=32),
    ] = Field(default_factory=dict)
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] = Field(
        default_factory=list
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        for requirement in self.match_expressions:
            present = requirement.key in labels
            value = labels.get(requirement.key)
            if requirement.operator == "In" and value not in requirement.values:
                return False
            if requirement.operator == "NotIn" and present and value in requirement.values:
                return False
            if requirement.operator == "Exists" and not present:
                return False
            if requirement.operator == "DoesNotExist" and present:
                return False
        return True


class TransferQueueSpec(ApiModel):
    nominal_gpus: Annotated[
        dict[
            Annotated[str, Field(pattern=rf"^(\*|{GPU_TYPE_PATTERN[1:-1]})$")],
            Annotated[int, Field(ge=0, le=10**6)],
        ],
        Field(
            max_length=32,
            description=(
                "GPUs the queue may use without borrowing, per GPU type (case-insensitive); `*`: any "
                "type not named. A job counts against its pool's type, else `*`; a type with neither "
                "has 0 (the queue may only borrow it)."
            ),
        ),
    ] = Field(default_factory=dict)
    cohort: Annotated[str | None, Field(default=None, pattern=NAME_PATTERN, max_length=63)] = None
    borrowing_limit_gpus: Annotated[
        int | None,
        Field(
            default=None,
            ge=0,
            le=10**6,
            description=(
                "The most GPUs of each type the queue may borrow from its cohort's unused quota of "
                "that type; unset: all the cohort has unused."
            ),
        ),
    ] = None
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector, description="Namespaces whose TransferJobs may use this queue."
    )
    max_priority: Annotated[
        int,
        Field(
            ge=-MAX_PRIORITY,
            le=MAX_PRIORITY,
            description="The highest priority a job of this queue may have.",
        ),
    ] = 0
    default_priority_class: Annotated[
        str | None, Field(default=None, pattern=NAME_PATTERN, max_length=63)
    ] = None


class TransferQueue(StatusModel):
    api_version: str = "transfer.dev/v1alpha1"
    kind: str = "TransferQueue"
    metadata: ObjectMeta
    spec: TransferQueueSpec


class TransferPriorityClassSpec(ApiModel):
    value: Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
    description: Annotated[str, Field(max_length=1024)] = ""


class TransferPriorityClass(StatusModel):
    api_version: str = "transfer.dev/v1alpha1"
    kind: str = "TransferPriorityClass"
    metadata: ObjectMeta
    spec: TransferPriorityClassSpec


@dataclass(frozen=True, slots=True)
class Resolved:
    queue: str
    priority: int


def resolve_queue(
    queue: str,
    priority: int,
    priority_class: str | None,
    *,
    namespace_labels: Mapping[str, str],
    queues: Sequence[TransferQueue],
    classes: Sequence[TransferPriorityClass],
) -> Resolved:
    """The queue and priority a job gets (its spec's `queue`, `priority`, `priorityClassName`),
    or InvalidSpec saying which queues its namespace may use and what priority it may have.

    Priority: the named class's value, else the queue's default class's, else `priority`; neither
    it nor `priority` may exceed the queue's maxPriority. With no TransferQueue at all, the job's values stand (the
    operator config's quotas, as before queues were objects)."""
    if not queues:
        return Resolved(queue, priority)
    allowed = sorted(q.metadata.name for q in queues if q.spec.namespace_selector.matches(namespace_labels))
    allowed_text = ", ".join(allowed) if allowed else "none (ask the cluster admin for a TransferQueue)"
    by_name = {q.metadata.name: q for q in queues}
    chosen = by_name.get(queue)
    if chosen is None:
        raise InvalidSpec([f"spec.queue: no TransferQueue {queue}; this namespace may use: {allowed_text}"])
    if queue not in allowed:
        raise InvalidSpec(
            [f"spec.queue: this namespace may not use TransferQueue {queue}; it may use: {allowed_text}"]
        )
    ceiling = chosen.spec.max_priority
    if priority > ceiling:  # even where a class replaces it: a raw value above the ceiling is an error
        raise InvalidSpec(
            [
                f"spec.priority: {priority} is above {ceiling}, the highest TransferQueue {queue} allows; "
                "lower it or use a priority class of at most that value"
            ]
        )
    class_values = {c.metadata.name: c.spec.value for c in classes}
    class_name = priority_class or chosen.spec.default_priority_class
    if class_name is not None:
        if class_name not in class_values:
            known = ", ".join(sorted(class_values)) or "none"
            raise InvalidSpec(
                [f"spec.priorityClassName: no TransferPriorityClass {class_name}; there are: {known}"]
            )
        priority = class_values[class_name]
        if priority > ceiling:
            raise InvalidSpec(
                [
                    f"spec.priorityClassName: {class_name} has priority {priority}, above {ceiling}, the "
                    f"highest TransferQueue {queue} allows; use a class of at most that value"
                ]
            )
    return Resolved(queue, priority)


def parse_transferqueue(document: dict[str, Any]) -> TransferQueue:
    document = with_defaults(document)
    check_kind(document, "TransferQueue")
    return validate_wire(TransferQueue, document)


def parse_transferpriorityclass(document: dict[str, Any]) -> TransferPriorityClass:
    document = with_defaults(document)
    check_kind(document, "TransferPriorityClass")
    return validate_wire(TransferPriorityClass, document)


@dataclass
class QueueRules:
    """The admin's TransferQueues and TransferPriorityClasses, applied to jobs."""

    queues: Sequence[TransferQueue] = ()
    classes: Sequence[TransferPriorityClass] = ()

    def resolve(self, job: TransferJob, namespace_labels: Mapping[str, str]) -> Resolved:
        spec = job.spec
        return resolve_queue(
            spec.queue,
            spec.priority,
            spec.priority_class_name,
            namespace_labels=namespace_labels,
            queues=self.queues,
            classes=self.classes,
        )


@dataclass
class Applied:
    """Jobs as the scheduler must see them (the resolved priority in `spec.priority`), and the
    refused ones (key -> the InvalidSpec message)."""

    jobs: list[TransferJob] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def namespace_labels_or_name(namespace: str, labels: Mapping[str, str] | None) -> dict[str, str]:
    """A namespace's labels; at least the name label, which the API server always sets."""
    return {**(labels or {}), NAMESPACE_NAME_LABEL: namespace}


def apply_queue_rules(
    jobs: Iterable[TransferJob],
    rules: QueueRules,
    labels_of: Callable[[str], Mapping[str, str]],
) -> Applied:
    """Each job with its effective priority, or refused with the reason. Only a queued job
    (Pending or Preempted) is refused; any other keeps running on the rules it was admitted
    under, with its own priority capped at its queue's maxPriority when that queue still exists."""
    applied = Applied()
    max_priority = {q.metadata.name: q.spec.max_priority for q in rules.queues}
    for job in jobs:
        namespace = job.metadata.namespace or "default"
        try:
            resolved = rules.resolve(job, labels_of(namespace))
        except InvalidSpec as error:
            if job.status.phase in (Phase.PENDING, Phase.PREEMPTED):
                applied.refused[job.key] = "invalid spec: " + "; ".join(error.problems)
                continue
            ceiling = max_priority.get(job.spec.queue, job.spec.priority)
            resolved = Resolved(job.spec.queue, min(job.spec.priority, ceiling))
        if resolved.priority != job.spec.priority:
            spec = job.spec.model_copy(update={"priority": resolved.priority})
            job = job.model_copy(update={"spec": spec})
        applied.jobs.append(job)
    return applied
