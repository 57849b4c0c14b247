"""TransferJob + placement -> a KubeRay `ray.io/v1` RayJob manifest. A builder: no client, no
clock, no environment reads. The handler adds the owner reference and applies it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from transfer_operator.api.models import GPUPoolSpec, TransferJob

RAY_VERSION = "2.60.0"
RAYJOB_API_VERSION = "ray.io/v1"
DEFAULT_TTL_SECONDS = 3600
TRAINER_ENTRYPOINT = "python -m transfer_trainers.launch"
LABEL_JOB = "transfer.dev/job"
LABEL_POOL = "transfer.dev/pool"
LABEL_ATTEMPT = "transfer.dev/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "transfer-operator"
MAX_NAME = 47  # KubeRay appends suffixes to the RayCluster and pod names


@dataclass(frozen=True, slots=True)
class PoolPin:
    """What the engine needs of the chosen pool to pin pods to it."""

    name: str
    gpu_type: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]

    @classmethod
    def of(cls, name: str, spec: GPUPoolSpec) -> PoolPin:
        return cls(
            name=name,
            gpu_type=spec.gpu_type,
            node_selector=dict(spec.node_selector) or {LABEL_POOL: name},
            tolerations=[t.to_wire() for t in spec.tolerations],
        )


def rayjob_name(job_name: str, attempt: int) -> str:
    """Deterministic and short enough for KubeRay's derived names; one per attempt."""
    suffix = f"-a{attempt}"
    if len(job_name) + len(suffix) <= MAX_NAME:
        return job_name + suffix
    digest = hashlib.sha1(job_name.encode()).hexdigest()[:6]
    head = job_name[: MAX_NAME - len(suffix) - 7].rstrip("-")
    return f"{head}-{digest}{suffix}"


def labels_for(job: TransferJob, pool: str, attempt: int) -> dict[str, str]:
    return {
        LABEL_JOB: label_value(job.metadata.name),
        LABEL_POOL: label_value(pool),
        LABEL_ATTEMPT: str(attempt),
        LABEL_MANAGED_BY: MANAGER,
    }


def label_value(value: str) -> str:
    return value if len(value) <= 63 else value[:56] + "-" + hashlib.sha1(value.encode()).hexdigest()[:6]


DEFAULT_STORAGE_ROOT = "/tmp/transfer-checkpoints"


def checkpoint_storage(job: TransferJob) -> str:
    """Where the trainer writes checkpoints and, on a later attempt, resumes from the latest.
    Without spec.checkpoint.uri it is a path on the Ray head: fine for one node, not for failover."""
    return (
        job.spec.checkpoint.uri
        or f"{DEFAULT_STORAGE_ROOT}/{job.metadata.namespace or 'default'}/{job.metadata.name}"
    )


def trainer_env(job: TransferJob, attempt: int) -> dict[str, str]:
    """The contract with the trainer image (see docs/trainers.md): everything it needs, as env."""
    env = {
        "TRANSFER_JOB": json.dumps(job.spec.to_wire(), sort_keys=True, separators=(",", ":")),
        "TRANSFER_JOB_NAME": job.metadata.name,
        "TRANSFER_JOB_NAMESPACE": job.metadata.namespace or "default",
        "TRANSFER_ATTEMPT": str(attempt),
        "HF_HUB_OFFLINE": "1",
        "RAY_AUTH_MODE": "disabled",
    }
    env["TRANSFER_STORAGE_PATH"] = checkpoint_storage(job)
    if job.status.last_checkpoint:
        env["TRANSFER_RESUME_FROM"] = job.status.last_checkpoint
    return env


def _container(name: str, image: str, resources: dict[str, Any], job: TransferJob) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "resources": resources}
    secret = job.spec.checkpoint.secret_ref
    if secret is not None:
        # Credentials reach the pods only as a reference, never as values.
        container["envFrom"] = [{"secretRef": {"name": secret.name}}]
    return container


def _pod_template(
    container: dict[str, Any], pin: PoolPin, labels: dict[str, str], restart_policy: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container], "nodeSelector": dict(pin.node_selector)}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if pin.tolerations:
        spec["tolerations"] = [dict(t) for t in pin.tolerations]
    return {"metadata": {"labels": dict(labels)}, "spec": spec}


def render_rayjob(
    job: TransferJob, pin: PoolPin, attempt: int, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> dict[str, Any]:
    """The RayJob that runs `job` on the pool `pin`. Deterministic: the same input, the same bytes."""
    resources = job.spec.resources
    image = job.spec.trainer.image
    labels = labels_for(job, pin.name, attempt)
    worker_limits: dict[str, Any] = {"cpu": resources.cpu_per_worker, "memory": resources.memory_per_worker}
    if resources.gpus_per_worker:
        worker_limits["nvidia.com/gpu"] = resources.gpus_per_worker
    worker = _container("ray-worker", image, {"limits": worker_limits, "requests": dict(worker_limits)}, job)
    head_resources = {"cpu": "1", "memory": "2Gi"}
    head = _container("ray-head", image, {"limits": head_resources, "requests": dict(head_resources)}, job)
    head["ports"] = [
        {"containerPort": 6379, "name": "gcs-server"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
        {"containerPort": 8080, "name": "metrics"},
    ]
    submitter = _container("ray-job-submitter", image, {"limits": {"cpu": "500m", "memory": "512Mi"}}, job)
    runtime_env = {"env_vars": trainer_env(job, attempt)}
    return {
        "apiVersion": RAYJOB_API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": rayjob_name(job.metadata.name, attempt),
            "namespace": job.metadata.namespace or "default",
            "labels": labels,
            "annotations": {"transfer.dev/gpu-type": pin.gpu_type},
        },
        "spec": {
            "entrypoint": job.spec.trainer.entrypoint or TRAINER_ENTRYPOINT,
            "runtimeEnvYAML": json.dumps(runtime_env, sort_keys=True),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": ttl_seconds,
            "suspend": job.spec.suspend,
            "submitterPodTemplate": _pod_template(submitter, pin, labels, restart_policy="Never"),
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-gpus": "0"},
                    "template": _pod_template(head, pin, labels),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": resources.workers,
                        "minReplicas": resources.workers,
                        "maxReplicas": resources.workers,
                        "rayStartParams": {},
                        "template": _pod_template(worker, pin, labels),
                    }
                ],
            },
        },
    }
