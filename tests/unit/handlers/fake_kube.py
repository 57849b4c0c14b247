"""An in-memory stand-in for handlers.kube.Kube: the same methods over dicts, so the cycle's
I/O logic is tested fast. The e2e suite runs the same code against a real API server."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class FakeKube:
    transferjobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    gpupools: dict[str, dict[str, Any]] = field(default_factory=dict)
    rayjobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    lease_holder: str | None = None

    def add(self, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
        if obj["kind"] == "GPUPool":
            self.gpupools[obj["metadata"]["name"]] = obj
        else:
            obj["metadata"].setdefault("namespace", "default")
            obj["metadata"].setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            self.transferjobs[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def get_transferjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.transferjobs.get((namespace, name)))

    def list_transferjobs(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.transferjobs.values()]

    def list_gpupools(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.gpupools.values()]

    def patch_transferjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        _merge(self.transferjobs[(namespace, name)].setdefault("status", {}), status)

    def patch_gpupool_status(self, name: str, status: dict[str, Any]) -> None:
        _merge(self.gpupools[name].setdefault("status", {}), status)

    def list_nodes(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.nodes.values()]

    def list_job_pods(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.pods)

    def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.rayjobs.get((namespace, name)))

    def list_rayjobs(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.rayjobs.values()]

    def create_rayjob(self, manifest: dict[str, Any], owner: dict[str, Any]) -> bool:
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.rayjobs:
            return False
        created = copy.deepcopy(manifest)
        created["metadata"]["ownerReferences"] = [owner]
        self.rayjobs[key] = created
        return True

    def delete_rayjob(self, namespace: str, name: str) -> None:
        self.rayjobs.pop((namespace, name), None)

    def post_event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], event_type, reason, message))

    def hold_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> bool:
        if self.lease_holder in (None, holder):
            self.lease_holder = holder
            return True
        return False
