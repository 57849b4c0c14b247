"""`helm test` on the dev cluster, with real pods: the chart installs the operator (replicas 1) on
the dev cluster's podman node (devcluster/podlet.py), where its pod runs the operator image with
the pod's ServiceAccount token, and `helm test` starts the hook's pod there too, which checks the
operator's /healthz and /metrics through the chart's Service. The verdict is the test pod's own
exit code. With the operator scaled to zero, the same `helm test` fails.

Skipped, with the reason, where the operator image is not built or podman cannot run it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.devcluster import cluster as cluster_mod
from transfer_operator.devcluster import podlet

from .conftest import CHART, RELEASE_NAMESPACE, get_json, wait_for
from .podman import OPERATOR_IMAGE, podman, runnable
from .prometheus import free_port

RELEASE = "transfer-operator"
TEST_POD = f"{RELEASE}-test-endpoints"


@pytest.fixture(scope="module")
def podman_node(cluster: devcluster.Cluster) -> Iterator[str]:
    runnable(OPERATOR_IMAGE, "operator", 5)
    node = cluster_mod.start_podman_node(cluster)
    try:
        yield node
    finally:
        record = cluster.processes.pop(cluster_mod.PODMAN_NODE_PROCESS, None)
        if record is not None:
            cluster_mod.stop(record)
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)


def values(tmp_path: Path, replicas: int, timeout_s: int = 60) -> Path:
    path = tmp_path / f"values-{replicas}.yaml"
    path.write_text(yaml.safe_dump({
        "replicas": replicas,
        "metrics": {"port": free_port()},  # host networking: a port nobody else on this machine holds
        "tests": {"timeoutSeconds": timeout_s},
        "nodeSelector": {podlet.NODE_LABEL: "true"},
        "tolerations": [{"key": podlet.NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    }))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def release(
    cluster: devcluster.Cluster, podman_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("helm-test")
    cluster.helm(
        "upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--create-namespace",
        "-f", str(values(workdir, 1)), "--wait", "--timeout", "3m",
    )  # fmt: skip
    try:
        yield workdir
    finally:
        pods = cluster.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "name", check=False).stdout
        print(pods)
        for line in podman("ps", "--all", "--format", "{{.Names}}", check=False).stdout.split():
            if line.startswith(f"k8s_{RELEASE_NAMESPACE}_"):
                print(f"--- {line}\n" + podman("logs", "--tail", "40", line, check=False).stderr[-4000:])
        cluster.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", check=False)


def operator_pod(cluster: devcluster.Cluster) -> dict:
    return get_json(cluster, "pod", f"{RELEASE}-0", "-n", RELEASE_NAMESPACE)


def helm_test(cluster: devcluster.Cluster) -> subprocess.CompletedProcess[str]:
    return cluster.helm("test", RELEASE, "-n", RELEASE_NAMESPACE, "--timeout", "3m", check=False)


def test_helm_test_passes_against_the_operators_pod(cluster: devcluster.Cluster, release: Path) -> None:
    pod = operator_pod(cluster)
    assert pod["spec"]["nodeName"] == podlet.NODE_NAME and pod["status"]["phase"] == "Running", pod["status"]

    # The operator in the pod is the image's, running as the chart's ServiceAccount: it holds the
    # peering lease kopf keeps in the ClusterKopfPeering object.
    def peered() -> bool | None:
        found = cluster.kubectl("get", "clusterkopfpeering", "transfer-operator", "-o", "json", check=False)
        return bool(found.returncode == 0 and json.loads(found.stdout).get("status")) or None

    wait_for(peered, 120, "the operator pod to join the kopf peering")
    result = helm_test(cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"TEST SUITE:     {TEST_POD}" in result.stdout and "Phase:          Succeeded" in result.stdout, (
        result.stdout
    )


def test_helm_test_fails_without_an_operator(cluster: devcluster.Cluster, release: Path) -> None:
    cluster.helm(
        "upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "-f", str(values(release, 0, timeout_s=5)),
        "--wait", "--timeout", "2m",
    )  # fmt: skip
    wait_for(
        lambda: (
            cluster.kubectl("get", "pod", f"{RELEASE}-0", "-n", RELEASE_NAMESPACE, check=False).returncode
            != 0
            or None
        ),
        120,
        "the operator pod to go",
    )
    result = helm_test(cluster)
    assert result.returncode != 0, result.stdout
    assert "Phase:          Failed" in result.stdout or "failed" in result.stderr, (
        result.stdout + result.stderr
    )
    # The hook's pod really ran and exited 1 (chartcheck found no endpoint), on the podman node.
    pod = get_json(cluster, "pod", TEST_POD, "-n", RELEASE_NAMESPACE)
    assert pod["spec"]["nodeName"] == podlet.NODE_NAME
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1 and terminated["reason"] == "Error", pod["status"]
