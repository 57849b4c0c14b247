"""Worker clusters (TransferCluster): a client and a watch-fed index per cluster, and how
reachable each one is.

Each registered cluster gets the same informers as the local cluster has for the kinds the cycle
reads there (RayJobs, the jobs' pods, nodes), fed by watches of that cluster's API server, and a
probe thread that asks its `/version` every few seconds. The cycle reads these, never the worker
cluster itself; it writes (RayJob create/delete) through `Kube` of that cluster.

A kubeconfig is read from its Secret in the operator's namespace and kept in memory only: its
contents never go to status, events or logs (error messages name the Secret, not its data).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client, config

from transfer_operator.api.clusters import TransferCluster
from transfer_operator.api.enums import Reason
from transfer_operator.engine.names import label_value
from transfer_operator.engine.rayjob import LABEL_MANAGED_BY, MANAGER
from transfer_operator.handlers.informer import (
    NETWORKPOLICIES,
    NODECLAIMS,
    NODEPOOLS,
    NODES,
    PODS,
    RAYJOBS,
    Informer,
    PodStore,
    Store,
    prepare_karpenter_object,
    prepare_network_policy,
    prepare_node,
    prepare_rayjob,
)

log = logging.getLogger(__name__)
PROBE_INTERVAL_S = 3.0
PROBE_TIMEOUT_S = 3.0
# Labels on every object the operator creates in a worker cluster: owner references cannot cross
# clusters, so these name the TransferJob it belongs to (the orphan sweep reads them).
LABEL_ORIGIN_NAMESPACE = "transfer.dev/origin-namespace"
LABEL_ORIGIN_NAME = "transfer.dev/origin-name"
LABEL_ORIGIN_UID = "transfer.dev/origin-uid"


class ClusterProblem(Exception):
    """Why a TransferCluster cannot be used: (reason, message that says how to fix it)."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class RemoteIndex:
    rayjobs: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_rayjob))
    pods: PodStore = field(default_factory=PodStore)
    nodes: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_node))
    nodepools: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_karpenter_object))
    nodeclaims: Store[dict[str, Any]] = field(default_factory=lambda: Store(prepare_karpenter_object))
    networkpolicies: Store[str] = field(default_factory=lambda: Store(prepare_network_policy))


@dataclass
class RemoteCluster:
    """One worker cluster as the operator sees it."""

    name: str
    spec_hash: str
    namespace_prefix: str
    lost_after_s: float
    kube: Any = None  # handlers.kube.Kube of the worker cluster (None: not connected)
    index: RemoteIndex = field(default_factory=RemoteIndex)
    informers: list[Informer] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    problem: ClusterProblem | None = None
    server_version: str | None = None
    kuberay_installed: bool = False
    last_contact_s: float | None = None  # time.time() of the last answer
    first_seen_s: float = field(default_factory=time.time)
    retry_at_s: float = 0.0  # a cluster with a problem is connected again from then on

    def remote_namespace(self, namespace: str) -> str:
        return f"{self.namespace_prefix}{namespace}"

    def origin_namespace(self, remote: str) -> str:
        return remote[len(self.namespace_prefix) :] if remote.startswith(self.namespace_prefix) else remote

    def reachable(self, now_s: float) -> bool:
        """Answered within the last few probes."""
        return (
            self.last_contact_s is not None
            and now_s - self.last_contact_s < 3 * PROBE_INTERVAL_S + PROBE_TIMEOUT_S
        )

    def usable(self, now_s: float) -> bool:
        """Its pools have capacity: connected, KubeRay there, answering, watches synced."""
        return (
            self.problem is None
            and self.kube is not None
            and self.reachable(now_s)
            and all(i.synced.is_set() for i in self.informers)
        )

    def lost(self, now_s: float) -> bool:
        """Unreachable for longer than `clusterLostAfterSeconds`: its jobs go elsewhere."""
        since = self.last_contact_s if self.last_contact_s is not None else self.first_seen_s
        return self.problem is None and now_s - since >= self.lost_after_s

    def karpenter_served(self) -> bool:
        """Karpenter's NodePool API is served there (its elastic pools can buy nodes)."""
        return any(i.kind is NODEPOOLS and i.synced.is_set() and not i.absent for i in self.informers)

    def in_origin_namespaces(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Pods of this cluster, each in the namespace of its job in the operator's cluster."""
        return [
            {**pod, "metadata": {**pod["metadata"], "namespace": self.origin_namespace(pod["metadata"]["namespace"])}}
            for pod in pods
        ]

    def stop(self) -> None:
        self.stopped.set()


def spec_hash(cluster: TransferCluster) -> str:
    """Changes when the TransferCluster's spec does: the cluster is connected again."""
    return hashlib.sha256(cluster.spec.model_dump_json().encode()).hexdigest()[:16]


def read_kubeconfig(local_kube: Any, cluster: TransferCluster, operator_namespace: str) -> bytes:
    ref = cluster.spec.kubeconfig_secret_ref
    namespace = ref.namespace or operator_namespace
    where = f"Secret {namespace}/{ref.name}"
    if namespace != operator_namespace:
        raise ClusterProblem(
            Reason.SECRET_OUTSIDE_NAMESPACE,
            f"{where}: the kubeconfig Secret must be in the operator's namespace {operator_namespace}",
        )
    secret = local_kube.read_secret(namespace, ref.name)
    if secret is None:
        raise ClusterProblem(
            Reason.KUBECONFIG_SECRET_MISSING,
            f"{where} does not exist: create it with the worker's kubeconfig under key {ref.key!r}",
        )
    data = (secret.get("data") or {}).get(ref.key)
    if not data:
        raise ClusterProblem(
            Reason.KUBECONFIG_SECRET_MISSING, f"{where} has no key {ref.key!r}: put the kubeconfig there"
        )
    try:
        return base64.b64decode(data)
    except ValueError as error:
        raise ClusterProblem(Reason.KUBECONFIG_INVALID, f"{where} key {ref.key!r} is not base64") from error


def client_of(kubeconfig: bytes, where: str) -> client.ApiClient:
    """An API client from kubeconfig bytes; a message that never quotes the kubeconfig."""
    try:
        document = yaml.safe_load(kubeconfig)
        if not isinstance(document, dict):
            raise ValueError("not a mapping")
        configuration = client.Configuration()
        loader = config.kube_config.KubeConfigLoader(config_dict=document)
        loader.load_and_set(configuration)
    except Exception as error:  # noqa: BLE001 - any parse failure means the same fix
        kind = type(error).__name__
        raise ClusterProblem(
            Reason.KUBECONFIG_INVALID,
            f"{where}: the kubeconfig does not parse or has no usable context ({kind}); "
            "write a kubeconfig with one current-context and embedded credentials",
        ) from None
    configuration.connection_pool_maxsize = 16
    return client.ApiClient(configuration)


def connect(remote: RemoteCluster, api: client.ApiClient) -> None:
    """Check the worker (version, RayJob CRD), then start its informers and probe."""
    from transfer_operator.handlers.kube import Kube  # one Kube class for every cluster

    kube = Kube(api)
    version = probe(api)
    if version is None:
        raise ClusterProblem(
            Reason.UNREACHABLE,
            f"cluster {remote.name}: its API server does not answer; check the kubeconfig's server",
        )
    remote.server_version = version
    remote.last_contact_s = time.time()
    if not kube.has_rayjob_crd():
        raise ClusterProblem(
            Reason.KUBERAY_MISSING,
            f"cluster {remote.name} has no RayJob CRD (ray.io/v1): install the KubeRay operator there",
        )
    remote.kuberay_installed = True
    remote.kube = kube
    remote.informers = [
        Informer(kube, RAYJOBS, remote.index.rayjobs),
        Informer(kube, PODS, remote.index.pods),
        Informer(kube, NODES, remote.index.nodes),
        Informer(kube, NODEPOOLS, remote.index.nodepools),  # optional: a cluster without Karpenter
        Informer(kube, NODECLAIMS, remote.index.nodeclaims),
        Informer(kube, NETWORKPOLICIES, remote.index.networkpolicies),
    ]
    for informer in remote.informers:
        threading.Thread(
            target=informer.run,
            args=(remote.stopped,),
            name=f"watch-{remote.name}-{informer.kind.plural}",
            daemon=True,
        ).start()
    threading.Thread(target=probe_loop, args=(remote, api), name=f"probe-{remote.name}", daemon=True).start()


def probe(api: client.ApiClient) -> str | None:
    try:
        info = client.VersionApi(api).get_code(_request_timeout=PROBE_TIMEOUT_S)
        return str(info.git_version)
    except Exception:  # noqa: BLE001 - unreachable, for whatever reason
        return None


def probe_loop(remote: RemoteCluster, api: client.ApiClient) -> None:
    while not remote.stopped.wait(PROBE_INTERVAL_S):
        version = probe(api)
        if version is not None:
            remote.server_version = version
            remote.last_contact_s = time.time()


def managed_labels(origin: dict[str, Any]) -> dict[str, str]:
    metadata = origin["metadata"]
    return {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_ORIGIN_NAMESPACE: metadata.get("namespace") or "default",
        LABEL_ORIGIN_NAME: label_value(metadata["name"]),
        LABEL_ORIGIN_UID: metadata["uid"],
    }
