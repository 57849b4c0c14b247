"""Fixtures for tests against a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok GPU nodes, KubeRay) started once per session; see docs/controlplane.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from transfer_operator import devcluster

from .prometheus import free_port

E2E_DIR = Path(__file__).resolve().parent
POOLS_FILE = E2E_DIR / "pools.yaml"
# Small on purpose: ap-south-l4 declares 16 nodes and gets 2, which tests the cap too.
MAX_NODES_PER_POOL = 2
# Simulated Ray jobs (devcluster/raysim.py) run 10x longer here than on a newcomer's dev cluster
# (an estimated hour: 10 minutes, capped), so that the examples stay Admitted/Running while the
# tests look at them; a test that wants a job to end sets sim.transfer.dev/run-seconds on it.
RAY_SPEEDUP = 6.0
# Reuse a running dev cluster instead of starting one (e.g. after `transferctl dev-cluster up`).
REUSE_STATE_DIR_ENV = "TRANSFER_E2E_STATE_DIR"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real local control plane (slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item, not only those under tests/e2e.
    for item in items:
        if E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def pools() -> list[dict[str, Any]]:
    return devcluster.load_pools(POOLS_FILE)


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pools: list[dict[str, Any]]
) -> Iterator[devcluster.Cluster]:
    reuse_dir = os.environ.get(REUSE_STATE_DIR_ENV)
    if reuse_dir:
        running = devcluster.load(Path(reuse_dir))
        if running is None:
            pytest.fail(f"${REUSE_STATE_DIR_ENV}={reuse_dir}: no cluster running there")
        yield running
        return
    state_dir = tmp_path_factory.mktemp("dev-cluster")
    start_s = time.monotonic()
    running = devcluster.up(
        state_dir, pools=pools, max_nodes_per_pool=MAX_NODES_PER_POOL, ray_speedup=RAY_SPEEDUP
    )
    print(f"\ndev cluster up in {time.monotonic() - start_s:.1f}s ({state_dir})")
    try:
        yield running
    finally:
        devcluster.down(state_dir)


@pytest.fixture
def namespace(cluster: devcluster.Cluster) -> Iterator[str]:
    """A fresh namespace, with its `default` ServiceAccount ready (pods need it)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout_s=30,
        what=f"default ServiceAccount in {name}",
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


ROOT = E2E_DIR.parents[1]
EXAMPLES = ROOT / "manifests" / "examples"
CHART = ROOT / "charts" / "transfer-operator"
RELEASE_NAMESPACE = "transfer-system"
SERVICE_ACCOUNT = "transfer-operator"
T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.5)


def keep_ray_jobs_running(cluster: devcluster.Cluster, namespace: str) -> None:
    """kwok completes a Job's pod at once, after which KubeRay fails the RayJob (no Ray answers
    on kwok). With no Jobs allowed in the namespace the submitter never "finishes", so RayJobs
    stay live, as they would while a real Ray job trains."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-ray-submitter"},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(quota))


def pods_report(cluster: devcluster.Cluster, namespace: str, selector: str) -> str:
    """Why pods are not bound: the RayJobs and RayClusters of the namespace, the selected pods
    with their scheduling condition, and every pod that holds GPUs on any node."""
    lines = []
    for kind in ("rayjobs", "rayclusters"):
        for item in get_json(cluster, kind, "-n", namespace)["items"]:
            status = item.get("status") or {}
            state = status.get("jobDeploymentStatus") or status.get("state")
            lines.append(f"{kind} {item['metadata']['name']}: {state}")
    for pod in get_json(cluster, "pods", "-n", namespace, "-l", selector)["items"]:
        scheduled = [c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"]
        why = scheduled[0].get("message", scheduled[0]["status"]) if scheduled else "no PodScheduled yet"
        lines.append(f"pod {pod['metadata']['name']}: {pod['status'].get('phase')} on {pod['spec'].get('nodeName')}: {why}")
    for pod in get_json(cluster, "pods", "-A")["items"]:
        gpus = [c for c in pod["spec"]["containers"] if "nvidia.com/gpu" in (c.get("resources") or {}).get("limits", {})]
        if gpus and pod["spec"].get("nodeName"):
            meta = pod["metadata"]
            gone = " (terminating)" if meta.get("deletionTimestamp") else ""
            lines.append(f"GPU pod {meta['namespace']}/{meta['name']} on {pod['spec']['nodeName']}{gone}")
    return "\n".join(lines) or "no RayJob, RayCluster or pod"


def get_json(cluster: devcluster.Cluster, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def event_messages(cluster: devcluster.Cluster, namespace: str, name: str, reason: str) -> list[str]:
    """The messages of the object's events with `reason`: what a transition said, which the next
    cycle (0.2 s later, on news) may already have replaced in status and conditions."""
    events = get_json(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    return [e["message"] for e in events["items"] if e["reason"] == reason]


def get_or_none(cluster: devcluster.Cluster, *args: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def container_env(container: dict[str, Any], secret: dict[str, Any], pod_ip: str) -> dict[str, str]:
    """A rendered container's env as the kubelet fills it: Secret keys and the pod's IP."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
            env[item["name"]] = pod_ip
    return env


class OperatorProcess:
    """`transferctl operator` as a subprocess, authenticated as the chart's ServiceAccount."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        peering: bool = False,
        name: str = "operator-e2e",
        priority: int = 0,
        config: Path | None = None,
    ):
        self.kubeconfig = kubeconfig
        self.config = config  # the operator settings file (chart value `config`)
        self.log_path = log_path
        self.peering = peering
        self.name = name
        self.priority = priority
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "POD_NAMESPACE": RELEASE_NAMESPACE,
            "POD_NAME": self.name,
            "TRANSFER_METRICS_PORT": str(self.metrics_port),
        }
        if self.config is not None:
            env["TRANSFER_OPERATOR_CONFIG"] = str(self.config)
        log = self.log_path.open("ab")
        mode = (
            ["--peering", "transfer-operator", "--priority", str(self.priority)]
            if self.peering
            else ["--standalone"]
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "transfer_operator.cli",
                "operator",
                *mode,
                "--liveness",
                f"http://127.0.0.1:{self.health_port}/healthz",
            ],  # fmt: skip
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def chart(cluster: devcluster.Cluster) -> Iterator[None]:
    """The chart's CRDs, RBAC and ServiceAccount (replicas=0: the tests run the operator)."""
    install = ("upgrade", "--install", "transfer-operator", str(CHART), "-n", RELEASE_NAMESPACE)
    cluster.helm(*install, "--create-namespace", "--set", "replicas=0")
    yield
    cluster.helm("uninstall", "transfer-operator", "-n", RELEASE_NAMESPACE, check=False)


@pytest.fixture(scope="module")
def operator(
    cluster: devcluster.Cluster, chart: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = cluster.service_account_kubeconfig(
        SERVICE_ACCOUNT, RELEASE_NAMESPACE, workdir / "kubeconfig"
    )
    process = OperatorProcess(kubeconfig, workdir / "operator.log")
    process.start()
    yield process
    process.kill(signal.SIGTERM)
    print(process.log()[-5000:])
