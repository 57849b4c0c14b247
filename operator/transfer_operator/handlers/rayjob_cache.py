"""The latest status of every RayJob the operator manages, fed by the RayJob watch.

The cycle's reconcile pass reads each running job's RayJob here instead of GETting it every
interval: with thousands of jobs those GETs were most of the operator's API traffic. A miss (the
watch has not delivered the object yet, or it is gone) falls back to a GET, so the cache only
saves calls and never decides on its own that a RayJob is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


class RayJobCache:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()  # kopf runs sync handlers in a thread pool

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body.get("metadata") or {}
        key = (metadata.get("namespace") or "default", metadata.get("name", ""))
        with self._lock:
            if event_type == "DELETED":
                self._items.pop(key, None)
                return
            # Name and status are all the mirror reads: keep the memory per job small.
            self._items[key] = {
                "metadata": {"name": key[1], "namespace": key[0]},
                "status": dict(body.get("status") or {}),
            }

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get((namespace, name))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
