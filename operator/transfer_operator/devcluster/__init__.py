"""A real, local Kubernetes control plane with fake GPU nodes (see docs/controlplane.md)."""

from transfer_operator.devcluster.binaries import BinariesMissing, ensure_bin_dir, kubectl_path
from transfer_operator.devcluster.cluster import (
    DEFAULT_STATE_DIR,
    Cluster,
    ClusterError,
    down,
    load,
    status,
    up,
)
from transfer_operator.devcluster.nodes import (
    DEFAULT_MAX_NODES_PER_POOL,
    load_pools,
    node_manifests,
)

__all__ = [
    "DEFAULT_MAX_NODES_PER_POOL",
    "DEFAULT_STATE_DIR",
    "BinariesMissing",
    "Cluster",
    "ClusterError",
    "down",
    "ensure_bin_dir",
    "kubectl_path",
    "load",
    "load_pools",
    "node_manifests",
    "status",
    "up",
]
