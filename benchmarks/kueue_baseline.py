"""Kueue on the benchmark's control plane: the side-by-side baseline of e2e_admission.py.

Kueue's controller manager is built from the Go module proxy (hack/controlplane/components/kueue)
the first time the benchmark runs, never by CI. It manages RayJobs (its `ray.io/rayjob`
integration): each of our TransferJobs has an equivalent RayJob, the one our operator renders
for it, created suspended with the `kueue.x-k8s.io/queue-name` label and no pool pin; Kueue
creates its Workload, reserves quota in a ClusterQueue whose ResourceFlavors are the GPUPools
(one flavor per pool, the pool's GPUs as quota), and unsuspends the RayJob with the flavor's
node labels. No KubeRay operator runs, so admitted RayJobs stay idle, as ours do.

No webhooks are registered with the API server (the RayJobs are created already suspended, as
Kueue's defaulting webhook would make them); the webhook server gets a throwaway certificate, and
so does the metrics server, at the path Kueue reads it from without its internal cert management
(/etc/kueue/metrics/certs, written only when absent). The visibility API server is off.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from transfer_operator import devcluster
from transfer_operator.api.models import TransferJob
from transfer_operator.devcluster.binaries import ensure_component
from transfer_operator.engine.rayjob import PoolPin, render_rayjob

VERSION = "v0.17.0"  # hack/controlplane/components/kueue/component.env
GROUP, API = "kueue.x-k8s.io", "v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CLUSTER_QUEUE = "bench"
LOCAL_QUEUE = "bench"
POOL_LABEL = "transfer.dev/pool"
HEALTH_PORT = 18481


def crd_dir() -> Path:
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True)
    return Path(gomodcache.stdout.strip()) / f"sigs.k8s.io/kueue@{VERSION}/config/components/crd/bases"


def binary() -> Path:
    return ensure_component("kueue") / "kueue"


METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")


def throwaway_cert(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kueue"]
        + ["-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
        check=True,
        capture_output=True,
    )


def configuration(workdir: Path, qps: float, burst: int) -> Path:
    """Kueue's Configuration: leader election off, only the RayJob integration, the same client
    QPS/burst as our operator (Kueue's default is 50/100), webhook server on a throwaway cert."""
    cert_dir = workdir / "kueue-certs"
    throwaway_cert(cert_dir)
    # Without its internal cert management Kueue reads its metrics server's certificate from this
    # fixed path (cmd/kueue/main.go); a throwaway one, only if none is there.
    if not (METRICS_CERT_DIR / "tls.crt").is_file():
        throwaway_cert(METRICS_CERT_DIR)
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{HEALTH_PORT}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"port": 18482, "host": "127.0.0.1", "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "clientConnection": {"qps": qps, "burst": burst},
        "integrations": {"frameworks": ["ray.io/rayjob"]},
    }
    path = workdir / "kueue-config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def install(cluster: devcluster.Cluster, pools: list[dict[str, Any]]) -> None:
    """Kueue's CRDs, its namespace, and one ClusterQueue with a ResourceFlavor per GPUPool."""
    cluster.kubectl("apply", "--server-side", "-f", str(crd_dir()))
    cluster.kubectl("create", "namespace", "kueue-system", check=False)
    flavors = [
        {
            "apiVersion": f"{GROUP}/{API}",
            "kind": "ResourceFlavor",
            "metadata": {"name": pool["metadata"]["name"]},
            "spec": {"nodeLabels": {POOL_LABEL: pool["metadata"]["name"]}},
        }
        for pool in pools
    ]
    cluster_queue = {
        "apiVersion": f"{GROUP}/{API}",
        "kind": "ClusterQueue",
        "metadata": {"name": CLUSTER_QUEUE},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": pool["metadata"]["name"],
                            "resources": [
                                {"name": "cpu", "nominalQuota": 1_000_000},
                                {"name": "memory", "nominalQuota": "100000Ti"},
                                {
                                    "name": "nvidia.com/gpu",
                                    "nominalQuota": pool["spec"]["nodes"] * pool["spec"]["gpusPerNode"],
                                },
                            ],
                        }
                        for pool in pools
                    ],
                }
            ],
        },
    }
    cluster.kubectl(
        "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in [*flavors, cluster_queue])
    )


def local_queue(cluster: devcluster.Cluster, namespace: str) -> None:
    queue = {
        "apiVersion": f"{GROUP}/{API}",
        "kind": "LocalQueue",
        "metadata": {"name": LOCAL_QUEUE, "namespace": namespace},
        "spec": {"clusterQueue": CLUSTER_QUEUE},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(queue))


def equivalent_rayjob(transferjob: dict[str, Any], pool: dict[str, Any]) -> dict[str, Any]:
    """The RayJob our operator would create for `transferjob`, suspended, queued in Kueue, with
    no pool pin (Kueue's flavor assignment places it)."""
    job = TransferJob.model_validate(transferjob)
    rayjob = render_rayjob(job, PoolPin.of(pool["metadata"]["name"], _pool_spec(pool)), 1)
    rayjob = copy.deepcopy(rayjob)
    rayjob["metadata"]["labels"][QUEUE_LABEL] = LOCAL_QUEUE
    rayjob["spec"]["suspend"] = True
    spec = rayjob["spec"]
    templates = [spec["submitterPodTemplate"], spec["rayClusterSpec"]["headGroupSpec"]["template"]]
    templates += [group["template"] for group in spec["rayClusterSpec"]["workerGroupSpecs"]]
    for template in templates:
        template["spec"].pop("nodeSelector", None)
    return rayjob


def _pool_spec(pool: dict[str, Any]) -> Any:
    from transfer_operator.api.models import GPUPool

    return GPUPool.model_validate(pool).spec


def start(cluster: devcluster.Cluster, workdir: Path, config: Path) -> subprocess.Popen[bytes]:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [
            str(binary()),
            f"--config={config}",
            "--feature-gates=VisibilityOnDemand=false",
            "--zap-log-level=error",
        ],
        env=env,
        stdout=(workdir / "kueue.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kueue exited with {process.returncode}: see {workdir / 'kueue.log'}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/readyz", timeout=2).read()
            return process
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"kueue not ready in 120 s: see {workdir / 'kueue.log'}")


def unsuspended_at(rayjob: dict[str, Any]) -> str | None:
    """When Kueue's write that unsuspended `rayjob` landed (its managedFields entry), or None
    while it is suspended."""
    if rayjob["spec"].get("suspend", False):
        return None
    for entry in rayjob["metadata"].get("managedFields") or []:
        if "kueue" in entry.get("manager", "") and not entry.get("subresource"):
            return str(entry["time"])
    return None


def owner_name(obj: dict[str, Any]) -> str:
    owners = obj["metadata"].get("ownerReferences") or [{}]
    return str(owners[0].get("name", ""))
