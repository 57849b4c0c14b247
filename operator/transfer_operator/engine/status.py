"""RayJob status -> TransferJob phase, reason and message. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transfer_operator.api.enums import Phase, Reason

# KubeRay's `status.reason` values that mean the job lost its machines, not that it is wrong.
_LOST_CAPACITY_REASONS = {"DeadlineExceeded", "AppFailed-NodeLost", "SubmissionFailed"}


@dataclass(frozen=True, slots=True)
class Mirrored:
    phase: Phase
    reason: Reason
    message: str


def mirror_rayjob_status(rayjob_status: dict[str, Any] | None) -> Mirrored:
    """Read `jobDeploymentStatus` (KubeRay's lifecycle) and `jobStatus` (Ray's) together: the Ray
    job's own verdict wins once it has one, the deployment status says where it is until then."""
    status = rayjob_status or {}
    deployment = status.get("jobDeploymentStatus") or ""
    ray_status = status.get("jobStatus") or ""
    detail = status.get("message") or ""
    kuberay_reason = status.get("reason") or ""

    if ray_status == "SUCCEEDED":
        return Mirrored(Phase.SUCCEEDED, Reason.SUCCEEDED, detail or "the trainer finished")
    if ray_status in ("FAILED", "STOPPED") or deployment in ("Failed", "ValidationFailed"):
        text = (
            "; ".join(part for part in (kuberay_reason, detail) if part)
            or f"Ray job {ray_status or deployment}"
        )
        if kuberay_reason in _LOST_CAPACITY_REASONS:
            return Mirrored(Phase.PREEMPTED, Reason.RAYJOB_LOST, text)
        return Mirrored(Phase.FAILED, Reason.FAILED, text)
    if deployment in ("Suspended", "Suspending"):
        return Mirrored(Phase.SUSPENDED, Reason.SUSPENDED, "the RayJob is suspended")
    if deployment == "Running" and ray_status == "RUNNING":
        return Mirrored(Phase.RUNNING, Reason.RUNNING, detail or "the trainer is running")
    waiting_for = deployment or "KubeRay"
    return Mirrored(Phase.ADMITTED, Reason.RAYJOB_CREATED, f"waiting for the Ray cluster ({waiting_for})")
