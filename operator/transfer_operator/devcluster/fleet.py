"""A multi-cluster dev fleet: one management cluster, N worker clusters, one shared S3 store.

Each cluster is a full control plane of its own (cluster.py) in its own state directory:
the management cluster in the fleet's state directory (as a single dev cluster is), worker
`<name>` in `<state_dir>/workers/<name>`. A GPUPool with `spec.cluster: <name>` gets its kwok
nodes in that worker; one without `spec.cluster` in the management cluster. The management
cluster receives what an admin would create to register the workers: the transfer.dev CRDs, a
kubeconfig Secret per worker in the operator's namespace and a TransferCluster naming it. Every
cluster receives the store's endpoint and keys as Secret `transfer-storage` in the operator's
namespace and in `default`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from transfer_operator.api.crd import render_crds_yaml
from transfer_operator.devcluster import cluster as cluster_mod
from transfer_operator.devcluster import karpenter, objectstore
from transfer_operator.devcluster import nodes as nodes_mod
from transfer_operator.devcluster.cluster import Cluster, ClusterError, Echo

FLEET_FILE = "fleet.json"
WORKERS_DIR = "workers"
OPERATOR_NAMESPACE = "transfer-system"
STORAGE_SECRET = "transfer-storage"
STORAGE_BUCKET = "transfer"
STORAGE_NAMESPACES = (OPERATOR_NAMESPACE, "default")


@dataclass
class Fleet:
    management: Cluster
    workers: dict[str, Cluster]
    store: objectstore.ObjectStore | None


def kubeconfig_secret_name(worker: str) -> str:
    return f"{worker}-kubeconfig"


def worker_names(pools: list[dict[str, Any]], clusters: int) -> list[str]:
    """The workers: every cluster the pools name, then `worker-<i>` up to `clusters` in all."""
    named = sorted({p["spec"]["cluster"] for p in pools if p.get("spec", {}).get("cluster")})
    if len(named) > clusters:
        raise ClusterError(
            f"the pools name {len(named)} clusters ({', '.join(named)}) but --clusters is {clusters}: "
            f"pass --clusters {len(named)} or more"
        )
    names = list(named)
    index = 1
    while len(names) < clusters:
        candidate = f"worker-{index}"
        if candidate not in names:
            names.append(candidate)
        index += 1
    return names


def pools_of(pools: list[dict[str, Any]], cluster: str | None) -> list[dict[str, Any]]:
    return [p for p in pools if p.get("spec", {}).get("cluster") == cluster]


def _apply(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "dev-cluster"},
        },
        "type": "Opaque",
        "stringData": data,
    }


def transfer_cluster(worker: str, region: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kubeconfigSecretRef": {"name": kubeconfig_secret_name(worker), "namespace": OPERATOR_NAMESPACE}
    }
    if region:
        spec["region"] = region
    return {
        "apiVersion": "transfer.dev/v1alpha1",
        "kind": "TransferCluster",
        "metadata": {"name": worker},
        "spec": spec,
    }


def _region_of(pools: list[dict[str, Any]]) -> str | None:
    regions = {p["spec"].get("region") for p in pools}
    return regions.pop() if len(regions) == 1 else None


WORKER_RBAC = Path(__file__).resolve().parents[3] / "manifests" / "multicluster" / "worker-rbac.yaml"
WORKER_SERVICE_ACCOUNT = "transfer-operator-remote"


def _register(management: Cluster, name: str, worker: Cluster, pools: list[dict[str, Any]]) -> None:
    """As an admin registers a worker: its least-privilege RBAC there, and a kubeconfig of that
    ServiceAccount in a Secret of the management cluster."""
    worker.kubectl("apply", "-f", str(WORKER_RBAC))
    kubeconfig = worker.service_account_kubeconfig(
        WORKER_SERVICE_ACCOUNT, OPERATOR_NAMESPACE, worker.state_dir / "operator-kubeconfig", duration="48h"
    )
    secret = _secret(kubeconfig_secret_name(name), OPERATOR_NAMESPACE, {"kubeconfig": kubeconfig.read_text()})
    _apply(management, [secret, transfer_cluster(name, _region_of(pools))])


def _install_crds(management: Cluster) -> None:
    management.kubectl("apply", "-f", "-", input=render_crds_yaml())
    management.wait_crds_established("transferclusters.transfer.dev")


def storage_secret(namespace: str, store: objectstore.ObjectStore) -> dict[str, Any]:
    """The store's endpoint and keys as Secret `transfer-storage` in `namespace` (what pods envFrom)."""
    return _secret(STORAGE_SECRET, namespace, store.credentials.env())


def _share_storage(cluster: Cluster, store: objectstore.ObjectStore) -> None:
    _apply(cluster, [storage_secret(namespace, store) for namespace in STORAGE_NAMESPACES])


def _save(state_dir: Path, workers: list[str], with_store: bool) -> None:
    (state_dir / FLEET_FILE).write_text(json.dumps({"workers": workers, "objectstore": with_store}, indent=2))


def _recorded_workers(state_dir: Path) -> list[str]:
    path = state_dir / FLEET_FILE
    return list(json.loads(path.read_text())["workers"]) if path.is_file() else []


def worker_dir(state_dir: Path, name: str) -> Path:
    return state_dir / WORKERS_DIR / name


def up(
    state_dir: Path,
    pools: list[dict[str, Any]],
    *,
    clusters: int = 0,
    s3: bool = True,
    max_nodes_per_pool: int = nodes_mod.DEFAULT_MAX_NODES_PER_POOL,
    kuberay: bool = True,
    timeout_s: float = 180.0,
    echo: Echo | None = None,
    provisioner: str | None = None,
) -> Fleet:
    """Start the management cluster, `clusters` workers and the S3 store (or return those running).
    `provisioner="karpenter"`: Karpenter's kwok provider buys nodes for the elastic pools of each
    cluster, one provider per cluster (devcluster/karpenter.py)."""
    say = echo or (lambda _message: None)
    state_dir = state_dir.resolve()
    names = worker_names(pools, clusters)
    workers: dict[str, Cluster] = {}
    started: list[Path] = []
    try:
        say("management cluster ...")
        management = cluster_mod.up(
            state_dir,
            pools=pools_of(pools, None),
            max_nodes_per_pool=max_nodes_per_pool,
            kuberay=kuberay,
            timeout_s=timeout_s,
            echo=echo,
        )
        started.append(state_dir)
        if provisioner == "karpenter":
            say("Karpenter (kwok provider) ...")
            karpenter.start(management, pools_of(pools, None), timeout_s=timeout_s)
        _save(state_dir, names, s3)
        _install_crds(management)
        _apply(management, [_namespace(OPERATOR_NAMESPACE)])
        for name in names:
            say(f"worker cluster {name} ...")
            worker = cluster_mod.up(
                worker_dir(state_dir, name),
                pools=pools_of(pools, name),
                max_nodes_per_pool=max_nodes_per_pool,
                kuberay=kuberay,
                timeout_s=timeout_s,
                echo=echo,
            )
            started.append(worker.state_dir)
            if provisioner == "karpenter":
                say(f"Karpenter (kwok provider) in {name} ...")
                karpenter.start(worker, pools_of(pools, name), timeout_s=timeout_s)
            _register(management, name, worker, pools_of(pools, name))
            workers[name] = worker
        store = None
        if s3:
            say("S3 store (SeaweedFS) ...")
            store = objectstore.start(state_dir, objectstore.weed_binary(build=True), timeout_s=timeout_s)
            store.create_bucket(STORAGE_BUCKET)
            for member in [management, *workers.values()]:
                _share_storage(member, store)
    except BaseException:
        objectstore.stop_store(state_dir)
        for directory in reversed(started):
            cluster_mod.down(directory)
        raise
    return Fleet(management=management, workers=workers, store=store)


def down(state_dir: Path) -> bool:
    """Stop every cluster of the fleet and its store. False when nothing was running."""
    state_dir = state_dir.resolve()
    stopped = objectstore.stop_store(state_dir)
    for name in _recorded_workers(state_dir):
        stopped = cluster_mod.down(worker_dir(state_dir, name)) or stopped
    stopped = cluster_mod.down(state_dir) or stopped
    (state_dir / FLEET_FILE).unlink(missing_ok=True)
    return stopped


def status(state_dir: Path) -> dict[str, Any]:
    """The management cluster's status, with each worker's and the store's."""
    state_dir = state_dir.resolve()
    info = cluster_mod.status(state_dir)
    workers = {name: cluster_mod.status(worker_dir(state_dir, name)) for name in _recorded_workers(state_dir)}
    store = objectstore.load(state_dir)
    info["workers"] = workers
    info["objectstore"] = (
        {"endpoint": store.endpoint, "running": store.alive(), "pid": store.process.pid} if store else None
    )
    info["running"] = (
        bool(info["running"])
        and all(w["running"] for w in workers.values())
        and (store is None or store.alive())
    )
    return info
