"""Every Kubernetes call of the operator, through the official client. Synchronous: the
scheduling loop calls it from a worker thread, kopf runs sync handlers in its executor."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from transfer_operator import metrics
from transfer_operator.api.enums import GROUP, VERSION
from transfer_operator.engine.rayjob import LABEL_MANAGED_BY, MANAGER, RAYJOB_API_VERSION

log = logging.getLogger(__name__)
RAY_GROUP, RAY_VERSION = RAYJOB_API_VERSION.split("/")


def load_client_config() -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = 32  # the cycle writes decisions in parallel
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


@dataclass
class Kube:
    api: client.ApiClient
    normal_events: TokenBucket = field(
        default_factory=lambda: TokenBucket(NORMAL_EVENTS_PER_SECOND, NORMAL_EVENT_BURST)
    )

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

    def list_transferjobs(self) -> list[dict[str, Any]]:
        listed = cast(dict[str, Any], self.custom.list_cluster_custom_object(GROUP, VERSION, "transferjobs"))
        return list(listed["items"])

    def list_gpupools(self) -> list[dict[str, Any]]:
        listed = cast(dict[str, Any], self.custom.list_cluster_custom_object(GROUP, VERSION, "gpupools"))
        return list(listed["items"])

    def patch_transferjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "transferjobs", name, {"status": status}
        )

    def patch_gpupool_status(self, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(GROUP, VERSION, "gpupools", name, {"status": status})

    # --- nodes and the jobs' pods (node-level failover) ------------------------------------

    def list_nodes(self) -> list[dict[str, Any]]:
        # resourceVersion=0: served from the API server's watch cache, not from etcd.
        response: Any = client.CoreV1Api(self.api).list_node(resource_version="0", _preload_content=False)
        return list(json.loads(response.data)["items"])

    def list_job_pods(self) -> list[dict[str, Any]]:
        """Every pod of every RayJob this operator created (they carry its managed-by label)."""
        response: Any = client.CoreV1Api(self.api).list_pod_for_all_namespaces(
            label_selector=f"{LABEL_MANAGED_BY}={MANAGER}", resource_version="0", _preload_content=False
        )
        return list(json.loads(response.data)["items"])

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

    def list_rayjobs(self) -> list[dict[str, Any]]:
        """Every RayJob this operator created (after a start, to fill the cache in one call)."""
        listed = cast(
            dict[str, Any],
            self.custom.list_cluster_custom_object(
                RAY_GROUP, RAY_VERSION, "rayjobs", label_selector=f"{LABEL_MANAGED_BY}={MANAGER}"
            ),
        )
        return list(listed["items"])

    def create_rayjob(self, manifest: dict[str, Any], owner: dict[str, Any]) -> bool:
        """Create if absent; True when this call created it. The fixed name makes it idempotent."""
        manifest = {**manifest, "metadata": {**manifest["metadata"], "ownerReferences": [owner]}}
        namespace = manifest["metadata"]["namespace"]
        try:
            self.custom.create_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, "rayjobs", manifest
            )
            return True
        except ApiException as error:
            if error.status == 409:
                return False
            raise

    def delete_rayjob(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, "rayjobs", name, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:  # already gone counts as success
                raise

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


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": obj.get("kind", "TransferJob"),
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
