"""An in-memory stand-in for handlers.kube.Kube: the same methods over dicts, so the cycle's
I/O logic is tested fast. The e2e suite runs the same code against a real API server.

Its watch is a diff: each call reports what changed since the last list or watch of that kind
(ADDED, MODIFIED, DELETED, each with a new resourceVersion), so a test may change the dicts
directly. `expire` makes the next watch of a kind answer 410 Gone."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from transfer_operator.handlers.informer import Gone, Kind


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _seen_key(kind: Kind) -> str:
    return kind.plural if kind.namespace is None else f"{kind.plural}/{kind.namespace}"


CLUSTER_SCOPED = {
    "TransferQueue": "transferqueues",
    "TransferPriorityClass": "transferpriorityclasses",
    "Namespace": "namespaces",
}


class NotServed(Exception):
    status = 404


def _refuse_if_terminating(terminating: set[str], namespace: str) -> None:
    """What the API server answers a create in a namespace being deleted."""
    if namespace in terminating:
        cause = {"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated"}
        error = ApiException(status=403, reason="Forbidden")
        error.body = json.dumps({"kind": "Status", "reason": "Forbidden", "details": {"causes": [cause]}})
        raise error


@dataclass
class FakeKube:
    transferjobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    gpupools: dict[str, dict[str, Any]] = field(default_factory=dict)
    transferclusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    rayjobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    cluster_scoped: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"transferqueues": {}, "transferpriorityclasses": {}, "namespaces": {}}
    )  # plural -> name -> object
    lease_holder: str | None = None
    version: int = 0
    seen: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    expire: set[str] = field(default_factory=set)
    lists: dict[str, int] = field(default_factory=dict)
    owned: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # Karpenter's API: served only when `karpenter` (else a LIST answers 404, as without its CRDs).
    karpenter: bool = False
    nodepools: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodeclaims: dict[str, dict[str, Any]] = field(default_factory=dict)
    networkpolicies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # applied
    applies: int = 0  # apply_network_policy calls
    terminating: set[str] = field(default_factory=set)  # namespaces being deleted: creates refused

    written: dict[str, dict[str, Any]] = field(default_factory=dict)  # resourceVersion -> the object then

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.written[str(self.version)] = copy.deepcopy(obj)
        return obj

    def _objects(self, kind: Kind) -> dict[tuple[str, str], dict[str, Any]]:
        if kind.plural == "transferjobs":
            return dict(self.transferjobs)
        if kind.plural == "gpupools":
            return {("", name): obj for name, obj in self.gpupools.items()}
        if kind.plural == "transferclusters":
            return {("", name): obj for name, obj in self.transferclusters.items()}
        if kind.plural == "rayjobs":
            return dict(self.rayjobs)
        if kind.plural == "nodes":
            return {("", name): obj for name, obj in self.nodes.items()}
        if kind.plural in ("nodepools", "nodeclaims"):
            if not self.karpenter:
                raise NotServed()
            return {("", name): obj for name, obj in getattr(self, kind.plural).items()}
        if kind.plural == "networkpolicies":
            return dict(self.networkpolicies)
        if kind.plural in self.cluster_scoped:
            return {("", name): obj for name, obj in self.cluster_scoped[kind.plural].items()}
        if kind.plural == "pods":
            for i, pod in enumerate(self.pods):
                pod["metadata"].setdefault("name", f"pod-{i}")
            return {
                (p["metadata"].get("namespace", ""), p["metadata"]["name"]): p
                for p in self.pods
                if kind.namespace is None or p["metadata"].get("namespace") == kind.namespace
            }
        raise ValueError(kind.plural)

    def list_objects(self, kind: Kind) -> tuple[list[dict[str, Any]], str]:
        self.lists[kind.plural] = self.lists.get(kind.plural, 0) + 1
        objects = self._objects(kind)
        for obj in objects.values():
            obj["metadata"].setdefault("resourceVersion", "0")
        self.seen[_seen_key(kind)] = copy.deepcopy(objects)
        return [copy.deepcopy(o) for o in objects.values()], str(self.version)

    def watch_objects(self, kind: Kind, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        if kind.plural in self.expire:
            self.expire.discard(kind.plural)
            raise Gone("too old resource version")
        before = self.seen.get(_seen_key(kind), {})
        now = self._objects(kind)
        events: list[dict[str, Any]] = []
        for key, obj in now.items():
            old = before.get(key)
            if old is None or old != obj:
                if self.written.get(obj["metadata"].get("resourceVersion") or "") != obj:
                    self._bump(obj)  # changed in place by a test
                events.append({"type": "ADDED" if old is None else "MODIFIED", "object": copy.deepcopy(obj)})
        for key, old in before.items():
            if key not in now:
                self.version += 1
                gone = copy.deepcopy(old)
                gone["metadata"]["resourceVersion"] = str(self.version)
                events.append({"type": "DELETED", "object": gone})
        self.seen[_seen_key(kind)] = copy.deepcopy(now)
        events.append({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(self.version)}}})
        return iter(events)

    def add(self, obj: dict[str, Any]) -> None:
        obj = self._bump(copy.deepcopy(obj))
        obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
        if obj["kind"] == "GPUPool":
            self.gpupools[obj["metadata"]["name"]] = obj
        elif obj["kind"] in CLUSTER_SCOPED:
            self.cluster_scoped[CLUSTER_SCOPED[obj["kind"]]][obj["metadata"]["name"]] = obj
        else:
            obj["metadata"].setdefault("namespace", "default")
            obj["metadata"].setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            self.transferjobs[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def get_transferjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.transferjobs.get((namespace, name)))

    def patch_transferjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        obj = self.transferjobs.get((namespace, name))
        if obj is None:
            return None  # as Kube's: 404, the job is gone
        _merge(obj.setdefault("status", {}), status)
        return copy.deepcopy(self._bump(obj))

    def patch_gpupool_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        obj = self.gpupools[name]
        _merge(obj.setdefault("status", {}), status)
        return copy.deepcopy(self._bump(obj))

    def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.rayjobs.get((namespace, name)))

    def create_rayjob(self, manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any] | None:
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        _refuse_if_terminating(self.terminating, key[0])
        if key in self.rayjobs:
            return None
        created = copy.deepcopy(manifest)
        created["metadata"]["ownerReferences"] = [owner]
        created["metadata"]["uid"] = f"uid-{key[0]}-{key[1]}"
        self.rayjobs[key] = self._bump(created)
        # As if the watch delivered ADDED at once (the index has it already): a later in-place
        # change or deletion by a test is then reported.
        self.seen.setdefault("rayjobs", {})[key] = copy.deepcopy(created)
        return copy.deepcopy(created)

    def create_owned(self, manifest: dict[str, Any], owner: dict[str, Any]) -> bool:
        meta = manifest["metadata"]
        key = (manifest["kind"], meta["namespace"], meta["name"])
        _refuse_if_terminating(self.terminating, meta["namespace"])
        if key in self.owned:
            return False
        self.owned[key] = {**manifest, "metadata": {**meta, "ownerReferences": [owner]}}
        return True

    def apply_network_policy(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applies += 1
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        _refuse_if_terminating(self.terminating, key[0])
        self.networkpolicies[key] = self._bump(copy.deepcopy(manifest))
        self.seen.setdefault("networkpolicies", {})[key] = copy.deepcopy(self.networkpolicies[key])  # as rayjobs
        return copy.deepcopy(self.networkpolicies[key])

    def delete_rayjob(self, namespace: str, name: str) -> None:
        self.rayjobs.pop((namespace, name), None)

    def apply_nodepool(self, manifest: dict[str, Any], create: bool) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        if create and name not in self.nodepools:
            self.nodepools[name] = copy.deepcopy(manifest)
        else:
            _merge(self.nodepools[name], {"metadata": manifest["metadata"], "spec": manifest["spec"]})
        return copy.deepcopy(self._bump(self.nodepools[name]))

    def delete_nodeclaim(self, name: str) -> None:
        self.nodeclaims.pop(name, None)

    def post_event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], event_type, reason, message))

    def hold_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> bool:
        if self.lease_holder in (None, holder):
            self.lease_holder = holder
            return True
        return False
