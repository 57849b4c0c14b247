from __future__ import annotations

import pytest

from transfer_operator.api.config import OperatorConfig, QueueConfig
from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.scheduler.from_api import seconds_of
from transfer_operator.scheduler.snapshot import is_queued, requeue_backoff_s, snapshot_of

POOL = parse_gpupool(
    {
        "kind": "GPUPool",
        "metadata": {"name": "eu"},
        "spec": {
            "region": "eu-west",
            "gpuType": "A100",
            "nodes": 2,
            "gpusPerNode": 8,
            "pricing": {"onDemandPerGpuHour": 3.0},
        },
    }
)


def a_job(name: str = "j", **status) -> object:
    return parse_transferjob(
        {
            "kind": "TransferJob",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "model": {"source": "package:x"},
                "dataset": {"uri": "d"},
                "strategy": {"type": "lora"},
                "resources": {"workers": 2, "gpusPerWorker": 4},
                "budget": {"maxDollars": 10},
                "maxAttempts": 3,
                "queue": "nlp",
            },
            "status": status,
        }
    )


@pytest.mark.parametrize(
    "status, now_s, want",
    [
        pytest.param({}, 0, True, id="new"),
        pytest.param({"phase": "Running"}, 0, False, id="running"),
        pytest.param(
            {"phase": "Preempted", "attempts": 1, "requeueAfter": "2026-01-01T00:01:00Z"},
            seconds_of("2026-01-01T00:00:30Z"),
            False,
            id="preempted-in-backoff",
        ),
        pytest.param(
            {"phase": "Preempted", "attempts": 1, "requeueAfter": "2026-01-01T00:01:00Z"},
            seconds_of("2026-01-01T00:01:00Z"),
            True,
            id="preempted-after-backoff",
        ),
        pytest.param({"phase": "Preempted", "attempts": 3}, 0, False, id="out-of-attempts"),
        pytest.param({"phase": "Failed"}, 0, False, id="failed"),
    ],
)
def test_is_queued(status, now_s, want):
    assert is_queued(a_job(**status), now_s) is want


def test_backoff_doubles_and_caps():
    assert [requeue_backoff_s(n) for n in (1, 2, 3, 10)] == [10, 20, 40, 600]


def test_snapshot_takes_usage_budget_and_quotas_from_the_objects():
    running = a_job(
        "run",
        phase="Running",
        costSoFar=4.0,
        admittedAt="2026-01-01T00:00:00Z",
        placement={
            "pool": "eu",
            "region": "eu-west",
            "gpuType": "A100",
            "priceClass": "onDemand",
            "usdPerGpuHour": 3.0,
            "usdPerHour": 24.0,
            "gpus": 8,
        },
    )
    spent = a_job("spent", costSoFar=4.0)
    config = OperatorConfig(queues=[QueueConfig(name="nlp", nominal_gpus=16)])
    snapshot, pending = snapshot_of([POOL], [running, spent], config)
    assert [a.job_key for a in snapshot.allocations] == ["ns/run"]
    assert snapshot.allocations[0].gpus == 8
    assert [p.key for p in pending] == ["ns/spent"]
    assert pending[0].budget_usd == pytest.approx(6.0)  # what is left of the budget
    assert snapshot.quotas[0].nominal_gpus == 16
