"""TransferJob + placement -> a KubeRay `ray.io/v1` RayJob manifest. A builder: no client, no
clock, no environment reads. The handler adds the owner reference and applies it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from transfer_operator.api.enums import PriceClass
from transfer_operator.api.models import GPUPoolSpec, TransferJob
from transfer_operator.engine.isolation import (
    DASHBOARD_PORT,
    GCS_PORT,
    LABEL_JOB,
    LABEL_MANAGED_BY,
    MANAGER,
    METRICS_PORT,
    TOKEN_KEY,
)
from transfer_operator.engine.names import MAX_NAME, label_value, ray_token_secret_name, rayjob_name

__all__ = [
    "LABEL_JOB",
    "MAX_NAME",
    "PoolPin",
    "label_value",
    "rayjob_name",
    "render_rayjob",
    "trainer_env",
]

RAY_VERSION = "2.60.0"
RAYJOB_API_VERSION = "ray.io/v1"
DEFAULT_TTL_SECONDS = 3600
TRAINER_ENTRYPOINT = "python -m transfer_trainers.launch"
LABEL_POOL = "transfer.dev/pool"
LABEL_ATTEMPT = "transfer.dev/attempt"
POD_IP_ENV = "TRANSFER_POD_IP"


@dataclass(frozen=True, slots=True)
class PoolPin:
    """What the engine needs of the chosen pool to pin pods to it."""

    name: str
    gpu_type: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    # An elastic pool that sells spot: its provisioner may buy either capacity type for it.
    buys_spot: bool = False

    @classmethod
    def of(cls, name: str, spec: GPUPoolSpec) -> PoolPin:
        return cls(
            name=name,
            gpu_type=spec.gpu_type,
            node_selector=dict(spec.node_selector) or {LABEL_POOL: name},
            tolerations=[t.to_wire() for t in spec.tolerations],
            buys_spot=spec.scaling is not None and spec.pricing.spot_per_gpu_hour is not None,
        )


CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"


def on_demand_affinity(pin: PoolPin, job: TransferJob) -> dict[str, Any] | None:
    """Keeps an on-demand placement off spot nodes of a pool whose provisioner buys both: the
    provisioner buys the cheapest type the pods allow, and the job was priced (and may have
    refused spot) as on-demand. NotIn also matches nodes without the label (the pool's fixed
    ones). A spot placement is left to the provisioner, which buys spot first by price."""
    placement = job.status.placement
    if not pin.buys_spot or placement is None or placement.price_class is not PriceClass.ON_DEMAND:
        return None
    term = {"matchExpressions": [{"key": CAPACITY_TYPE_LABEL, "operator": "NotIn", "values": ["spot"]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def labels_for(job: TransferJob, pool: str, attempt: int) -> dict[str, str]:
    return {
        LABEL_JOB: label_value(job.metadata.name),
        LABEL_POOL: label_value(pool),
        LABEL_ATTEMPT: str(attempt),
        LABEL_MANAGED_BY: MANAGER,
    }


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
    # The trainer runs as many workers as the job was admitted with (an elastic gang's size).
    sized = job.spec.resources.model_copy(update={"workers": job.held_workers})
    spec = job.spec.model_copy(update={"resources": sized})
    env = {
        "TRANSFER_JOB": json.dumps(spec.to_wire(), sort_keys=True, separators=(",", ":")),
        "TRANSFER_JOB_NAME": job.metadata.name,
        "TRANSFER_JOB_NAMESPACE": job.metadata.namespace or "default",
        "TRANSFER_ATTEMPT": str(attempt),
        "HF_HUB_OFFLINE": "1",
    }
    env["TRANSFER_STORAGE_PATH"] = checkpoint_storage(job)
    if job.status.last_checkpoint:
        env["TRANSFER_RESUME_FROM"] = job.status.last_checkpoint
    return env


SAFE_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
NO_LINE_BREAKS = 2**30  # libyaml takes an int width


def render_runtime_env_yaml(runtime_env: dict[str, Any]) -> str:
    """The runtime env as YAML (what the field's name says): the job spec inside TRANSFER_JOB is
    JSON once, in a YAML string, not JSON escaped inside JSON. libyaml's emitter when PyYAML has
    it: the same text, 25 times faster than the pure-Python emitter, which took most of the
    Python time of rendering a RayJob (about 0.6 ms an admission)."""
    return yaml.dump(runtime_env, Dumper=SAFE_DUMPER, sort_keys=True, width=NO_LINE_BREAKS, allow_unicode=True)


def ray_auth_env(secret_name: str) -> list[dict[str, Any]]:
    """Ray token authentication: the mode, and the token from the attempt's own Secret."""
    secret = {"name": secret_name, "key": TOKEN_KEY}
    return [
        {"name": "RAY_AUTH_MODE", "value": "token"},
        {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": secret}},
    ]


def _container(
    name: str,
    image: str,
    resources: dict[str, Any],
    job: TransferJob,
    *,
    storage_credentials: bool,
    token_secret: str | None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "resources": resources,
        "env": ray_auth_env(token_secret) if token_secret else [],
    }
    secret = job.spec.checkpoint.secret_ref
    if secret is not None and storage_credentials:
        # Credentials reach the pods that write checkpoints only, and as a reference, never as values.
        container["envFrom"] = [{"secretRef": {"name": secret.name}}]
    return container


def _pod_template(
    container: dict[str, Any],
    pin: PoolPin,
    labels: dict[str, str],
    restart_policy: str | None = None,
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container], "nodeSelector": dict(pin.node_selector)}
    if affinity:
        spec["affinity"] = affinity
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if pin.tolerations:
        spec["tolerations"] = [dict(t) for t in pin.tolerations]
    return {"metadata": {"labels": dict(labels)}, "spec": spec}


def render_rayjob(
    job: TransferJob,
    pin: PoolPin,
    attempt: int,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    token_auth: bool = True,
) -> dict[str, Any]:
    """The RayJob that runs `job` on the pool `pin`. Deterministic: the same input, the same bytes.

    `token_auth`: Ray token authentication from the attempt's Secret `<RayJob>-ray-token`
    (engine/isolation.py), which the handlers create owned by this RayJob, so it lives exactly
    as long as the RayJob: KubeRay's dashboard client, and so its RayJob finalizer, reads it
    (docs/security.md)."""
    name = rayjob_name(job.metadata.name, attempt)
    token_secret = ray_token_secret_name(name) if token_auth else None
    resources = job.spec.resources
    workers = job.held_workers
    image = job.spec.trainer.image
    labels = labels_for(job, pin.name, attempt)
    worker_limits: dict[str, Any] = {"cpu": resources.cpu_per_worker, "memory": resources.memory_per_worker}
    if resources.gpus_per_worker:
        worker_limits["nvidia.com/gpu"] = resources.gpus_per_worker
    worker_resources = {"limits": worker_limits, "requests": dict(worker_limits)}
    worker = _container(
        "ray-worker", image, worker_resources, job, storage_credentials=True, token_secret=token_secret
    )
    head_resources = {"cpu": "1", "memory": "2Gi"}
    head_limits = {"limits": head_resources, "requests": dict(head_resources)}
    # The head runs the driver, which reads and writes the run's state in checkpoint storage.
    head = _container("ray-head", image, head_limits, job, storage_credentials=True, token_secret=token_secret)
    head["env"].append({"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    # No Ray Client port (10001): jobs are submitted through the dashboard's job API only.
    head["ports"] = [
        {"containerPort": GCS_PORT, "name": "gcs-server"},
        {"containerPort": DASHBOARD_PORT, "name": "dashboard"},
        {"containerPort": METRICS_PORT, "name": "metrics"},
    ]
    # The submitter only calls the job API: no storage credentials.
    submitter_resources = {"limits": {"cpu": "500m", "memory": "512Mi"}}
    submitter = _container(
        "ray-job-submitter", image, submitter_resources, job, storage_credentials=False, token_secret=token_secret
    )
    runtime_env = {"env_vars": trainer_env(job, attempt)}
    affinity = on_demand_affinity(pin, job)
    return {
        "apiVersion": RAYJOB_API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": name,
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
            "submitterPodTemplate": _pod_template(submitter, pin, labels, restart_policy="Never", affinity=affinity),
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                # KubeRay >= 1.5: token auth from our Secret (KubeRay then generates none, puts the
                # token on every Ray container and the submitter, and its dashboard client sends it).
                **(
                    {"authOptions": {"mode": "token", "secretName": token_secret}}
                    if token_secret
                    else {}
                ),
                "headGroupSpec": {
                    # The dashboard (job API) listens on the pod's IP, which the head Service, the
                    # submitter and KubeRay use, not on 0.0.0.0; Kubernetes expands $(VAR) in the
                    # `ray start` args KubeRay builds. Health probes use the agent port (Ray >= 2.53).
                    "rayStartParams": {"dashboard-host": f"$({POD_IP_ENV})", "num-gpus": "0"},
                    "template": _pod_template(head, pin, labels, affinity=affinity),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": workers,
                        "minReplicas": workers,
                        "maxReplicas": workers,
                        "rayStartParams": {},
                        "template": _pod_template(worker, pin, labels, affinity=affinity),
                    }
                ],
            },
        },
    }
