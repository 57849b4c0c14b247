"""A real Kubernetes control plane on loopback for development and e2e tests.

etcd + kube-apiserver + kube-controller-manager + kube-scheduler run as local processes,
kwok fakes GPU nodes (one set per GPUPool) and the pod lifecycle on them, and the KubeRay
operator runs against the cluster. Everything lives in a state directory: certificates,
kubeconfig, etcd data, one log file per process and state.json, so that `up` in one process
and `down` in another work.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transfer_operator.devcluster import certs as certs_mod
from transfer_operator.devcluster import nodes as nodes_mod
from transfer_operator.devcluster import raysim
from transfer_operator.devcluster.binaries import ensure_bin_dir, kubectl_path
from transfer_operator.devcluster.processes import (
    ProcessError,
    ProcessRecord,
    free_port,
    is_alive,
    log_tail,
    reap,
    signal_group,
    spawn,
    stop,
    wait_for,
)
from transfer_operator.devcluster.stages import render_stages

DEFAULT_STATE_DIR = Path.home() / ".cache" / "transfer-operator" / "dev-cluster"
STATE_FILE = "state.json"
KUBECONFIG_FILE = "kubeconfig"
KWOK_STAGES_FILE = "kwok-stages.yaml"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_LEASE_DURATION_S = 40

Echo = Callable[[str], None]


class ClusterError(ProcessError):
    pass


@dataclass
class Cluster:
    state_dir: Path
    kubeconfig: Path
    server: str
    bin_dir: Path
    ports: dict[str, int]
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    max_nodes_per_pool: int = nodes_mod.DEFAULT_MAX_NODES_PER_POOL

    @property
    def pids(self) -> dict[str, int]:
        return {name: record.pid for name, record in self.processes.items()}

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        command = [kubectl_path(), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(command[1:])} failed: {result.stderr.strip()}")
        return result

    def wait_crds_established(self, *names: str, timeout_s: float = 60.0) -> None:
        """Waits until every CRD in `names` is Established. Not `kubectl wait`: it fails at once
        on a CRD whose status has no conditions yet, which is how a just-applied CRD starts."""

        def established() -> bool:
            result = self.kubectl("get", "crd", *names, "-o", "json", check=False)
            if result.returncode != 0:
                return False
            found = json.loads(result.stdout)
            items = found.get("items", [found])
            return len(items) == len(names) and all(
                any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in item.get("status", {}).get("conditions") or []
                )
                for item in items
            )

        wait_for(f"CRDs {', '.join(names)} Established", established, timeout_s)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The cached helm binary against this cluster."""
        command = [str(self.bin_dir / "helm"), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, capture_output=True, text=True, env=self.env())
        if check and result.returncode != 0:
            raise ClusterError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def service_account_kubeconfig(
        self, service_account: str, namespace: str, path: Path, duration: str = "2h"
    ) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount (a fresh token): to run a process
        with exactly the RBAC the chart grants, as it would have in a pod."""
        token = self.kubectl("create", "token", service_account, "-n", namespace, f"--duration={duration}")
        admin = yaml.safe_load(self.kubeconfig.read_text())
        user = f"{namespace}/{service_account}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "dev", "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": user, "user": {"token": token.stdout.strip()}}],
            "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": user}}],
            "current-context": "dev",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("state_dir", "kubeconfig", "bin_dir"):
            data[key] = str(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cluster:
        return cls(
            state_dir=Path(data["state_dir"]),
            kubeconfig=Path(data["kubeconfig"]),
            server=data["server"],
            bin_dir=Path(data["bin_dir"]),
            ports=dict(data["ports"]),
            processes={k: ProcessRecord(**v) for k, v in data["processes"].items()},
            nodes=list(data.get("nodes", [])),
            max_nodes_per_pool=int(data.get("max_nodes_per_pool", nodes_mod.DEFAULT_MAX_NODES_PER_POOL)),
        )


# --- state --------------------------------------------------------------------------


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def _save(cluster: Cluster) -> None:
    path = _state_path(cluster.state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cluster.to_json(), indent=2))
    tmp.replace(path)


def load(state_dir: Path = DEFAULT_STATE_DIR) -> Cluster | None:
    path = _state_path(state_dir)
    if not path.is_file():
        return None
    return Cluster.from_json(json.loads(path.read_text()))


# --- waiting ------------------------------------------------------------------------


def _http_ok(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _admin_ssl_context(paths: certs_mod.CertPaths) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    context.load_cert_chain(str(paths.admin_cert), str(paths.admin_key))
    return context


def _insecure_ssl_context() -> ssl.SSLContext:
    # Scheduler and controller-manager serve health on self-signed certs.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _healthz(port: int) -> Callable[[], bool]:
    context = _insecure_ssl_context()
    return lambda: _http_ok(f"https://127.0.0.1:{port}/healthz", context)


# --- configuration files --------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, paths: certs_mod.CertPaths) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "transfer-dev",
                "cluster": {"server": server, "certificate-authority-data": _b64(paths.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "transfer-dev-admin",
                "user": {
                    "client-certificate-data": _b64(paths.admin_cert),
                    "client-key-data": _b64(paths.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "transfer-dev",
                "context": {"cluster": "transfer-dev", "user": "transfer-dev-admin"},
            }
        ],
        "current-context": "transfer-dev",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


# --- component command lines ------------------------------------------------------------


def _etcd_argv(cluster: Cluster) -> list[str]:
    client = f"http://127.0.0.1:{cluster.ports['etcd']}"
    peer = f"http://127.0.0.1:{cluster.ports['etcd_peer']}"
    return [
        str(cluster.bin_dir / "etcd"),
        "--name=dev",
        f"--data-dir={cluster.state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=dev={peer}",
        "--unsafe-no-fsync",  # throwaway data: fsync only slows tests down
        "--log-level=warn",
    ]


def _apiserver_argv(cluster: Cluster, paths: certs_mod.CertPaths) -> list[str]:
    return [
        str(cluster.bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{cluster.ports['etcd']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={cluster.ports['apiserver']}",
        f"--cert-dir={cluster.state_dir / 'apiserver'}",
        f"--tls-cert-file={paths.serving_cert}",
        f"--tls-private-key-file={paths.serving_key}",
        f"--client-ca-file={paths.ca_cert}",
        f"--requestheader-client-ca-file={paths.ca_cert}",
        f"--requestheader-allowed-names={certs_mod.FRONT_PROXY_CLIENT_NAME}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={paths.front_proxy_cert}",
        f"--proxy-client-key-file={paths.front_proxy_key}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={paths.sa_public_key}",
        f"--service-account-signing-key-file={paths.sa_private_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # No real endpoint for the `kubernetes` Service: 127.0.0.1 is not a valid one.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        # /debug/pprof for `kubectl get --raw '/debug/pprof/profile?seconds=30'` (docs/controlplane.md)
        f"--profiling={'true' if os.environ.get('TRANSFER_APISERVER_PROFILING') == '1' else 'false'}",
    ]


def _controller_manager_argv(cluster: Cluster, paths: certs_mod.CertPaths) -> list[str]:
    kubeconfig = str(cluster.kubeconfig)
    return [
        str(cluster.bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cluster.ports['controller_manager']}",
        f"--cert-dir={cluster.state_dir / 'controller-manager'}",
        "--leader-elect=false",
        "--controllers=*",
        f"--service-account-private-key-file={paths.sa_private_key}",
        f"--root-ca-file={paths.ca_cert}",
        f"--cluster-signing-cert-file={paths.ca_cert}",
        f"--cluster-signing-key-file={paths.ca_key}",
        "--profiling=false",
    ]


def _scheduler_argv(cluster: Cluster) -> list[str]:
    kubeconfig = str(cluster.kubeconfig)
    return [
        str(cluster.bin_dir / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cluster.ports['scheduler']}",
        f"--cert-dir={cluster.state_dir / 'scheduler'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def _kwok_argv(cluster: Cluster) -> list[str]:
    return [
        str(cluster.bin_dir / "kwok"),
        f"--kubeconfig={cluster.kubeconfig}",
        # Stage resources: node heartbeat via leases, pods become Running/Ready (stages.py).
        f"--config={cluster.state_dir / KWOK_STAGES_FILE}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={nodes_mod.KWOK_NODE_SELECTOR}",
        f"--node-lease-duration-seconds={NODE_LEASE_DURATION_S}",
        f"--server-address=127.0.0.1:{cluster.ports['kwok']}",
    ]


def _write_kwok_stages(cluster: Cluster) -> None:
    base = (cluster.bin_dir / KWOK_STAGES_FILE).read_text()
    (cluster.state_dir / KWOK_STAGES_FILE).write_text(render_stages(base))


def _raysim_argv(cluster: Cluster, speedup: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "transfer_operator.devcluster.raysim",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--port={cluster.ports['raysim']}",
        f"--speedup={speedup}",
    ]


def _kuberay_argv(cluster: Cluster) -> list[str]:
    return [
        str(cluster.bin_dir / "ray-operator"),
        f"--metrics-addr=127.0.0.1:{cluster.ports['kuberay_metrics']}",
        f"--health-probe-bind-address=127.0.0.1:{cluster.ports['kuberay_probe']}",
        "--enable-leader-election=false",
        "--log-stdout-encoder=console",
    ]


# --- up / down / status -------------------------------------------------------------------


def _start_component(
    cluster: Cluster, name: str, argv: list[str], env: dict[str, str] | None = None
) -> ProcessRecord:
    record = spawn(name, argv, cluster.state_dir, env)
    cluster.processes[name] = record
    _save(cluster)  # so that down() finds it even if up() fails later
    return record


def start_process(cluster: Cluster, name: str, argv: list[str], env: dict[str, str]) -> ProcessRecord:
    """Start one more process as part of the cluster (`down` stops it first)."""
    if name in cluster.processes and is_alive(cluster.processes[name]):
        stop(cluster.processes[name])
    return _start_component(cluster, name, argv, env)


def _start_control_plane(cluster: Cluster, paths: certs_mod.CertPaths, timeout_s: float) -> None:
    etcd = _start_component(cluster, "etcd", _etcd_argv(cluster))
    wait_for(
        "etcd",
        lambda: _http_ok(f"http://127.0.0.1:{cluster.ports['etcd']}/health"),
        timeout_s,
        etcd,
    )
    apiserver = _start_component(cluster, "kube-apiserver", _apiserver_argv(cluster, paths))
    admin_context = _admin_ssl_context(paths)
    wait_for(
        "kube-apiserver /readyz",
        lambda: _http_ok(f"{cluster.server}/readyz", admin_context),
        timeout_s,
        apiserver,
    )
    manager = _start_component(cluster, "kube-controller-manager", _controller_manager_argv(cluster, paths))
    scheduler = _start_component(cluster, "kube-scheduler", _scheduler_argv(cluster))
    _start_component(cluster, "kwok", _kwok_argv(cluster))
    for record, port_name in ((manager, "controller_manager"), (scheduler, "scheduler")):
        wait_for(f"{port_name} /healthz", _healthz(cluster.ports[port_name]), timeout_s, record)
    # The serviceaccount controller creating `default` proves the controller-manager works.
    wait_for(
        "default ServiceAccount",
        lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        timeout_s,
        manager,
        interval_s=0.5,
    )


def _create_nodes(cluster: Cluster, pools: list[dict[str, Any]], timeout_s: float) -> None:
    manifests = nodes_mod.node_manifests(pools, cluster.max_nodes_per_pool)
    if not manifests:
        return
    document = {"apiVersion": "v1", "kind": "List", "items": manifests}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(document))
    cluster.nodes = [m["metadata"]["name"] for m in manifests]
    _save(cluster)
    try:
        cluster.kubectl(
            "wait",
            "--for=condition=Ready",
            "node",
            *cluster.nodes,
            f"--timeout={int(timeout_s)}s",
            timeout_s=timeout_s + 10,
        )
    except (ClusterError, subprocess.TimeoutExpired) as error:
        kwok_log = log_tail(cluster.processes["kwok"])
        raise ClusterError(f"fake nodes not Ready ({error}); kwok log tail:\n{kwok_log}") from error


def _start_raysim(cluster: Cluster, speedup: float, timeout_s: float) -> dict[str, str]:
    """The Ray stand-in (raysim.py); returns the env that sends KubeRay's job API calls to it."""
    record = _start_component(cluster, "ray-sim", _raysim_argv(cluster, speedup))
    url = f"http://127.0.0.1:{cluster.ports['raysim']}"
    wait_for("Ray stand-in /healthz", lambda: _http_ok(f"{url}/healthz"), timeout_s, record)
    # Go's HTTP client proxies plain-HTTP requests to non-loopback hosts only: the dashboard
    # URLs (<head-svc>.<ns>.svc.cluster.local:8265), never the API server (HTTPS, loopback).
    return {"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": "127.0.0.1,localhost"}


def _start_kuberay(cluster: Cluster, timeout_s: float, env: dict[str, str] | None = None) -> None:
    crd_dir = cluster.bin_dir / "crds" / "kuberay"
    # Server-side apply: the RayCluster CRD is too big for the last-applied annotation.
    cluster.kubectl("apply", "--server-side", "-f", str(crd_dir), timeout_s=timeout_s)
    cluster.wait_crds_established(
        "rayclusters.ray.io", "rayjobs.ray.io", "rayservices.ray.io", timeout_s=timeout_s
    )
    operator = _start_component(
        cluster, "kuberay-operator", _kuberay_argv(cluster), env={**cluster.env(), **(env or {})}
    )
    url = f"http://127.0.0.1:{cluster.ports['kuberay_probe']}/readyz"
    wait_for("KubeRay operator /readyz", lambda: _http_ok(url), timeout_s, operator)


PODMAN_NODE_PROCESS = "podman-node"


def start_podman_node(cluster: Cluster, timeout_s: float = 60.0) -> str:
    """A node whose pods run for real, in podman (podlet.py): for the operator's own pod and
    `helm test`. Pods land there only with its nodeSelector and toleration. Returns its name."""
    from transfer_operator.devcluster import podlet

    argv = [
        sys.executable,
        "-m",
        "transfer_operator.devcluster.podlet",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--node={podlet.NODE_NAME}",
        f"--work-dir={cluster.state_dir / 'podman-node'}",
    ]
    record = start_process(cluster, PODMAN_NODE_PROCESS, argv, cluster.env())

    def ready() -> bool:
        found = cluster.kubectl("get", "node", podlet.NODE_NAME, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        conditions = json.loads(found.stdout).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(f"node {podlet.NODE_NAME} Ready", ready, timeout_s, record)
    return podlet.NODE_NAME


def _allocate_ports() -> dict[str, int]:
    names = (
        "etcd",
        "etcd_peer",
        "apiserver",
        "controller_manager",
        "scheduler",
        "kwok",
        "kuberay_metrics",
        "kuberay_probe",
        "raysim",
    )
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(names):
        ports = {name: free_port() for name in names}
    return ports


def _fresh_state_dir(state_dir: Path) -> None:
    for name in ("etcd", "logs", "pki", "apiserver", "controller-manager", "scheduler"):
        shutil.rmtree(state_dir / name, ignore_errors=True)
    (state_dir / "logs").mkdir(parents=True)


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    pools: list[dict[str, Any]] | None = None,
    max_nodes_per_pool: int = nodes_mod.DEFAULT_MAX_NODES_PER_POOL,
    kuberay: bool = True,
    timeout_s: float = 120.0,
    echo: Echo | None = None,
    ray_speedup: float | None = raysim.DEFAULT_SPEEDUP,
) -> Cluster:
    """Start a fresh cluster in state_dir, or return the one already running there.

    pools are GPUPool objects; each gets min(spec.nodes, max_nodes_per_pool) kwok nodes.
    With KubeRay, RayJobs run simulated Ray jobs (raysim.py) `ray_speedup` times faster than
    their estimate; None: no simulation (submitters stay Running, nothing answers KubeRay).
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = load(state_dir)
    if existing and all(is_alive(r) for r in existing.processes.values()):
        return existing
    down(state_dir)

    bin_dir = ensure_bin_dir(build=True, echo=echo)
    _fresh_state_dir(state_dir)
    paths = certs_mod.generate(state_dir / "pki")
    ports = _allocate_ports()
    cluster = Cluster(
        state_dir=state_dir,
        kubeconfig=state_dir / KUBECONFIG_FILE,
        server=f"https://127.0.0.1:{ports['apiserver']}",
        bin_dir=bin_dir,
        ports=ports,
        max_nodes_per_pool=max_nodes_per_pool,
    )
    write_kubeconfig(cluster.kubeconfig, cluster.server, paths)
    _write_kwok_stages(cluster)
    _save(cluster)
    try:
        _start_control_plane(cluster, paths, timeout_s)
        _create_nodes(cluster, pools or [], timeout_s)
        if kuberay:
            env = _start_raysim(cluster, ray_speedup, timeout_s) if ray_speedup else None
            _start_kuberay(cluster, timeout_s, env)
    except BaseException:
        down(state_dir)
        raise
    return cluster


def down(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """Stop every process of the cluster in state_dir. False when nothing was running."""
    cluster = load(state_dir)
    if cluster is None:
        return False
    # One at a time in reverse start order: the apiserver lingers when etcd goes first.
    for record in reversed(list(cluster.processes.values())):
        stop(record)
    _state_path(state_dir).unlink(missing_ok=True)
    return True


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    cluster = load(state_dir)
    if cluster is None:
        return {"state_dir": str(state_dir), "running": False, "components": {}}
    components = {name: is_alive(record) for name, record in cluster.processes.items()}
    paths = certs_mod.cert_paths(cluster.state_dir / "pki")
    ready = components.get("kube-apiserver", False) and _http_ok(
        f"{cluster.server}/readyz", _admin_ssl_context(paths)
    )
    return {
        "state_dir": str(cluster.state_dir),
        "running": bool(components) and all(components.values()),
        "ready": ready,
        "server": cluster.server,
        "kubeconfig": str(cluster.kubeconfig),
        "components": components,
        "pids": cluster.pids,
        "nodes": cluster.nodes,
    }


def restart(cluster: Cluster, component: str, *, down_s: float = 2.0, timeout_s: float = 60.0) -> Cluster:
    """SIGKILL one component (e.g. kube-apiserver) and start it again with the same command line,
    for fault-injection tests. The new process is recorded, so `down` still stops everything."""
    record = cluster.processes[component]
    argv = Path(f"/proc/{record.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    environ = Path(f"/proc/{record.pid}/environ").read_bytes().rstrip(b"\0").split(b"\0")
    env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    signal_group(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(record) and time.monotonic() < deadline:
        reap(record.pid)
        time.sleep(0.1)
    time.sleep(down_s)
    cluster.processes[component] = spawn(component, [a.decode() for a in argv], cluster.state_dir, env=env)
    _save(cluster)
    if component == "kube-apiserver":
        wait_for(
            "kube-apiserver /readyz after a restart",
            lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
            timeout_s,
            cluster.processes[component],
        )
    return cluster
