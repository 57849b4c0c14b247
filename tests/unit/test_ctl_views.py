"""What `transferctl get|describe|cost` print, from TransferJob objects as the API returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from transfer_operator.ctl import views

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(
    name: str,
    phase: str,
    cost: float,
    *,
    namespace: str = "default",
    queue: str | None = None,
    pool: str | None = None,
    budget: float | None = None,
    created_s_ago: float = 600,
    admitted_s_ago: float | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if queue:
        spec["queue"] = queue
    if budget is not None:
        spec["budget"] = {"maxDollars": budget}
    status: dict[str, Any] = {"phase": phase, "costSoFar": cost, "attempts": 1 if pool else 0}
    if pool:
        status["placement"] = {
            "pool": pool,
            "region": "eu-west",
            "gpuType": "A100",
            "gpus": 2,
            "priceClass": "spot",
            "usdPerHour": 2.7,
            "usdPerGpuHour": 1.35,
        }
        status["rayJobName"] = f"{name}-a1"
    if admitted_s_ago is not None:
        status["admittedAt"] = stamp(admitted_s_ago)
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp(created_s_ago)},
        "spec": spec,
        "status": status,
    }


def test_a_row_says_phase_pool_cost_budget_and_times() -> None:
    running = job("lora", "Running", 0.5, pool="eu-west-a100", budget=20, admitted_s_ago=95)
    assert views.job_row(running, NOW) == [
        "lora", "Running", "eu-west-a100", "local", "$0.5000", "2% of $20.00", "-", "95s", "10m",
    ]  # fmt: skip
    wide = views.job_row(running, NOW, wide=True, namespace=True)
    assert wide[0] == "default" and wide[-7:] == ["eu-west", "2x A100", "spot", "2.70", "1", "lora-a1", ""]
    pending = views.job_row(job("big", "Pending", 0), NOW)
    assert pending[1:8] == ["Pending", "-", "-", "$0.00", "-", "-", "-"]


def test_progress_is_an_estimate_while_running_and_the_steps_once_done() -> None:
    running = job("lora", "Running", 0.5, pool="eu-west-a100", admitted_s_ago=900)
    assert views.progress(running, NOW) == "-"  # no estimate in the spec
    running["spec"]["resources"] = {"estimatedHours": 0.5}
    assert views.progress(running, NOW) == "~50%"
    running["status"]["admittedAt"] = stamp(7200)
    assert views.progress(running, NOW) == "~99%"  # over its estimate: not done until it says so
    done = job("lora", "Succeeded", 1.2, pool="eu-west-a100")
    assert views.progress(done, NOW) == "100%"
    done["status"]["metrics"] = {"steps": 152}
    assert views.progress(done, NOW) == "100% (152 steps)"
    assert views.progress(job("x", "Failed", 1.0, pool="p"), NOW) == "-"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (150, "2m30s"), (900, "15m"), (5400, "1h30m"), (90000, "1d")],
)
def test_durations_read_like_kubectl(seconds: float, text: str) -> None:
    assert views.duration(seconds) == text


def test_cost_groups_by_namespace_queue_or_pool_most_first() -> None:
    jobs = [
        job("a", "Succeeded", 3.0, namespace="nlp", queue="team-nlp", pool="p1"),
        job("b", "Running", 1.0, namespace="nlp", queue="team-nlp", pool="p2", admitted_s_ago=60),
        job("c", "Failed", 5.0, namespace="vision", queue="team-vision", pool="p1"),
        job("d", "Pending", 0.0, namespace="vision"),
    ]
    by_namespace = views.cost_by(jobs, "namespace")
    assert [(x.key, x.jobs, x.running, x.cost) for x in by_namespace] == [
        ("vision", 2, 0, 5.0),
        ("nlp", 2, 1, 4.0),
    ]
    assert [(x.key, x.cost) for x in views.cost_by(jobs, "pool")] == [
        ("p1", 8.0),
        ("p2", 1.0),
        ("(never placed)", 0),
    ]
    assert [x.key for x in views.cost_by(jobs, "queue")] == ["team-vision", "team-nlp", "default"]
    recent = views.cost_by(jobs, "namespace", after=NOW - timedelta(minutes=5))
    assert [(x.key, x.cost) for x in recent] == [("nlp", 1.0)]  # only b was admitted since


def test_since_takes_durations_or_times_and_refuses_the_rest() -> None:
    assert views.parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert views.parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert views.parse_since("2026-01-01T10:00:00Z", NOW) == NOW - timedelta(hours=2)
    with pytest.raises(ValueError, match="90m, 2h or 7d"):
        views.parse_since("yesterday", NOW)


def test_bars_scale_to_the_largest() -> None:
    assert views.bar(10, 10, width=10) == "█" * 10
    assert views.bar(5.5, 10, width=10) == "█████▌"
    assert views.bar(0, 0) == ""
