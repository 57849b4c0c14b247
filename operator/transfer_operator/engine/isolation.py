"""What keeps one job's Ray cluster to itself: the per-attempt Ray token Secret and a NetworkPolicy.

Builders only (no client, no randomness): the handler makes the token and adds the owner
references. Each attempt's token Secret is its RayJob's (created right after it), so the Secret
outlives the RayJob's finalizer, which reads it, and goes with the RayJob. The NetworkPolicy is
the namespace's (`render_namespace_network_policy`: created once, before the namespace's first
RayJob, kept with the namespace) or, in the `job` scope, the TransferJob's (created before its
first RayJob, kept across attempts).

- Ray token authentication: the RayJob names the Secret in `authOptions` (KubeRay >= 1.5 then
  sets RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from it on every Ray container and the submitter,
  and its own dashboard client reads it); `render_rayjob` also sets both on our containers, so
  the settings hold whatever KubeRay adds. Without the token, the GCS, the dashboard and the job
  API answer nothing.
- NetworkPolicy: the head's ports (and every other port of the job's pods) take connections
  only from the pods of the job's namespace (or, in the `job` scope, the job's own pods), the
  operators, and optionally Prometheus on the metrics port.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transfer_operator.api.models import TransferJob
from transfer_operator.engine.names import label_value, network_policy_name, ray_token_secret_name

LABEL_JOB = "transfer.dev/job"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "transfer-operator"
TOKEN_KEY = "auth_token"  # the key KubeRay and Ray read
DASHBOARD_PORT = 8265
GCS_PORT = 6379
METRICS_PORT = 8080
NAMESPACE_POLICY = "transfer-operator-jobs"  # the namespace-scope policy's name
LABEL_SCOPE = "transfer.dev/isolation"  # on the namespace-scope policy only (the index watches it)
ANNOTATION_SPEC = "transfer.dev/spec-sha256"  # what the operator last wrote (the server adds defaults)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,256}$")


@dataclass(frozen=True, slots=True)
class Peer:
    """Pods outside the job that may reach its pods: those matching `pod_labels` in `namespace`,
    on `ports` (every port when empty)."""

    namespace: str
    pod_labels: dict[str, str]
    ports: tuple[int, ...] = field(default=())


def default_peers(
    operator_namespace: str, kuberay_namespace: str, prometheus_namespace: str | None = None
) -> list[Peer]:
    """The transfer operator and the KubeRay operator (which polls the job through the dashboard),
    on the dashboard port; Prometheus, when given, on the metrics port."""
    peers = [
        Peer(operator_namespace, {"app.kubernetes.io/name": "transfer-operator"}, (DASHBOARD_PORT,)),
        Peer(kuberay_namespace, {"app.kubernetes.io/name": "kuberay-operator"}, (DASHBOARD_PORT,)),
    ]
    if prometheus_namespace is not None:
        peers.append(Peer(prometheus_namespace, {}, (METRICS_PORT,)))
    return peers


def _selector(job: TransferJob) -> dict[str, str]:
    """The labels every pod of the job carries (see rayjob.labels_for)."""
    return {LABEL_JOB: label_value(job.metadata.name), LABEL_MANAGED_BY: MANAGER}


def render_ray_token_secret(job: TransferJob, rayjob: str, token: str) -> dict[str, Any]:
    """The Secret holding the Ray token of the job's RayJob `rayjob` (one attempt). `token`:
    32-256 URL-safe characters, e.g. `secrets.token_urlsafe(32)`."""
    if not _TOKEN.match(token):
        raise ValueError("a Ray token is 32-256 URL-safe characters")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ray_token_secret_name(rayjob),
            "namespace": job.metadata.namespace or "default",
            "labels": _selector(job),
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {TOKEN_KEY: token},
    }


def _spec(own: dict[str, str], peers: Sequence[Peer]) -> dict[str, Any]:
    """Ingress to the pods `own` selects in the policy's namespace from those same pods on any
    port, and from each of `peers` on its ports."""
    rules: list[dict[str, Any]] = [{"from": [{"podSelector": {"matchLabels": own}}]}]
    for peer in peers:
        source = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": peer.namespace}},
            "podSelector": {"matchLabels": dict(peer.pod_labels)},
        }
        rule: dict[str, Any] = {"from": [source]}
        if peer.ports:
            rule["ports"] = [{"protocol": "TCP", "port": port} for port in peer.ports]
        rules.append(rule)
    return {"podSelector": {"matchLabels": own}, "policyTypes": ["Ingress"], "ingress": rules}


def render_network_policy(job: TransferJob, peers: Sequence[Peer]) -> dict[str, Any]:
    """The `job` scope: ingress to the job's pods (head, workers, submitter) from the job's own pods
    on any port, and from each of `peers` on its ports; nothing else. Egress is left open (storage,
    the API server): the other jobs' policies refuse this job's pods."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(job.metadata.name),
            "namespace": job.metadata.namespace or "default",
            "labels": _selector(job),
        },
        "spec": _spec(_selector(job), peers),
    }


def render_namespace_network_policy(namespace: str, peers: Sequence[Peer]) -> dict[str, Any]:
    """The `namespace` scope: ingress to every job pod of `namespace` from the job pods of the same
    namespace (one tenant) on any port, and from each of `peers` on its ports. The annotation holds
    the spec's digest, which the operator compares to decide whether the policy needs writing."""
    managed = {LABEL_MANAGED_BY: MANAGER}
    spec = _spec(managed, peers)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NAMESPACE_POLICY,
            "namespace": namespace,
            "labels": {**managed, LABEL_SCOPE: "namespace"},
            "annotations": {ANNOTATION_SPEC: digest},
        },
        "spec": spec,
    }
