"""Which queue and priority a job gets from admin-owned TransferQueues and TransferPriorityClasses."""

from __future__ import annotations

import pytest

from transfer_operator.api.queues import (
    Resolved,
    TransferPriorityClass,
    TransferQueue,
    resolve_queue,
)
from transfer_operator.api.validation import InvalidSpec, validate_wire


def a_queue(name: str, **spec) -> TransferQueue:
    return validate_wire(TransferQueue, {"metadata": {"name": name}, "spec": spec})


def a_class(name: str, value: int) -> TransferPriorityClass:
    return validate_wire(TransferPriorityClass, {"metadata": {"name": name}, "spec": {"value": value}})


QUEUES = [
    a_queue("team-a", nominalGpus={"A100": 8}, cohort="research", maxPriority=100,
            namespaceSelector={"matchLabels": {"team": "a"}}, defaultPriorityClass="normal"),
    a_queue("team-b", nominalGpus={"*": 16}, maxPriority=1000,
            namespaceSelector={"matchExpressions": [{"key": "team", "operator": "In", "values": ["b"]}]}),
]  # fmt: skip
CLASSES = [a_class("normal", 10), a_class("urgent", 500)]
TEAM_A = {"team": "a", "kubernetes.io/metadata.name": "team-a"}


def resolve(queue: str, priority: int = 0, priority_class: str | None = None, labels=TEAM_A) -> Resolved:
    return resolve_queue(
        queue, priority, priority_class, namespace_labels=labels, queues=QUEUES, classes=CLASSES
    )


def test_a_namespace_gets_its_queue_and_the_default_class():
    assert resolve("team-a") == Resolved("team-a", 10)
    assert resolve("team-b", 900, labels={"team": "b"}) == Resolved("team-b", 900)


@pytest.mark.parametrize(
    "queue, priority, priority_class, fragment",
    [
        pytest.param("team-b", 0, None, "may not use TransferQueue team-b; it may use: team-a", id="other-teams-queue"),
        pytest.param("nowhere", 0, None, "no TransferQueue nowhere; this namespace may use: team-a", id="no-such-queue"),
        pytest.param("team-a", 0, "urgent", "urgent has priority 500, above 100", id="class-above-ceiling"),
        pytest.param("team-a", 1_000_000, "normal", "1000000 is above 100", id="raw-above-ceiling-with-a-class"),
        pytest.param("team-a", 0, "vip", "no TransferPriorityClass vip; there are: normal, urgent", id="no-such-class"),
    ],
)  # fmt: skip
def test_what_a_namespace_may_not_do_is_refused_naming_what_it_may(queue, priority, priority_class, fragment):
    with pytest.raises(InvalidSpec) as raised:
        resolve(queue, priority, priority_class)
    assert fragment in raised.value.problems[0]


def test_a_raw_priority_above_the_ceiling_is_refused_without_a_default_class():
    queues = [a_queue("q", maxPriority=5)]
    with pytest.raises(InvalidSpec, match="1000000 is above 5"):
        resolve_queue("q", 1_000_000, None, namespace_labels={}, queues=queues, classes=[])


def test_a_namespace_with_no_queue_is_told_to_ask_the_admin():
    with pytest.raises(InvalidSpec, match="none \\(ask the cluster admin"):
        resolve("team-a", labels={"team": "c"})


def test_without_queue_objects_the_job_values_stand():
    assert resolve_queue("x", 7, None, namespace_labels={}, queues=[], classes=[]) == Resolved("x", 7)


def test_selectors_follow_kubernetes_semantics():
    selector = a_queue(
        "q",
        namespaceSelector={"matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["prod"]},
            {"key": "team", "operator": "Exists"},
            {"key": "frozen", "operator": "DoesNotExist"},
        ]},
    ).spec.namespace_selector  # fmt: skip
    assert selector.matches({"team": "x"}) and selector.matches({"team": "x", "tier": "dev"})
    assert not selector.matches({"team": "x", "tier": "prod"})
    assert not selector.matches({"tier": "dev"}) and not selector.matches({"team": "x", "frozen": "1"})
