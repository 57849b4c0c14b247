"""Karpenter's kwok provider in the dev cluster (`dev-cluster up --provisioner karpenter`).

The kwok provider "buys" a node by creating a kwok-faked Node (annotated so that the dev cluster's
kwok makes it Ready); what it may buy, and at what price, is a JSON catalog
(`INSTANCE_TYPES_FILE_PATH`). One instance type per (GPU type, GPUs per node), offered in each
pool's zone on demand and, where the pool sells spot, as spot, at the pool's price per GPU-hour
times its GPUs per node. The binary and its CRDs come from
hack/controlplane/build-component.sh karpenter; it runs as one of the cluster's processes
(`down` stops it, its log is logs/karpenter.log), with a KWOKNodeClass `default` whose
`nodeRegistrationDelay` stands for the nodes' start-up time.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from transfer_operator.api.models import GPUPool
from transfer_operator.devcluster import cluster as cluster_mod
from transfer_operator.devcluster.binaries import ensure_component
from transfer_operator.devcluster.cluster import Cluster
from transfer_operator.devcluster.processes import free_port, wait_for
from transfer_operator.engine.elastic_pool import ZONE_LABEL, instance_type_name
from transfer_operator.engine.rayjob import CAPACITY_TYPE_LABEL

CPU_PER_GPU = 8
MEMORY_GI_PER_GPU = 64


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
            # The provider's JSON shape (kwok/cloudprovider/instance_types.json of Karpenter).
            offering = {
                "Price": round(per_gpu * spec.gpus_per_node, 4),
                "Available": True,
                "Requirements": [
                    {"key": CAPACITY_TYPE_LABEL, "operator": "In", "values": [capacity_type]},
                    {"key": ZONE_LABEL, "operator": "In", "values": [zone]},
                ],
            }
            if offering not in shape["offerings"]:
                shape["offerings"].append(offering)
    return [shapes[name] for name in sorted(shapes)]


def render_instance_types(pools: Iterable[GPUPool]) -> str:
    return json.dumps(instance_types(pools), indent=2, sort_keys=True) + "\n"


COMPONENT = "karpenter"
BINARY = "karpenter-kwok"
CATALOG_FILE = "karpenter-instance-types.json"
NODE_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}
DEFAULT_REGISTRATION_DELAY = "2s"


def node_class(name: str = "default", registration_delay: str = DEFAULT_REGISTRATION_DELAY) -> dict[str, Any]:
    """A KWOKNodeClass: its nodes register `registration_delay` after they are bought."""
    return {
        "apiVersion": "karpenter.kwok.sh/v1alpha1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": name},
        "spec": {"nodeRegistrationDelay": registration_delay},
    }


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def start(
    cluster: Cluster, pools: Iterable[dict[str, Any]], timeout_s: float = 120.0, build: bool = True
) -> Path:
    """Install Karpenter's CRDs and a KWOKNodeClass `default` in `cluster` and run the kwok provider against it with the pools' catalog; returns the binary's directory.
    Raises BinariesMissing when it is not built and `build` is False."""
    bin_dir = ensure_component(COMPONENT, build=build)
    crds = bin_dir / "crds"
    if not crds.is_dir():
        raise cluster_mod.ClusterError(
            f"{bin_dir} has no crds/: rebuild it (hack/controlplane/build-component.sh karpenter)"
        )
    cluster.kubectl("apply", "--server-side", "-f", str(crds), timeout_s=timeout_s)
    cluster.wait_crds_established(
        "nodepools.karpenter.sh",
        "nodeclaims.karpenter.sh",
        "kwoknodeclasses.karpenter.kwok.sh",
        timeout_s=timeout_s,
    )
    parsed = [GPUPool.model_validate(p) for p in pools]
    catalog = cluster.state_dir / CATALOG_FILE
    catalog.write_text(render_instance_types(parsed))
    metrics, probe = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "INSTANCE_TYPES_FILE_PATH": str(catalog),
        "DISABLE_LEADER_ELECTION": "true",
        "SYSTEM_NAMESPACE": "kube-system",
        "METRICS_PORT": str(metrics),
        "HEALTH_PROBE_PORT": str(probe),
        "LOG_LEVEL": "info",
        # Static NodePools (spec.replicas): an elastic pool's warm floor of minNodes.
        "FEATURE_GATES": "StaticCapacity=true",
        # Batch the pending pods of a gang briefly, so that one NodeClaim fits them together.
        "BATCH_IDLE_DURATION": "1s",
        "BATCH_MAX_DURATION": "5s",
    }
    record = cluster_mod.start_process(cluster, COMPONENT, [str(bin_dir / BINARY)], env)
    wait_for("Karpenter /readyz", lambda: _ready(f"http://127.0.0.1:{probe}/readyz"), timeout_s, record)
    apply_node_class(cluster)
    return bin_dir


def apply_node_class(
    cluster: Cluster, name: str = "default", registration_delay: str = DEFAULT_REGISTRATION_DELAY
) -> None:
    """Create a KWOKNodeClass and mark it Ready. No controller of the kwok provider does (on a cloud
    the provider's NodeClass controller checks its subnets, roles, images), and Karpenter buys
    nothing through a NodePool whose NodeClass is not Ready."""
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(node_class(name, registration_delay)))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": now}
    cluster.kubectl(
        "patch", "kwoknodeclass", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"conditions": [ready]}}),
    )  # fmt: skip
