"""The Kubernetes calls of `transferctl get|describe|logs|cost|cancel|suspend|resume`, as the user
of the current kubeconfig context (or `--context`), through the official client."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from transfer_operator.api.enums import GROUP, VERSION
from transfer_operator.engine.rayjob import RAYJOB_API_VERSION

RAY_GROUP, RAY_VERSION = RAYJOB_API_VERSION.split("/")
SUBMITTER_CONTAINER = "ray-job-submitter"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class CtlError(RuntimeError):
    """Something the user can act on (printed without a traceback)."""


def _explain(error: ApiException, what: str) -> CtlError:
    if error.status == 404:
        return CtlError(f"{what} not found")
    if error.status == 403:
        return CtlError(f"{what}: forbidden for the current user ({error.reason})")
    return CtlError(f"{what}: {error.status} {error.reason}")


class JobClient:
    def __init__(self, context: str | None = None, api: client.ApiClient | None = None) -> None:
        try:
            self.api = api or config.new_client_from_config(context=context)
        except (config.ConfigException, OSError) as error:
            raise CtlError(f"no usable kubeconfig: {error}") from None
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.context = context

    def default_namespace(self) -> str:
        try:
            contexts, current = config.list_kube_config_contexts()
        except (config.ConfigException, OSError):
            return "default"
        chosen = next((c for c in contexts if c["name"] == self.context), None) if self.context else current
        return str(((chosen or {}).get("context") or {}).get("namespace") or "default")

    def _plain(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    # --- TransferJobs and GPUPools ------------------------------------------------------

    def jobs(self, namespace: str | None) -> list[dict[str, Any]]:
        try:
            if namespace is None:
                found = self.custom.list_cluster_custom_object(GROUP, VERSION, "transferjobs")
            else:
                found = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "transferjobs")
        except ApiException as error:
            raise _explain(error, "TransferJobs") from None
        return list(cast(dict[str, Any], found)["items"])

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            found = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "transferjobs", name)
            return dict(cast(dict[str, Any], found))
        except ApiException as error:
            raise _explain(error, f"TransferJob {namespace}/{name}") from None

    def pools(self) -> list[dict[str, Any]]:
        try:
            found = self.custom.list_cluster_custom_object(GROUP, VERSION, "gpupools")
            return list(cast(dict[str, Any], found)["items"])
        except ApiException as error:
            raise _explain(error, "GPUPools") from None

    def set_suspend(self, namespace: str, name: str, suspend: bool) -> None:
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "transferjobs", name, {"spec": {"suspend": suspend}}
            )
        except ApiException as error:
            raise _explain(error, f"TransferJob {namespace}/{name}") from None

    def delete(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "transferjobs", name)
        except ApiException as error:
            raise _explain(error, f"TransferJob {namespace}/{name}") from None

    def events(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        try:
            found = self.core.list_namespaced_event(namespace, field_selector=selector)
        except ApiException as error:
            if error.status == 403:
                return []
            raise _explain(error, f"events of {kind} {namespace}/{name}") from None
        return list(self._plain(found)["items"])

    # --- where the RayJob runs ------------------------------------------------------------

    def for_cluster(self, cluster: str | None) -> JobClient:
        """A client of the worker cluster `cluster` (its TransferCluster's kubeconfig Secret), or
        this one when the job runs here."""
        if not cluster:
            return self
        try:
            registered = self.custom.get_cluster_custom_object(GROUP, VERSION, "transferclusters", cluster)
            ref = cast(dict[str, Any], registered)["spec"]["kubeconfigSecretRef"]
            secret = self.core.read_namespaced_secret(ref["name"], ref["namespace"])
        except ApiException as error:
            raise _explain(error, f"the kubeconfig of TransferCluster {cluster}") from None
        data = secret.data or {}
        kubeconfig = yaml.safe_load(base64.b64decode(data[ref.get("key", "kubeconfig")]))
        return JobClient(api=config.new_client_from_config_dict(kubeconfig))

    def rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, "rayjobs", name
            )
            return dict(cast(dict[str, Any], found))
        except ApiException as error:
            if error.status == 404:
                return None
            raise _explain(error, f"RayJob {namespace}/{name}") from None

    def submitter_pods(self, namespace: str, rayjob: str) -> list[dict[str, Any]]:
        try:
            found = self.core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={rayjob}")
        except ApiException as error:
            raise _explain(error, f"pods of RayJob {namespace}/{rayjob}") from None
        return sorted(self._plain(found)["items"], key=lambda p: p["metadata"]["creationTimestamp"])

    def _on_kwok_node(self, namespace: str, pod: str) -> bool:
        try:
            spec = self.core.read_namespaced_pod(pod, namespace).spec
            node = self.core.read_node(spec.node_name) if spec and spec.node_name else None
        except ApiException:
            return False
        return bool(node and node.metadata and KWOK_NODE_ANNOTATION in (node.metadata.annotations or {}))

    def logs(self, namespace: str, pod: str, follow: bool) -> Iterator[str]:
        """The submitter container's log (`ray job submit` follows the driver's output)."""
        try:
            response: Any = self.core.read_namespaced_pod_log(
                pod, namespace, container=SUBMITTER_CONTAINER, follow=follow, _preload_content=False
            )
        except ApiException as error:
            if self._on_kwok_node(namespace, pod):
                raise CtlError(
                    f"pod {namespace}/{pod} runs on a kwok node, which runs no container and serves no log "
                    "(the dev cluster simulates Ray jobs: see docs/controlplane.md#simulated-ray-jobs)"
                ) from None
            raise _explain(error, f"log of pod {namespace}/{pod}") from None
        try:
            for chunk in response.stream(1024):
                yield chunk.decode(errors="replace")
        finally:
            response.release_conn()
