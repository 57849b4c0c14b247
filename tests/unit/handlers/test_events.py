"""Normal events are rate-limited (a big admission wave would double the API writes); warnings never."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from transfer_operator import metrics
from transfer_operator.handlers.kube import Kube, TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=0.0, burst=3)
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]


def test_normal_events_beyond_the_bucket_are_dropped_and_counted(monkeypatch):
    posted: list[tuple[str, str]] = []

    def create(self: Any, namespace: str, event: client.CoreV1Event) -> None:
        posted.append((event.type, event.reason))

    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_event", create)
    kube = Kube(client.ApiClient(), normal_events=TokenBucket(rate=0.0, burst=1))
    job = {"apiVersion": "transfer.dev/v1alpha1", "kind": "TransferJob", "metadata": {"name": "a", "uid": "u"}}
    dropped = metrics.EVENTS_DROPPED.labels(reason="Admitted")
    before = dropped._value.get()
    for _ in range(3):
        kube.post_event(job, "Normal", "Admitted", "placed")
    kube.post_event(job, "Warning", "NodeLost", "node gone")
    assert posted == [("Normal", "Admitted"), ("Warning", "NodeLost")]
    assert dropped._value.get() - before == 2


def test_writes_wait_for_the_bucket_instead_of_bursting(monkeypatch):
    import time as clock

    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    monkeypatch.setattr(clock, "sleep", sleep)
    bucket = TokenBucket(rate=100.0, burst=2)
    for _ in range(6):
        bucket.wait()
    assert abs(sum(slept) - 0.04) < 1e-6  # 2 at once, then 4 at 100/s
