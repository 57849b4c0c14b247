"""The dev control plane is a real one: scheduler, controllers, RBAC, KubeRay and kwok nodes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from transfer_operator import devcluster
from transfer_operator.devcluster import nodes as nodes_mod

from .conftest import get_json, wait_for

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def apply(cluster: devcluster.Cluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def pool_nodes(cluster: devcluster.Cluster, pool_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(cluster, "nodes", "-l", f"{nodes_mod.POOL_LABEL}={pool_name}")[
        "items"
    ]
    return items


def pool_by_name(pools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(p for p in pools if p["metadata"]["name"] == name)


def pod_spec_for_pool(pool: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeSelector": pool["spec"]["nodeSelector"],
        "tolerations": pool["spec"]["tolerations"],
        "containers": [container],
    }


def test_gpu_nodes_per_pool(cluster: devcluster.Cluster, pools: list[dict[str, Any]]) -> None:
    for pool in pools:
        spec = pool["spec"]
        nodes = pool_nodes(cluster, pool["metadata"]["name"])
        assert len(nodes) == min(spec["nodes"], cluster.max_nodes_per_pool)
        for node in nodes:
            labels = node["metadata"]["labels"]
            assert labels["topology.kubernetes.io/region"] == spec["region"]
            assert labels["topology.kubernetes.io/zone"] == spec["zone"]
            assert labels["nvidia.com/gpu.product"] == spec["gpuType"]
            assert spec["nodeSelector"].items() <= labels.items()
            assert node["status"]["capacity"]["nvidia.com/gpu"] == str(spec["gpusPerNode"])
            assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(spec["gpusPerNode"])
            taints = {(t["key"], t.get("value", ""), t["effect"]) for t in node["spec"]["taints"]}
            expected = {(t["key"], t.get("value", ""), t["effect"]) for t in spec["tolerations"]}
            assert taints == expected
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "True"


def test_pod_is_scheduled_onto_its_pool_and_runs(
    cluster: devcluster.Cluster, pools: list[dict[str, Any]], namespace: str
) -> None:
    pool = pool_by_name(pools, "us-east-h100")
    container = {
        "name": "main",
        "image": "busybox",
        "resources": {"limits": {"nvidia.com/gpu": "2"}},
    }
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "gpu", "namespace": namespace},
            "spec": pod_spec_for_pool(pool, container),
        },
    )

    def running() -> dict[str, Any] | None:
        pod = get_json(cluster, "pod", "gpu", "-n", namespace)
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(running, timeout_s=60, what="pod Running")
    pool_node_names = {n["metadata"]["name"] for n in pool_nodes(cluster, "us-east-h100")}
    assert pod["spec"]["nodeName"] in pool_node_names


def test_pod_without_toleration_is_unschedulable(cluster: devcluster.Cluster, namespace: str) -> None:
    # Every fake GPU node is tainted: only kube-scheduler's verdict can explain Pending here.
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "untolerated", "namespace": namespace},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        },
    )

    def unschedulable() -> bool:
        pod = get_json(cluster, "pod", "untolerated", "-n", namespace)
        conditions = pod["status"].get("conditions", [])
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions)

    wait_for(unschedulable, timeout_s=60, what="PodScheduled=False/Unschedulable")
    assert "nodeName" not in get_json(cluster, "pod", "untolerated", "-n", namespace)["spec"]


def test_garbage_collector_deletes_replicaset_of_deleted_deployment(
    cluster: devcluster.Cluster, pools: list[dict[str, Any]], namespace: str
) -> None:
    pool = pool_by_name(pools, "eu-west-a100")
    labels = {"app": "web"}
    apply(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec_for_pool(pool, {"name": "main", "image": "nginx"}),
                },
            },
        },
    )

    def ready_replicas() -> bool:
        deployment = get_json(cluster, "deployment", "web", "-n", namespace)
        return bool(deployment["status"].get("readyReplicas") == 2)

    wait_for(ready_replicas, timeout_s=60, what="2 ready replicas")
    assert get_json(cluster, "replicasets", "-n", namespace, "-l", "app=web")["items"]

    cluster.kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false")

    def collected() -> bool:
        replicasets = get_json(cluster, "replicasets", "-n", namespace, "-l", "app=web")["items"]
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
        return not replicasets and not pods

    wait_for(collected, timeout_s=60, what="ReplicaSet and Pods garbage-collected")


def test_service_account_token_is_authenticated_and_rbac_enforced(
    cluster: devcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    token = cluster.kubectl("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()

    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    admin["users"] = [{"name": "reader", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "reader"
    reader_kubeconfig = tmp_path / "reader.kubeconfig"
    reader_kubeconfig.write_text(yaml.safe_dump(admin))

    def as_reader(*args: str) -> subprocess.CompletedProcess[str]:
        command = [
            devcluster.kubectl_path(),
            "--kubeconfig",
            str(reader_kubeconfig),
            "-n",
            namespace,
        ]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=30)

    whoami = json.loads(as_reader("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    assert as_reader("get", "pods").returncode == 0
    for denied_verb in (("create", "configmap", "nope"), ("delete", "pod", "anything")):
        denied = as_reader(*denied_verb)
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()


def test_kuberay_creates_head_and_worker_pods_on_kwok_nodes(
    cluster: devcluster.Cluster, pools: list[dict[str, Any]], namespace: str
) -> None:
    crds = {item["metadata"]["name"] for item in get_json(cluster, "crd")["items"]}
    assert {"rayclusters.ray.io", "rayjobs.ray.io"} <= crds

    pool = pool_by_name(pools, "eu-west-a100")
    image = "rayproject/ray:2.40.0"
    head = {
        "name": "ray-head",
        "image": image,
        "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
    }
    worker = {
        "name": "ray-worker",
        "image": image,
        "resources": {"limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}},
    }
    apply(
        cluster,
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "raytest", "namespace": namespace},
            "spec": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": pod_spec_for_pool(pool, head)},
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 1,
                        "rayStartParams": {},
                        "template": {"spec": pod_spec_for_pool(pool, worker)},
                    }
                ],
            },
        },
    )

    def running_pods() -> list[dict[str, Any]] | None:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "ray.io/cluster=raytest")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) == 2 else None

    pods = wait_for(running_pods, timeout_s=90, what="RayCluster head and worker Running")
    node_types = sorted(p["metadata"]["labels"]["ray.io/node-type"] for p in pods)
    assert node_types == ["head", "worker"]
    pool_node_names = {n["metadata"]["name"] for n in pool_nodes(cluster, "eu-west-a100")}
    assert {p["spec"]["nodeName"] for p in pods} <= pool_node_names
