from __future__ import annotations

import pytest

from transfer_operator.api.enums import Phase, Reason
from transfer_operator.engine.status import mirror_rayjob_status


@pytest.mark.parametrize(
    "status, phase, reason",
    [
        pytest.param(None, Phase.ADMITTED, Reason.RAYJOB_CREATED, id="no-status-yet"),
        pytest.param(
            {"jobDeploymentStatus": "Initializing"}, Phase.ADMITTED, Reason.RAYJOB_CREATED, id="initializing"
        ),
        pytest.param(
            {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
            Phase.ADMITTED,
            Reason.RAYJOB_CREATED,
            id="submitted-not-started",
        ),
        pytest.param(
            {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
            Phase.RUNNING,
            Reason.RUNNING,
            id="running",
        ),
        pytest.param(
            {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
            Phase.SUCCEEDED,
            Reason.SUCCEEDED,
            id="succeeded",
        ),
        pytest.param(
            {"jobDeploymentStatus": "Complete", "jobStatus": "FAILED", "message": "boom"},
            Phase.FAILED,
            Reason.FAILED,
            id="trainer-failed",
        ),
        pytest.param(
            {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"},
            Phase.PREEMPTED,
            Reason.RAYJOB_LOST,
            id="lost-capacity",
        ),
        pytest.param(
            {"jobDeploymentStatus": "ValidationFailed", "message": "bad spec"},
            Phase.FAILED,
            Reason.FAILED,
            id="validation-failed",
        ),
        pytest.param({"jobDeploymentStatus": "Suspended"}, Phase.SUSPENDED, Reason.SUSPENDED, id="suspended"),
    ],
)
def test_mirrors_rayjob_status(status, phase, reason):
    mirrored = mirror_rayjob_status(status)
    assert (mirrored.phase, mirrored.reason) == (phase, reason)
    assert mirrored.message


def test_failure_message_carries_kuberay_detail():
    mirrored = mirror_rayjob_status(
        {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "FAILED",
            "reason": "AppFailed",
            "message": "OOM in worker 1",
        }
    )
    assert "AppFailed" in mirrored.message and "OOM in worker 1" in mirrored.message
