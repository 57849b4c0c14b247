"""TransferJob + placement -> a KubeRay `ray.io/v1` RayJob manifest. A builder: no client, no
clock, no environment reads. The handler adds the owner reference and applies it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

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


_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def rayjob_name(job_name: str, attempt: int) -> str:
    """One name per (job, attempt), a DNS-1035 label (KubeRay names Services after it) short
    enough for KubeRay's derived names, and never the name of another job's RayJob.

    A job name that is such a label and short enough is kept (`reviews-a1`, at most MAX_NAME - 1
    long); any other becomes `<head>-<sha256 of the whole name>-a<attempt>`, exactly MAX_NAME
    long, so the two forms never meet, and two long names with the same head differ in at least
    12 hex digits of their hashes.
    """
    suffix = f"-a{attempt}"
    if _DNS_LABEL.match(job_name) and len(job_name) + len(suffix) < MAX_NAME:
        return job_name + suffix
    return (
        _hashed(re.sub(r"[^a-z0-9-]", "-", job_name.lower()), job_name, MAX_NAME - len(suffix), "j") + suffix
    )


def _hashed(head: str, whole: str, length: int, lead: str) -> str:
    """`head`, cut, then `-` and the hex SHA-256 of `whole`: exactly `length` characters."""
    digest = hashlib.sha256(whole.encode()).hexdigest()
    if not head[:1].isalpha():
        head = lead + head
    head = head[: length - 13]  # at least 12 hex digits of the hash
    return f"{head}-{digest[: length - len(head) - 1]}"


def labels_for(job: TransferJob, pool: str, attempt: int) -> dict[str, str]:
    return {
        LABEL_JOB: label_value(job.metadata.name),
        LABEL_POOL: label_value(pool),
        LABEL_ATTEMPT: str(attempt),
        LABEL_MANAGED_BY: MANAGER,
    }


def label_value(value: str) -> str:
    """`value` as a label value, one to one: kept when it is one of at most 62 characters, else a
    head and its SHA-256, exactly 63 (NetworkPolicies select a job's pods by this label)."""
    if len(value) < 63 and _LABEL_VALUE.match(value):
        return value
    return _hashed(re.sub(r"[^A-Za-z0-9_.-]", "-", value), value, 63, "v")


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


def render_runtime_env_yaml(runtime_env: dict[str, Any]) -> str:
    """The runtime env as YAML (what the field's name says): the job spec inside TRANSFER_JOB is
    JSON once, in a YAML string, not JSON escaped inside JSON."""
    return yaml.safe_dump(runtime_env, sort_keys=True, width=float("inf"), allow_unicode=True)


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
            "runtimeEnvYAML": render_runtime_env_yaml(runtime_env),
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
