"""A node of the dev cluster whose pods really run, in podman: for `helm test` and the operator's
own pod, where kwok's nodes run nothing.

This is not the kubelet (a real one needs a CRI runtime and cgroup v2, which these machines lack),
but it does the kubelet's part for the pods bound to its node, with a real container runtime:

- registers the Node `podman-0` (label `transfer.dev/podman-node=true`, and a NoSchedule taint of
  the same key, so only pods that ask for it land there) and renews its Lease and Ready condition;
- for each pod bound to it: runs every container with podman (`--pull never`: the image must be in
  podman's store, as after hack/images/build.sh), with the pod's command, args, env (values,
  fieldRefs, Secret and ConfigMap keys), securityContext user and read-only root, and its
  configMap, secret and emptyDir volumes and the ServiceAccount token (a TokenRequest bound to
  the pod, as the kubelet projects it);
- writes the pod's status from the containers: Running and Ready while they run (readiness probes
  are not run: a running container is ready), then Succeeded or Failed with their real exit codes;
  restartPolicy Always restarts an exited container;
- removes the containers of a deleted pod, then the pod.

Networking is the host's (`--network host`, pod IP = node IP = the host's address): there is no kube-proxy
and no cluster DNS, so a container's /etc/hosts maps `<service>.<namespace>.svc[.cluster.local]`
to that address for each Service whose ready endpoints are pods of this node and whose ports are
their target ports (anything else does not resolve), and KUBERNETES_SERVICE_HOST/PORT name the
API server's own address rather than the `kubernetes` Service's cluster IP.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import yaml

log = logging.getLogger("podlet")

NODE_NAME = "podman-0"
NODE_LABEL = "transfer.dev/podman-node"


def host_address() -> str:
    """The host's first non-loopback IPv4 address: the EndpointSlice controller refuses loopback
    endpoints, so pods on the host's network must be addressed by it (127.0.0.1 without one)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return "127.0.0.1"


POD_IP = host_address()
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3600
HEARTBEAT_S = 10.0
SYNC_S = 1.0
RESTART_BACKOFF_S = 5.0
CONTAINERS_CONF = Path(__file__).resolve().parents[3] / "hack" / "images" / "containers.conf"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Unsupported(Exception):
    """A pod asks for something this node cannot do: the pod fails with this message."""


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    conf = os.environ.get("CONTAINERS_CONF") or (str(CONTAINERS_CONF) if CONTAINERS_CONF.exists() else "")
    if conf:
        env["CONTAINERS_CONF"] = conf
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=check, timeout=timeout
    )


def node_manifest(name: str, cpu: str = "2", memory: str = "4Gi") -> dict[str, Any]:
    capacity = {"cpu": cpu, "memory": memory, "pods": "20"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", NODE_LABEL: "true"},
        },
        "spec": {"taints": [{"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def node_status(name: str) -> dict[str, Any]:
    stamp = now()
    return {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PodletReady",
                    "message": "podman runs this node's pods",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ],
            "addresses": [{"type": "InternalIP", "address": POD_IP}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "containerRuntimeVersion": "podman",
                "kubeletVersion": "podlet",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "",
                "kernelVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }


def container_name(pod: dict[str, Any], container: str) -> str:
    meta = pod["metadata"]
    return f"k8s_{meta['namespace']}_{meta['name']}_{container}_{meta['uid'][:8]}"


def podman_command(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(podman run flags, trailing arguments) for a container's command and args, with the
    Kubernetes rules: `command` replaces the image's ENTRYPOINT (and drops its CMD), `args` its CMD."""
    command, args = spec.get("command"), spec.get("args")
    flags: list[str] = []
    if command:
        flags += ["--entrypoint", json.dumps(command)]
    return flags, list(args or [])


class Podlet:
    def __init__(self, kubeconfig: Path, node: str, work_dir: Path) -> None:
        from kubernetes import client, config

        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        # Any: bodies are plain dicts, as the API takes them.
        self.core: Any = client.CoreV1Api(self.api_client)
        self.coordination: Any = client.CoordinationV1Api(self.api_client)
        self.discovery: Any = client.DiscoveryV1Api(self.api_client)
        self.node = node
        self.work_dir = work_dir
        kube = yaml.safe_load(kubeconfig.read_text())
        cluster = kube["clusters"][0]["cluster"]
        server = urlsplit(cluster["server"])
        self.api_host, self.api_port = server.hostname or POD_IP, str(server.port or 443)
        if "certificate-authority-data" in cluster:
            self.ca = base64.b64decode(cluster["certificate-authority-data"])
        else:
            self.ca = Path(cluster["certificate-authority"]).read_bytes()
        self.restart_at: dict[str, float] = {}
        self.stopping = threading.Event()

    # --- node -------------------------------------------------------------------------------

    def register(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_node(node_manifest(self.node))
        except ApiException as error:
            if error.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        from kubernetes.client.exceptions import ApiException

        self.core.patch_node_status(self.node, node_status(self.node))
        stamp = datetime.now(UTC).isoformat()
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": stamp},
        }
        try:
            self.coordination.patch_namespaced_lease(self.node, "kube-node-lease", lease)
        except ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease)

    def heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_S):
            try:
                self.heartbeat()
            except Exception:
                log.exception("heartbeat")

    # --- pods -------------------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        found = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.node}")
        return [self.api_client.sanitize_for_serialization(p) for p in found.items]

    def containers(self) -> dict[str, dict[str, Any]]:
        """This node's podman containers by name, with their state."""
        listed = podman(
            "ps", "--all", "--format", "json", "--filter", f"label=transfer.dev/podlet={self.node}"
        )
        return {c["Names"][0]: c for c in json.loads(listed.stdout or "[]")}

    def sync(self) -> None:
        running = self.containers()
        pods = self.pods()
        wanted: set[str] = set()
        for pod in pods:
            names = [container_name(pod, c["name"]) for c in pod["spec"]["containers"]]
            wanted.update(names)
            try:
                self.sync_pod(pod, running)
            except Exception as error:
                log.exception("pod %s/%s", pod["metadata"]["namespace"], pod["metadata"]["name"])
                if isinstance(error, Unsupported):
                    self.fail_pod(pod, str(error))
        for name in set(running) - wanted:
            log.info("removing container %s (its pod is gone)", name)
            podman("rm", "--force", "--time", "10", name, check=False)

    def sync_pod(self, pod: dict[str, Any], running: dict[str, dict[str, Any]]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            for c in spec["containers"]:
                podman(
                    "rm",
                    "--force",
                    "--time",
                    str(spec.get("terminationGracePeriodSeconds") or 10),
                    container_name(pod, c["name"]),
                    check=False,
                )
            from kubernetes import client

            self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], body=client.V1DeleteOptions(grace_period_seconds=0)
            )
            shutil.rmtree(self.pod_dir(pod), ignore_errors=True)
            return
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        policy = spec.get("restartPolicy") or "Always"
        states = []
        for c in spec["containers"]:
            name = container_name(pod, c["name"])
            found = running.get(name)
            if found is None:
                self.start(pod, c)
                found = self.containers().get(name)
            elif (
                found.get("Exited")
                and (policy == "Always" or (policy == "OnFailure" and found.get("ExitCode")))
                and time.monotonic() >= self.restart_at.setdefault(name, time.monotonic() + RESTART_BACKOFF_S)
            ):
                log.info("restarting %s (exit code %s)", name, found.get("ExitCode"))
                podman("start", name)
                self.restart_at.pop(name, None)
                found = self.containers().get(name)
            states.append((c, found))
        self.write_status(pod, states)

    def write_status(
        self, pod: dict[str, Any], states: list[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> None:
        statuses = []
        exits: list[int | None] = []
        for c, found in states:
            if found is None:
                state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
                exits.append(None)
            elif found.get("Exited"):
                code = int(found.get("ExitCode") or 0)
                state = {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": _stamp(found.get("StartedAt")),
                        "finishedAt": _stamp(found.get("ExitedAt")),
                    }
                }
                exits.append(code)
            else:
                state = {"running": {"startedAt": _stamp(found.get("StartedAt"))}}
                exits.append(None)
            statuses.append(
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": f"podman://{found['ImageID']}" if found else "",
                    "containerID": f"podman://{found['Id']}" if found else "",
                    "ready": "running" in state,
                    "started": "running" in state,
                    "restartCount": int((found or {}).get("Restarts") or 0),
                    "state": state,
                }
            )
        policy = pod["spec"].get("restartPolicy") or "Always"
        done = all(code is not None for code in exits)
        failed = any(code for code in exits)
        if done and (policy == "Never" or (policy == "OnFailure" and not failed)):
            phase = "Failed" if failed else "Succeeded"
        elif any(s["state"].get("running") for s in statuses) or any(c is not None for c in exits):
            phase = "Running"  # a container that exited is restarted (restartPolicy Always, OnFailure)
        else:
            phase = "Pending"
        ready = "True" if phase == "Running" and all(s["ready"] for s in statuses) else "False"
        old = pod.get("status") or {}
        stamp = now()

        def condition(kind: str, value: str) -> dict[str, str]:
            previous = next((c for c in old.get("conditions") or [] if c["type"] == kind), None)
            since = previous["lastTransitionTime"] if previous and previous["status"] == value else stamp
            return {"type": kind, "status": value, "lastTransitionTime": since}

        body = {
            "status": {
                "phase": phase,
                "hostIP": POD_IP,
                "podIP": POD_IP,
                "podIPs": [{"ip": POD_IP}],
                "startTime": old.get("startTime") or stamp,
                "containerStatuses": statuses,
                "conditions": [
                    condition("PodScheduled", "True"),
                    condition("Initialized", "True"),
                    condition("ContainersReady", ready),
                    condition("Ready", ready),
                ],
            }
        }
        if _summary(old) != _summary(body["status"]):
            self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], body)
            log.info("%s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], phase)

    def fail_pod(self, pod: dict[str, Any], message: str) -> None:
        body = {"status": {"phase": "Failed", "reason": "Unsupported", "message": message}}
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], body)

    # --- starting a container -------------------------------------------------------------

    def pod_dir(self, pod: dict[str, Any]) -> Path:
        return self.work_dir / "pods" / pod["metadata"]["uid"]

    def start(self, pod: dict[str, Any], c: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        name = container_name(pod, c["name"])
        flags = [
            "--detach",
            "--name",
            name,
            "--network",
            "host",
            "--pull",
            "never",
            "--label",
            f"transfer.dev/podlet={self.node}",
        ]
        security = {**(spec.get("securityContext") or {}), **(c.get("securityContext") or {})}
        if security.get("runAsUser") is not None:
            flags += [
                "--user",
                f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}",
            ]
        if security.get("readOnlyRootFilesystem"):
            flags.append("--read-only")
        if security.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        for drop in (security.get("capabilities") or {}).get("drop") or []:
            flags += ["--cap-drop", drop]
        for name_value in sorted(self.env(pod, c).items()):
            flags += ["--env", "=".join(name_value)]
        flags += self.mounts(pod, c)
        for host in self.service_hosts():
            flags += ["--add-host", f"{host}:{POD_IP}"]
        flags += ["--hostname", meta["name"][:63]]
        run_flags, trailing = podman_command(c)
        log.info("starting %s (%s)", name, c["image"])
        podman("run", *flags, *run_flags, c["image"], *trailing)

    def env(self, pod: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
        meta, spec = pod["metadata"], pod["spec"]
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": self.node,
            "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
            "status.podIP": POD_IP,
            "status.hostIP": POD_IP,
        }
        env = {"KUBERNETES_SERVICE_HOST": self.api_host, "KUBERNETES_SERVICE_PORT": self.api_port}
        if c.get("envFrom"):
            raise Unsupported(f"container {c['name']}: envFrom is not supported on {self.node}")
        for item in c.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"] or ""
                continue
            source = item.get("valueFrom") or {}
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise Unsupported(f"env {item['name']}: fieldRef {path} is not supported on {self.node}")
                env[item["name"]] = fields[path]
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                data = self.core.read_namespaced_secret(ref["name"], meta["namespace"]).data or {}
                env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[item["name"]] = (
                    self.core.read_namespaced_config_map(ref["name"], meta["namespace"]).data or {}
                )[ref["key"]]
            else:
                raise Unsupported(f"env {item['name']}: {sorted(source)} is not supported on {self.node}")
        return env

    def mounts(self, pod: dict[str, Any], c: dict[str, Any]) -> list[str]:
        meta, spec = pod["metadata"], pod["spec"]
        base = self.pod_dir(pod) / "volumes"
        paths: dict[str, Path] = {}
        for volume in spec.get("volumes") or []:
            path = base / volume["name"]
            if path.exists():
                paths[volume["name"]] = path
                continue
            path.mkdir(parents=True)
            if "emptyDir" in volume:
                path.chmod(0o1777)
            elif "configMap" in volume:
                data = (
                    self.core.read_namespaced_config_map(volume["configMap"]["name"], meta["namespace"]).data
                    or {}
                )
                self._write_files(
                    path, {k: v.encode() for k, v in data.items()}, volume["configMap"].get("items")
                )
            elif "secret" in volume:
                data = (
                    self.core.read_namespaced_secret(volume["secret"]["secretName"], meta["namespace"]).data
                    or {}
                )
                self._write_files(
                    path, {k: base64.b64decode(v) for k, v in data.items()}, volume["secret"].get("items")
                )
            elif "projected" in volume and self._is_token_volume(volume):
                self._write_token(pod, path)
            else:
                shutil.rmtree(path)
                raise Unsupported(
                    f"volume {volume['name']}: only emptyDir, configMap, secret and the "
                    f"ServiceAccount token are supported on {self.node}"
                )
            paths[volume["name"]] = path
        flags = []
        mounted = set()
        for mount in c.get("volumeMounts") or []:
            source = paths[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            options = "ro" if mount.get("readOnly") else "rw"
            flags += ["--volume", f"{source}:{mount['mountPath']}:{options}"]
            mounted.add(mount["mountPath"])
        if spec.get("automountServiceAccountToken", True) and TOKEN_DIR not in mounted:
            token = self.pod_dir(pod) / "serviceaccount"
            if not token.exists():
                token.mkdir(parents=True)
                self._write_token(pod, token)
            flags += ["--volume", f"{token}:{TOKEN_DIR}:ro"]
        return flags

    @staticmethod
    def _is_token_volume(volume: dict[str, Any]) -> bool:
        return any("serviceAccountToken" in s for s in volume["projected"].get("sources") or [])

    @staticmethod
    def _write_files(path: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
        chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
        for key, relative in chosen.items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])
            target.chmod(0o644)
        path.chmod(0o755)

    def _write_token(self, pod: dict[str, Any], path: Path) -> None:
        """What the kubelet projects: a token bound to the pod, the cluster CA, the namespace."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        token = self.core.create_namespaced_service_account_token(account, meta["namespace"], request)
        files = {
            "token": token.status.token.encode(),
            "ca.crt": self.ca,
            "namespace": meta["namespace"].encode(),
        }
        self._write_files(path, files, None)

    def service_hosts(self) -> list[str]:
        """The names of the Services that route to this node's pods (see the module's docstring):
        a ready endpoint is a pod of this node, and each port's target (the EndpointSlice's port,
        which resolves named target ports) is the Service's port, as host networking needs."""
        on_node = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in self.pods()}
        slices_by_service: dict[tuple[str, str], list[Any]] = {}
        for piece in self.discovery.list_endpoint_slice_for_all_namespaces().items:
            service = (piece.metadata.labels or {}).get("kubernetes.io/service-name")
            if service:
                slices_by_service.setdefault((piece.metadata.namespace, service), []).append(piece)
        hosts = []
        for service in self.core.list_service_for_all_namespaces().items:
            ns, name = service.metadata.namespace, service.metadata.name
            pieces = slices_by_service.get((ns, name), [])
            targets = {port.name or "": port.port for piece in pieces for port in piece.ports or []}
            ports = service.spec.ports or []
            if not ports or any(targets.get(port.name or "") != port.port for port in ports):
                continue
            ready = [
                e
                for piece in pieces
                for e in piece.endpoints or []
                if e.conditions
                and e.conditions.ready
                and e.target_ref is not None
                and (ns, e.target_ref.name) in on_node
            ]
            if ready:
                hosts += [f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
        return hosts

    # --- loop -------------------------------------------------------------------------------

    def run(self) -> None:
        self.register()
        threading.Thread(target=self.heartbeat_loop, daemon=True).start()
        log.info("node %s ready", self.node)
        while not self.stopping.wait(SYNC_S):
            try:
                self.sync()
            except Exception:
                log.exception("sync")

    def shutdown(self) -> None:
        self.stopping.set()
        for name in self.containers():
            podman("rm", "--force", "--time", "5", name, check=False)


def _summary(status: dict[str, Any]) -> tuple[Any, ...]:
    """What a status update would change: phase, container states and exit codes, conditions."""
    containers = [
        (c.get("name"), sorted(c.get("state") or {}), c.get("restartCount"), c.get("ready"))
        for c in status.get("containerStatuses") or []
    ]
    conditions = sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or [])
    return status.get("phase"), containers, conditions


def _stamp(value: Any) -> str:
    """podman's times (unix seconds) as RFC 3339."""
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OSError):
        return now()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", default=NODE_NAME)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "transfer-podlet")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    podlet = Podlet(args.kubeconfig, args.node, args.work_dir)

    def stop(*_: Any) -> None:
        podlet.shutdown()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    podlet.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
