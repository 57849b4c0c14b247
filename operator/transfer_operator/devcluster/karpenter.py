"""Karpenter's kwok provider in the dev cluster: its instance-type catalog, from the GPUPools.

The kwok provider "buys" a node by creating a kwok-faked Node; what it may buy, and at what price,
is a JSON catalog (`INSTANCE_TYPES_FILE_PATH`). One instance type per (GPU type, GPUs per node),
offered in each pool's zone on demand and, where the pool sells spot, as spot, at the pool's
price per GPU-hour times its GPUs per node. The binary comes from
hack/controlplane/build-component.sh karpenter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from transfer_operator.api.models import GPUPool

CPU_PER_GPU = 8
MEMORY_GI_PER_GPU = 64


def instance_type_name(gpu_type: str, gpus_per_node: int) -> str:
    return f"{gpu_type.lower()}-{gpus_per_node}x"


def instance_types(pools: Iterable[GPUPool]) -> list[dict[str, Any]]:
    """The catalog: every GPU node shape of the pools, with one offering per zone and capacity type."""
    shapes: dict[str, dict[str, Any]] = {}
    for pool in pools:
        spec = pool.spec
        name = instance_type_name(spec.gpu_type, spec.gpus_per_node)
        shape = shapes.setdefault(
            name,
            {
                "name": name,
                "offerings": [],
                "architecture": "amd64",
                "operatingSystems": ["linux"],
                "resources": {
                    "cpu": str(CPU_PER_GPU * spec.gpus_per_node),
                    "memory": f"{MEMORY_GI_PER_GPU * spec.gpus_per_node}Gi",
                    "ephemeral-storage": "600Gi",
                    "pods": "110",
                    "nvidia.com/gpu": str(spec.gpus_per_node),
                },
            },
        )
        zone = spec.zone or f"{spec.region}-1a"
        prices = [("on-demand", spec.pricing.on_demand_per_gpu_hour)]
        if spec.pricing.spot_per_gpu_hour is not None:
            prices.append(("spot", spec.pricing.spot_per_gpu_hour))
        for capacity_type, per_gpu in prices:
            offering = {"capacityType": capacity_type, "zone": zone, "price": round(per_gpu * spec.gpus_per_node, 4)}
            if offering not in shape["offerings"]:
                shape["offerings"].append(offering)
    return [shapes[name] for name in sorted(shapes)]


def render_instance_types(pools: Iterable[GPUPool]) -> str:
    return json.dumps(instance_types(pools), indent=2, sort_keys=True) + "\n"
