"""A namespaced tenant on the real control plane: a ServiceAccount that may only create and get
TransferJobs in its own namespace tries the attacks of issue #14, and each is refused with a
clear condition (or by the API server, naming the field), while its honest jobs run."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.engine.isolation import NAMESPACE_POLICY

from .conftest import EXAMPLES, OperatorProcess, get_json, get_or_none, keep_ray_jobs_running, wait_for

GROUP = "transfer.dev/v1alpha1"


def transfer_queue(name: str, nominal: dict[str, int], users: str, max_priority: int = 100) -> dict[str, Any]:
    """A TransferQueue that the namespace `users` may use."""
    return {
        "apiVersion": GROUP,
        "kind": "TransferQueue",
        "metadata": {"name": name},
        "spec": {
            "nominalGpus": nominal,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": users}},
            "maxPriority": max_priority,
        },
    }


def admin_objects(namespace: str) -> list[dict[str, Any]]:
    """The tenant's queue (its namespace only, 8 A100s, priorities up to 100), another team's
    queue, and a priority class."""
    return [
        transfer_queue(f"{namespace}-q", {"A100": 8}, namespace),
        transfer_queue(f"{namespace}-other-team", {"*": 64}, "someone-else", max_priority=1000000),
        {
            "apiVersion": GROUP,
            "kind": "TransferPriorityClass",
            "metadata": {"name": f"{namespace}-normal"},
            "spec": {"value": 50},
        },
    ]


@pytest.fixture
def queues(cluster: devcluster.Cluster, namespace: str) -> Iterator[str]:
    """The admin's objects for `namespace`; removed after the test (they apply cluster-wide)."""
    objects = admin_objects(namespace)
    manifest = "\n---\n".join(json.dumps(o) for o in objects)
    cluster.kubectl("apply", "-f", "-", input=manifest)
    try:
        yield f"{namespace}-q"
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=manifest, check=False)


@pytest.fixture
def tenant(cluster: devcluster.Cluster, namespace: str, tmp_path: Path) -> Any:
    """kubectl as a ServiceAccount with only TransferJob create/get in `namespace`."""
    cluster.kubectl("create", "serviceaccount", "tenant", "-n", namespace)
    cluster.kubectl(
        "create", "role", "transferjob-user", "--verb=create,get",
        "--resource=transferjobs.transfer.dev", "-n", namespace,
    )  # fmt: skip
    cluster.kubectl(
        "create", "rolebinding", "tenant", "--role=transferjob-user",
        f"--serviceaccount={namespace}:tenant", "-n", namespace,
    )  # fmt: skip
    kubeconfig = cluster.service_account_kubeconfig("tenant", namespace, tmp_path / "tenant.kubeconfig")

    def as_tenant(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [devcluster.kubectl_path(), "--kubeconfig", str(kubeconfig), "-n", namespace, *args]
        return subprocess.run(command, input=input, capture_output=True, text=True, timeout=60)

    return as_tenant


def a_job(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """The LoRA example on one A100, in `namespace`, with `spec` merged in (one level deep)."""
    job = yaml.safe_load((EXAMPLES / "lora-sentiment.yaml").read_text())
    job["metadata"] = {"name": name, "namespace": namespace}
    job["spec"]["resources"] = {"workers": 1, "gpusPerWorker": 1, "gpuType": "A100", "estimatedHours": 0.5}
    job["spec"]["priority"] = 0
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(job["spec"].get(key), dict):
            job["spec"][key] = {**job["spec"][key], **value}
        else:
            job["spec"][key] = value
    return job


def ready_condition(as_tenant: Any, name: str) -> dict[str, Any] | None:
    """The job's Ready condition once the operator has said something, read as the tenant."""
    result = as_tenant("get", "transferjob", name, "-o", "json")
    assert result.returncode == 0, result.stderr
    conditions = (json.loads(result.stdout).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def test_a_namespaced_tenants_attacks_are_refused(
    cluster: devcluster.Cluster, operator: OperatorProcess, namespace: str, queues: str, tenant: Any
) -> None:
    keep_ray_jobs_running(cluster, namespace)
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))  # the fleet (other modules may not have run)
    # What the tenant may not touch at all.
    for denied in (
        ("auth", "can-i", "create", "transferqueues.transfer.dev"),
        ("auth", "can-i", "create", "transferpriorityclasses.transfer.dev"),
        ("auth", "can-i", "get", "secrets"),
        ("auth", "can-i", "delete", "transferjobs.transfer.dev"),
    ):
        assert tenant(*denied).stdout.strip() == "no", denied
    assert tenant("auth", "can-i", "create", "transferjobs.transfer.dev").stdout.strip() == "yes"

    attacks = {
        # priority 1000000 to preempt every other team: above the queue's ceiling
        "greedy": (a_job("greedy", namespace, queue=queues, priority=1000000), "1000000 is above 100"),
        # another team's queue: its quota, and its jobs exposed to preemption
        "squatter": (
            a_job("squatter", namespace, queue=f"{namespace}-other-team"),
            f"may not use TransferQueue {namespace}-other-team; it may use: {queues}",
        ),
        # a queue that does not exist: no quota at all
        "nowhere": (a_job("nowhere", namespace, queue="no-such-queue"), "no TransferQueue no-such-queue"),
    }
    # Two names that share their first 47 characters: a truncated head would be one RayJob name.
    head = "reviews-" + "x" * 50
    honest = {
        "classy": a_job("classy", namespace, queue=queues, priorityClassName=f"{namespace}-normal"),
        f"{head}-one": a_job(f"{head}-one", namespace, queue=queues),
        f"{head}-two": a_job(f"{head}-two", namespace, queue=queues),
    }
    for body in [*(job for job, _ in attacks.values()), *honest.values()]:
        created = tenant("create", "-f", "-", input=json.dumps(body))
        assert created.returncode == 0, created.stderr

    # Zero GPUs x 4096 workers x 100,000 CPUs on a GPU pool: the API server refuses it, naming the field.
    free_ride = a_job("free-ride", namespace, queue=queues)
    free_ride["spec"]["resources"] = {"workers": 4096, "gpusPerWorker": 0, "cpuPerWorker": "100000"}
    refused = tenant("create", "-f", "-", input=json.dumps(free_ride))
    assert refused.returncode != 0
    assert "spec.resources.gpusPerWorker" in refused.stderr, refused.stderr

    for name, (_, fragment) in attacks.items():
        ready = wait_for(lambda: ready_condition(tenant, name), 60, f"{name}'s condition")
        assert ready["reason"] == "InvalidSpec" and fragment in ready["message"], (name, ready)
        assert (get_json(cluster, "transferjob", name, "-n", namespace).get("status") or {}).get(
            "phase"
        ) == "Pending"

    rayjobs: dict[str, str] = {}
    for name in honest:
        status = wait_for(
            lambda: (
                (s := get_json(cluster, "transferjob", name, "-n", namespace).get("status") or {}).get(
                    "rayJobName"
                )
                and s
            ),
            90,
            f"{name} admitted",
        )
        rayjobs[name] = status["rayJobName"]
    assert len(set(rayjobs.values())) == len(honest)  # no two jobs share a RayJob
    uids = {
        name: get_json(cluster, "transferjob", name, "-n", namespace)["metadata"]["uid"] for name in honest
    }
    for name, rayjob in rayjobs.items():
        body = wait_for(
            lambda: get_or_none(cluster, "rayjob", rayjob, "-n", namespace), 60, f"RayJob {rayjob}"
        )
        assert [o["uid"] for o in body["metadata"]["ownerReferences"]] == [uids[name]]
    # Neither of the colliding pair can delete the other's RayJob: deleting one leaves the other's.
    cluster.kubectl("delete", "transferjob", f"{head}-one", "-n", namespace, "--wait=false")
    wait_for(
        lambda: get_or_none(cluster, "rayjob", rayjobs[f"{head}-one"], "-n", namespace) is None,
        90,
        "RayJob collected",
    )
    assert get_or_none(cluster, "rayjob", rayjobs[f"{head}-two"], "-n", namespace) is not None
    assert "Traceback" not in operator.log()


def assert_isolated(cluster: devcluster.Cluster, namespace: str, rayjob: str) -> None:
    """As the API server holds them: the namespace's NetworkPolicy (the operator's, written by
    server-side apply) selects every pod of the job's RayCluster and admits only job pods of the
    namespace and peers named by namespace; the RayJob runs with Ray token auth from its own
    Secret. (kwok pods have no network: packets are checked against a real Ray in
    test_ray_auth.py.)"""
    policy = wait_for(
        lambda: get_or_none(cluster, "networkpolicy", NAMESPACE_POLICY, "-n", namespace), 60, "policy"
    )
    assert policy["metadata"]["labels"]["transfer.dev/isolation"] == "namespace"
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for rule in policy["spec"]["ingress"]:
        for source in rule["from"]:
            # Either the job's own pods, or pods of one named namespace: never "any namespace".
            assert source == {"podSelector": {"matchLabels": selector}} or set(
                source["namespaceSelector"]["matchLabels"]
            ) == {"kubernetes.io/metadata.name"}, source
    body = wait_for(lambda: get_or_none(cluster, "rayjob", rayjob, "-n", namespace), 60, "the RayJob")
    assert body["spec"]["rayClusterSpec"]["authOptions"] == {
        "mode": "token",
        "secretName": f"{rayjob}-ray-token",
    }
    pods = wait_for(
        lambda: get_json(cluster, "pods", "-n", namespace, "-l", "ray.io/node-type=head")["items"],
        90,
        "head pod",
    )
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        assert all(labels.get(k) == v for k, v in selector.items()), labels


def test_a_queue_with_quota_for_one_gpu_type_places_its_jobs_on_that_type(
    cluster: devcluster.Cluster, operator: OperatorProcess, namespace: str, tenant: Any
) -> None:
    """Quotas are per GPU type: a queue with 1 H100 and no A100 puts a job of any type on an
    H100 pool (A100 is cheaper per GPU-hour), and a 2-GPU job waits naming both types."""
    keep_ray_jobs_running(cluster, namespace)
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    queue = transfer_queue(f"{namespace}-typed", {"H100": 1}, namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(queue))
    try:
        any_type = {"workers": 1, "gpusPerWorker": 1, "estimatedHours": 0.5}
        jobs = {name: a_job(name, namespace, queue=f"{namespace}-typed") for name in ("fits", "waits")}
        jobs["fits"]["spec"]["resources"] = any_type  # no gpuType (a_job merges into its A100)
        jobs["waits"]["spec"]["resources"] = {**any_type, "gpusPerWorker": 2}
        for body in jobs.values():
            created = tenant("create", "-f", "-", input=json.dumps(body))
            assert created.returncode == 0, created.stderr
        status = wait_for(
            lambda: (
                (s := get_json(cluster, "transferjob", "fits", "-n", namespace).get("status") or {}).get(
                    "placement"
                )
                and s
            ),
            90,
            "fits admitted",
        )
        assert status["placement"]["gpuType"] == "H100", status["placement"]
        assert_isolated(cluster, namespace, status["rayJobName"])
        ready = wait_for(
            lambda: (r := ready_condition(tenant, "waits")) and r["reason"] != "NoFittingPool" and r,
            90,
            "waits' quota condition",
        )
        assert ready["reason"] == "QuotaExceeded", ready
        message = ready["message"]
        assert "0 A100 GPUs in use + 2 requested > nominal quota 0 for A100" in message, message
        # 0 or 1 H100 in use: "fits" may be decided before or after "waits" in the cycle.
        assert "H100 GPUs in use + 2 requested > nominal quota 1 for H100" in message, message
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=json.dumps(queue), check=False)


@pytest.mark.parametrize("kind", ["rayjob", "transferjob"])
def test_foreground_deletion_is_not_blocked_by_the_token_secret(
    cluster: devcluster.Cluster, operator: OperatorProcess, namespace: str, kind: str
) -> None:
    """`kubectl delete --cascade=foreground` of a RayJob (or of its TransferJob) deletes its
    dependents first: the token Secret goes at once, while the RayCluster waits for its pods.
    KubeRay's RayJob finalizer reads the Secret only while the RayCluster exists (to stop the Ray
    job through the dashboard), so it retries until the RayCluster is gone, then builds a client
    without a token, fails to stop a job whose cluster is gone, and removes itself: the deletion
    completes. The RayJob is kept non-terminal (no submitter Job), so its finalizer does look
    for the Secret."""
    keep_ray_jobs_running(cluster, namespace)
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    queue = transfer_queue(f"{namespace}-fg", {"*": 8}, namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(queue))
    try:
        body = a_job("doomed", namespace, queue=f"{namespace}-fg")
        cluster.kubectl("create", "-f", "-", input=json.dumps(body))
        rayjob = wait_for(
            lambda: (get_json(cluster, "transferjob", "doomed", "-n", namespace).get("status") or {}).get(
                "rayJobName"
            ),
            90,
            "doomed admitted",
        )
        secret = f"{rayjob}-ray-token"
        wait_for(lambda: get_or_none(cluster, "secret", secret, "-n", namespace), 60, "the token Secret")
        rayjob_body = wait_for(
            lambda: (
                (r := get_or_none(cluster, "rayjob", rayjob, "-n", namespace))
                and "ray.io/rayjob-finalizer" in (r["metadata"].get("finalizers") or [])
                and (r.get("status") or {}).get("rayClusterName")
                and r
            ),
            90,
            "KubeRay's finalizer and RayCluster",
        )
        raycluster = rayjob_body["status"]["rayClusterName"]
        wait_for(
            lambda: get_or_none(cluster, "raycluster", raycluster, "-n", namespace), 60, "the RayCluster"
        )
        uids = {
            what: get_json(cluster, what, name, "-n", namespace)["metadata"]["uid"]
            for what, name in (("rayjob", rayjob), ("secret", secret), ("raycluster", raycluster))
        }

        def gone(what: str, name: str) -> bool:
            # The operator creates a lost RayJob again under the same name (and its Secret): a
            # new uid is a new object.
            found = get_or_none(cluster, what, name, "-n", namespace)
            return found is None or found["metadata"]["uid"] != uids[what]

        target = ("rayjob", rayjob) if kind == "rayjob" else ("transferjob", "doomed")
        started = time.monotonic()
        cluster.kubectl("delete", *target, "-n", namespace, "--cascade=foreground", "--wait=false")
        wait_for(lambda: gone("rayjob", rayjob), 120, "RayJob deleted")
        took_s = time.monotonic() - started
        assert gone("secret", secret) and gone("raycluster", raycluster)
        if kind == "transferjob":
            wait_for(
                lambda: get_or_none(cluster, "transferjob", "doomed", "-n", namespace) is None,
                60,
                "TransferJob deleted",
            )
        kuberay_log = Path(cluster.processes["kuberay-operator"].log).read_text(errors="replace")
        missed = f"failed to get auth secret {namespace}/{secret}" in kuberay_log
        print(
            f"\n{kind} foreground deletion: RayJob gone after {took_s:.1f}s; KubeRay missed the Secret: {missed}"
        )
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=json.dumps(queue), check=False)
