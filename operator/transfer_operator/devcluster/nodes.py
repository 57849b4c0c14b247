"""Fake GPU nodes (managed by kwok) built from GPUPool objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
KWOK_NODE_SELECTOR = f"{KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}"
POOL_LABEL = "transfer.dev/pool"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
DEFAULT_MAX_NODES_PER_POOL = 4

# Generous so that only GPUs ever limit scheduling on a fake node.
NODE_CPU = "128"
NODE_MEMORY = "1Ti"
NODE_PODS = "110"


def load_pools(path: Path) -> list[dict[str, Any]]:
    """GPUPool objects from a YAML file: documents, a list, or a List with items."""
    pools: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if isinstance(doc, list):
            pools.extend(doc)
        elif "items" in doc:
            pools.extend(doc["items"])
        else:
            pools.append(doc)
    return pools


def node_count(pool: dict[str, Any], max_nodes_per_pool: int) -> int:
    """Fake nodes for a pool: spec.nodes capped, since pools may declare 16+ nodes and every
    fake node costs kwok heartbeats and scheduler work."""
    return max(0, min(int(pool["spec"].get("nodes", 1)), max_nodes_per_pool))


def _taints(tolerations: list[dict[str, Any]]) -> list[dict[str, str]]:
    taints = []
    for toleration in tolerations:
        key, effect = toleration.get("key"), toleration.get("effect")
        if not key or not effect:
            continue  # cannot turn "tolerate everything" into a taint
        taint = {"key": key, "effect": effect}
        if toleration.get("value"):
            taint["value"] = toleration["value"]
        taints.append(taint)
    return taints


def node_manifests(
    pools: list[dict[str, Any]], max_nodes_per_pool: int = DEFAULT_MAX_NODES_PER_POOL
) -> list[dict[str, Any]]:
    nodes = []
    for pool in pools:
        pool_name = pool["metadata"]["name"]
        spec = pool["spec"]
        gpus = str(int(spec.get("gpusPerNode", 0)))
        resources = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS, GPU_RESOURCE: gpus}
        for index in range(node_count(pool, max_nodes_per_pool)):
            name = f"{pool_name}-{index}"
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                REGION_LABEL: spec["region"],
                ZONE_LABEL: spec["zone"],
                GPU_PRODUCT_LABEL: spec["gpuType"],
                POOL_LABEL: pool_name,
                **{k: str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
            }
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE},
                    },
                    "spec": {"taints": _taints(spec.get("tolerations") or [])},
                    "status": {"capacity": dict(resources), "allocatable": dict(resources)},
                }
            )
    return nodes
