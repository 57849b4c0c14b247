"""The trainer's result -> `status.outputs` and `status.metrics` of a TransferJob. Pure.

The trainer writes the model and manifest.json to `spec.output.uri` (transfer_trainers.runner.
publish_output); the handler reads that manifest once the RayJob succeeded and passes it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transfer_operator.api.models import FinalMetrics, OutputsStatus, TransferJob

MANIFEST_FILE = "manifest.json"  # the trainer's name for it (transfer_trainers.runner.MANIFEST_FILE)


def manifest_uri(job: TransferJob) -> str | None:
    """Where the trainer writes the manifest of `job`'s model; None without spec.output."""
    if job.spec.output is None:
        return None
    return f"{job.spec.output.uri.rstrip('/')}/{MANIFEST_FILE}"


def outputs_status(job: TransferJob, manifest: Mapping[str, Any] | None) -> dict[str, Any]:
    """Status fields (wire form) for a finished job: the model's URI and format, and the final
    metrics when the manifest was readable. {} without spec.output."""
    if job.spec.output is None:
        return {}
    fmt = (manifest or {}).get("format") or (job.spec.output.format.value if job.spec.output.format else None)
    status: dict[str, Any] = {"outputs": OutputsStatus(model=job.spec.output.uri, format=fmt).to_wire()}
    metrics = (manifest or {}).get("metrics") or {}
    if metrics:
        final = FinalMetrics(
            steps=metrics.get("step"),
            train_loss=metrics.get("train_loss"),
            val_loss=metrics.get("val_loss"),
            val_accuracy=metrics.get("val_accuracy"),
            zero_shot_accuracy=metrics.get("zero_shot_accuracy"),
            majority_accuracy=metrics.get("majority_accuracy"),
        )
        status["metrics"] = final.to_wire()
    return status
