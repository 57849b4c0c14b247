"""Every Kubernetes call of the operator, through the official client. Synchronous: the
scheduling loop calls it from a worker thread, kopf runs sync handlers in its executor."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from transfer_operator import metrics
from transfer_operator.api.enums import GROUP, VERSION
from transfer_operator.engine.rayjob import MANAGER, RAYJOB_API_VERSION
from transfer_operator.handlers.informer import Gone, Kind

log = logging.getLogger(__name__)
RAY_GROUP, RAY_VERSION = RAYJOB_API_VERSION.split("/")


def load_client_config() -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = 64  # the cycle writes decisions in parallel
    return client.ApiClient(configuration)


# Normal events beyond this rate are dropped (counted in transfer_events_dropped_total): when a
# cycle admits thousands of jobs, one event each would cost as many API writes as the admissions.
# Warnings always go out. client-go's event recorder rate-limits the same way.
NORMAL_EVENTS_PER_SECOND = 10.0
NORMAL_EVENT_BURST = 50


class TokenBucket:
    """At most `rate` takes per second on average and `burst` at once; thread-safe."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    def wait(self) -> None:
        """Take one, sleeping until one is there (client-go's QPS/burst limiter)."""
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1 - 1e-9:  # tolerate float error of the refill
                    self.tokens -= 1
                    return
                short_s = (1 - self.tokens) / self.rate if self.rate > 0 else 0.1
            time.sleep(short_s)


# Every write of the operator (status patches, RayJob creates and deletes, events) waits for a
# token: a cycle that admits thousands of jobs spreads its writes instead of bursting them. The
# chart sets these (values `kubeClient.qps` / `kubeClient.burst`); reads are watches, not limited.
# An admission costs three writes (status, RayJob, its token Secret; the first in a namespace also
# the NetworkPolicy): 600/s admits up to 200 jobs/s.
DEFAULT_WRITE_QPS = 600.0
DEFAULT_WRITE_BURST = 1200


def write_limiter_from_env() -> TokenBucket:
    qps = float(os.environ.get("TRANSFER_KUBE_QPS") or DEFAULT_WRITE_QPS)
    burst = int(os.environ.get("TRANSFER_KUBE_BURST") or DEFAULT_WRITE_BURST)
    return TokenBucket(qps, max(1, burst))


@dataclass
class Kube:
    api: client.ApiClient
    normal_events: TokenBucket = field(
        default_factory=lambda: TokenBucket(NORMAL_EVENTS_PER_SECOND, NORMAL_EVENT_BURST)
    )
    writes: TokenBucket = field(default_factory=write_limiter_from_env)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    # --- our resources ------------------------------------------------------------------

    def get_transferjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "transferjobs", name),
            )
            return found
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_transferjob_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource; returns the object as written (for the index), or
        None when the TransferJob is gone (deleted since the cycle read it)."""
        self.writes.wait()
        try:
            return cast(
                dict[str, Any],
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, "transferjobs", name, {"status": status}
                ),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_gpupool_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.writes.wait()
        return cast(
            dict[str, Any],
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "gpupools", name, {"status": status}
            ),
        )

    # --- lists and watches (the informers' source) -----------------------------------------

    def _list_call(self, kind: Kind, **params: Any) -> Any:
        if kind.label_selector:
            params["label_selector"] = kind.label_selector
        if kind.group:
            return self.custom.list_cluster_custom_object(
                kind.group, kind.version, kind.plural, _preload_content=False, **params
            )
        core = client.CoreV1Api(self.api)
        if kind.plural == "nodes":
            return core.list_node(_preload_content=False, **params)
        if kind.plural == "pods" and kind.namespace is not None:
            return core.list_namespaced_pod(kind.namespace, _preload_content=False, **params)
        if kind.plural == "pods":
            return core.list_pod_for_all_namespaces(_preload_content=False, **params)
        if kind.plural == "namespaces":
            return core.list_namespace(_preload_content=False, **params)
        raise ValueError(f"no list call for {kind.plural}")

    def list_objects(self, kind: Kind) -> tuple[list[dict[str, Any]], str]:
        """Every object of `kind` and the list's resourceVersion (a consistent read)."""
        listed = json.loads(self._list_call(kind).data)
        return list(listed.get("items") or []), str(listed["metadata"]["resourceVersion"])

    def watch_objects(self, kind: Kind, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        """Watch events after `resource_version`, with bookmarks, until the server ends the stream."""
        try:
            response = self._list_call(
                kind,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_s,
                _request_timeout=(10, timeout_s + 30),
            )
        except ApiException as error:
            if error.status == 410:
                raise Gone(str(error.reason)) from error
            raise
        try:
            for line in iter_resp_lines(response):
                yield json.loads(line)
        finally:
            response.release_conn()

    # --- nodes and the jobs' pods (node-level failover) ------------------------------------

    # --- RayJobs ------------------------------------------------------------------------

    def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION, namespace, "rayjobs", name),
            )
            return found
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_rayjob(self, manifest: dict[str, Any], owner: dict[str, Any] | None) -> dict[str, Any] | None:
        """Create if absent; the created object when this call created it, None when the name
        was taken (409). The fixed name makes it idempotent. No owner: a worker cluster's
        RayJob, named by its origin labels instead."""
        if owner is not None:
            manifest = {**manifest, "metadata": {**manifest["metadata"], "ownerReferences": [owner]}}
        namespace = manifest["metadata"]["namespace"]
        self.writes.wait()
        try:
            return cast(
                dict[str, Any],
                self.custom.create_namespaced_custom_object(
                    RAY_GROUP, RAY_VERSION, namespace, "rayjobs", manifest
                ),
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    def create_owned(self, manifest: dict[str, Any], owner: dict[str, Any] | None) -> bool:
        """Create a job's NetworkPolicy or a RayJob's token Secret if absent (409 counts as
        there); True when created."""
        if owner is not None:
            manifest = {**manifest, "metadata": {**manifest["metadata"], "ownerReferences": [owner]}}
        namespace = manifest["metadata"]["namespace"]
        self.writes.wait()
        try:
            if manifest["kind"] == "NetworkPolicy":
                create: Any = client.NetworkingV1Api(self.api).create_namespaced_network_policy
            elif manifest["kind"] == "Secret":
                create = client.CoreV1Api(self.api).create_namespaced_secret
            else:
                raise ValueError(f"create_owned: unexpected kind {manifest['kind']}")
            # No client models are built for an answer nobody reads (CPU the GIL shares); the
            # client takes plain dicts too.
            response = create(namespace, manifest, _preload_content=False)
            response.drain_conn()  # read off, unparsed: the connection goes back to the pool
            response.release_conn()
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_rayjob(self, namespace: str, name: str) -> None:
        self.writes.wait()
        try:
            self.custom.delete_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, "rayjobs", name, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:  # already gone counts as success
                raise

    def apply_network_policy(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create or update a NetworkPolicy the operator owns (server-side apply, one write either
        way); the object as written."""
        metadata = manifest["metadata"]
        self.writes.wait()
        response: Any = client.NetworkingV1Api(self.api).patch_namespaced_network_policy(
            metadata["name"],
            metadata["namespace"],
            manifest,
            field_manager=MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,
        )
        return cast(dict[str, Any], json.loads(response.data))

    def delete_network_policy(self, namespace: str, name: str) -> None:
        self.writes.wait()
        try:
            client.NetworkingV1Api(self.api).delete_namespaced_network_policy(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    # --- Karpenter (elastic pools) ---------------------------------------------------------

    def apply_nodepool(self, manifest: dict[str, Any], create: bool) -> dict[str, Any]:
        """Create a generated Karpenter NodePool, or merge-patch its spec (limits, labels) when
        the GPUPool changed; returns the object as written."""
        self.writes.wait()
        name = manifest["metadata"]["name"]
        if create:
            try:
                return cast(
                    dict[str, Any],
                    self.custom.create_cluster_custom_object("karpenter.sh", "v1", "nodepools", manifest),
                )
            except ApiException as error:
                if error.status != 409:
                    raise
        return cast(
            dict[str, Any],
            self.custom.patch_cluster_custom_object(
                "karpenter.sh", "v1", "nodepools", name, {"metadata": manifest["metadata"], "spec": manifest["spec"]}
            ),
        )

    def delete_nodeclaim(self, name: str) -> None:
        """Release a bought node that never became ready (Karpenter terminates its instance)."""
        self.writes.wait()
        try:
            self.custom.delete_cluster_custom_object("karpenter.sh", "v1", "nodeclaims", name)
        except ApiException as error:
            if error.status != 404:
                raise

    # --- worker clusters ------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret of the operator's own namespace (a TransferCluster's kubeconfig)."""
        try:
            secret = client.CoreV1Api(self.api).read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status in (403, 404):
                return None
            raise
        return {"data": dict(secret.data or {})}

    def has_rayjob_crd(self) -> bool:
        """The RayJob API is served (a LIST of one; 404 means no CRD)."""
        try:
            self.custom.list_cluster_custom_object(
                RAY_GROUP, RAY_VERSION, "rayjobs", limit=1, _request_timeout=10
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def ensure_namespace(self, name: str, labels: dict[str, str]) -> None:
        """Create a worker cluster's namespace for a job, labelled as managed, if missing."""
        core = client.CoreV1Api(self.api)
        try:
            core.read_namespace(name)
            return
        except ApiException as error:
            if error.status != 404:
                raise
        self.writes.wait()
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        except ApiException as error:
            if error.status != 409:
                raise

    def set_finalizers(self, namespace: str, name: str, finalizers: list[str]) -> dict[str, Any]:
        """Replace a TransferJob's finalizers (a merge patch: no other controller sets any on it)."""
        self.writes.wait()
        patch = {"metadata": {"finalizers": finalizers}}
        return cast(
            dict[str, Any],
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "transferjobs", name, patch),
        )

    def patch_transfercluster_status(self, name: str, status: dict[str, Any]) -> None:
        self.writes.wait()
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "transferclusters", name, {"status": status}
        )

    # --- events and leases --------------------------------------------------------------

    def post_event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        if event_type == "Normal" and not self.normal_events.take():
            metrics.EVENTS_DROPPED.labels(reason=reason).inc()
            return
        metadata = obj["metadata"]
        namespace = metadata.get("namespace") or "default"
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{metadata['name']}."[:200], namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=obj.get("kind"),
                name=metadata["name"],
                namespace=metadata.get("namespace"),
                uid=metadata.get("uid"),
            ),
            type=event_type,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="transfer-operator"),
            reporting_component="transfer-operator",
            reporting_instance=socket.gethostname(),
        )
        self.writes.wait()
        try:
            client.CoreV1Api(self.api).create_namespaced_event(namespace, event)
        except ApiException as error:  # events are best effort
            log.warning("could not post event %s on %s: %s", reason, metadata["name"], error.reason)

    def hold_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> bool:
        """Acquire or renew a coordination.k8s.io Lease; True while `holder` leads."""
        coordination = client.CoordinationV1Api(self.api)
        now = datetime.now(UTC)
        try:
            lease = coordination.read_namespaced_lease(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=name, namespace=namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=holder,
                    lease_duration_seconds=duration_s,
                    acquire_time=now,
                    renew_time=now,
                ),
            )
            try:
                coordination.create_namespaced_lease(namespace, body)
                return True
            except ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
        spec = lease.spec or client.V1LeaseSpec()
        lease.spec = spec
        renewed = spec.renew_time or spec.acquire_time or now - timedelta(days=1)
        expired = renewed + timedelta(seconds=spec.lease_duration_seconds or duration_s) < now
        if spec.holder_identity != holder and not expired:
            return False
        if spec.holder_identity != holder:
            spec.acquire_time = now
        spec.holder_identity = holder
        spec.renew_time = now
        spec.lease_duration_seconds = duration_s
        try:
            coordination.replace_namespaced_lease(name, namespace, lease)  # resourceVersion guards races
            return True
        except ApiException as error:
            if error.status == 409:
                return False
            raise


def namespace_terminating(error: Exception) -> bool:
    """Whether the API server refused a create because the namespace is being deleted (403 with
    the cause NamespaceTerminating): nothing can be created there any more, and what is in it,
    the TransferJob included, is about to go."""
    if not isinstance(error, ApiException) or error.status != 403:
        return False
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except ValueError:
        return False
    return any(cause.get("reason") == "NamespaceTerminating" for cause in details.get("causes") or [])


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": obj.get("kind", "TransferJob"),
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
