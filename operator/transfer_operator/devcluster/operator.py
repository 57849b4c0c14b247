"""`dev-cluster up --with-operator`: the operator as a background process of the dev cluster.

The chart is installed with `replicas=0` (its CRDs, RBAC, ServiceAccount and config, no pod: kwok
nodes cannot run one), and `transferctl operator --standalone` runs here with a token of the
chart's ServiceAccount, so it has exactly the permissions the chart grants, as it would in its
pod. It is one of the cluster's processes: `down` stops it, `status` shows it, its log is
`logs/transfer-operator.log`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from transfer_operator.devcluster import cluster as cluster_mod
from transfer_operator.devcluster.binaries import repo_root
from transfer_operator.devcluster.cluster import Cluster
from transfer_operator.devcluster.processes import free_port

RELEASE = "transfer-operator"
NAMESPACE = "transfer-system"
SERVICE_ACCOUNT = "transfer-operator"
COMPONENT = "transfer-operator"
TOKEN_DURATION = "48h"


def chart_dir() -> Path:
    return repo_root() / "charts" / "transfer-operator"


def install_chart(cluster: Cluster) -> None:
    cluster.helm(
        "upgrade", "--install", RELEASE, str(chart_dir()), "-n", NAMESPACE, "--create-namespace",
        "--set", "replicas=0",
    )  # fmt: skip


def start_operator(cluster: Cluster) -> int:
    """Install the chart and start the operator; returns its metrics port."""
    install_chart(cluster)
    kubeconfig = cluster.service_account_kubeconfig(
        SERVICE_ACCOUNT, NAMESPACE, cluster.state_dir / "operator.kubeconfig", duration=TOKEN_DURATION
    )
    config = cluster.kubectl(
        "get", "configmap", f"{RELEASE}-config", "-n", NAMESPACE, "-o", "jsonpath={.data.config\\.yaml}"
    ).stdout
    config_path = cluster.state_dir / "operator-config.yaml"
    config_path.write_text(config)
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "POD_NAMESPACE": NAMESPACE,
        "POD_NAME": "transfer-operator-dev",
        "TRANSFER_METRICS_PORT": str(port),
        "TRANSFER_OPERATOR_CONFIG": str(config_path),
    }
    argv = [sys.executable, "-m", "transfer_operator.cli", "operator", "--standalone"]
    cluster_mod.start_process(cluster, COMPONENT, argv, env)
    return port
