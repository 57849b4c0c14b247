"""Elastic pools on the real control plane with the real Karpenter (its kwok provider): a job that
fits no existing node is admitted onto nodes to buy, Karpenter launches NodeClaims for its Pending
pods, kwok nodes join with the pool's labels and taints, kube-scheduler binds the pods, the job
runs and ends, and the empty nodes are consolidated away; an elastic gang starts at the size that
can be had; a NodeClaim that never becomes ready sends its job back to the queue with the reason,
and the claim is released.

Karpenter is built by `hack/controlplane/build-component.sh karpenter` (~5 min cold, Go); without
the binary these tests skip, saying so, unless TRANSFER_E2E_KARPENTER=require (then they fail).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.api.manifests import gpupool_manifest, transferjob_manifest
from transfer_operator.devcluster import karpenter
from transfer_operator.devcluster.binaries import BinariesMissing
from transfer_operator.devcluster.processes import stop
from transfer_operator.devcluster.raysim import RUN_SECONDS_ANNOTATION
from transfer_operator.engine.elastic_pool import NODEPOOL_LABEL

from .conftest import OperatorProcess, event_messages, get_json, keep_ray_jobs_running, pods_report, wait_for
from .test_faults import invariant_violations, record

REQUIRE_ENV = "TRANSFER_E2E_KARPENTER"
GPU = "B200"  # no static pool of the e2e fleet has it: only bought nodes can take these jobs
NODE_CLASS = karpenter.NODE_CLASS
SLOW_CLASS = {**NODE_CLASS, "name": "never-ready"}


def elastic_pool(
    name: str, max_nodes: int, node_class: dict[str, str], gpu: str = GPU, timeout_s: int = 300, min_nodes: int = 0
) -> dict[str, Any]:
    return gpupool_manifest(
        name,
        region="eu-west",
        zone="eu-west-1a",
        gpuType=gpu,
        nodes=0,
        gpusPerNode=8,
        pricing={"onDemandPerGpuHour": 5.0},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        scaling={
            "maxNodes": max_nodes,
            "minNodes": min_nodes,
            "nodeClassRef": node_class,
            "nodeStartupSeconds": 5,
            "provisioningTimeoutSeconds": timeout_s,
        },
    )


SLOW_GPU = "GB200"  # the never-ready pool's, so that only its jobs go there
FLOOR_GPU = "GH200"  # the warm-floor pool's
POOLS = [
    elastic_pool("e2e-elastic", 2, NODE_CLASS),
    elastic_pool("e2e-never-ready", 1, SLOW_CLASS, gpu=SLOW_GPU, timeout_s=20),
    elastic_pool("e2e-floor", 2, NODE_CLASS, gpu=FLOOR_GPU, min_nodes=1),
]


@pytest.fixture(scope="module")
def provisioner(cluster: devcluster.Cluster) -> Iterator[None]:
    """Karpenter's kwok provider against the session's cluster, for this module only."""
    try:
        karpenter.start(cluster, POOLS, build=os.environ.get(REQUIRE_ENV) == "require")
    except BinariesMissing as missing:
        pytest.skip(f"Karpenter's kwok provider is not built ({missing}); set {REQUIRE_ENV}=require to build it")
    karpenter.apply_node_class(cluster, "never-ready", "1h")
    yield
    record = cluster.processes.get(karpenter.COMPONENT)
    if record is not None:
        stop(record)


@pytest.fixture(scope="module")
def elastic_fleet(cluster: devcluster.Cluster, provisioner: None, operator: OperatorProcess) -> Iterator[None]:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(POOLS))
    yield
    names = [pool["metadata"]["name"] for pool in POOLS]
    cluster.kubectl("delete", "gpupool", *names, "--wait=false", check=False)
    # While Karpenter still runs: its NodeClaims' finalizers need it.
    floors = [f"{name}-floor" for name in names]
    cluster.kubectl("delete", "nodepool", *names, *floors, "--ignore-not-found", check=False, timeout_s=120)


def a_job(name: str, run_seconds: int, gpu: str = GPU, **resources: Any) -> dict[str, Any]:
    job = transferjob_manifest(
        name,
        resources={"gpusPerWorker": 8, "gpuType": gpu, **resources},
        placement={"regions": ["eu-west"]},
    )
    job["metadata"]["annotations"] = {RUN_SECONDS_ANNOTATION: str(run_seconds)}
    return job


def pool_status(cluster: devcluster.Cluster, name: str) -> dict[str, Any]:
    return get_json(cluster, "gpupool", name).get("status") or {}


def claims_of(cluster: devcluster.Cluster, node_pool: str) -> list[dict[str, Any]]:
    return list(get_json(cluster, "nodeclaims", "-l", f"{NODEPOOL_LABEL}={node_pool}")["items"])


def nodes_of(cluster: devcluster.Cluster, node_pool: str) -> list[dict[str, Any]]:
    return list(get_json(cluster, "nodes", "-l", f"{NODEPOOL_LABEL}={node_pool}")["items"])


def job_status(cluster: devcluster.Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "transferjob", name, "-n", namespace).get("status") or {}


def bound_pods(cluster: devcluster.Cluster, namespace: str, name: str, at_least: int) -> list[dict[str, Any]] | None:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", f"transfer.dev/job={name}")["items"]
    ray = [p for p in pods if "ray.io/node-type" in p["metadata"].get("labels", {})]
    return ray if len(ray) >= at_least and all(p["spec"].get("nodeName") for p in ray) else None


def test_a_job_that_fits_no_node_grows_the_pool_runs_and_the_pool_shrinks_back(
    cluster: devcluster.Cluster, elastic_fleet: None, namespace: str
) -> None:
    wait_for(
        lambda: pool_status(cluster, "e2e-elastic").get("conditions"), 60, "the elastic pool's Ready condition"
    )
    ready = next(c for c in pool_status(cluster, "e2e-elastic")["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    node_pool = get_json(cluster, "nodepool", "e2e-elastic")  # generated by the operator
    assert node_pool["spec"]["limits"] == {"nvidia.com/gpu": "16"}
    assert nodes_of(cluster, "e2e-elastic") == []

    started = time.monotonic()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(a_job("grow", run_seconds=20)))
    placed = wait_for(
        lambda: (s := job_status(cluster, namespace, "grow")).get("placement") and s, 60, "grow admitted"
    )
    assert placed["placement"]["pool"] == "e2e-elastic"
    admitted = wait_for(lambda: event_messages(cluster, namespace, "grow", "Admitted"), 30, "the Admitted event")
    assert "nodes to be bought" in admitted[0], admitted
    wait_for(lambda: claims_of(cluster, "e2e-elastic"), 60, "Karpenter's NodeClaim for the Pending pods")
    pods = wait_for(lambda: bound_pods(cluster, namespace, "grow", 2), 120, "the pods bound to a bought node")
    node = get_json(cluster, "node", pods[0]["spec"]["nodeName"])
    labels = node["metadata"]["labels"]
    assert labels[NODEPOOL_LABEL] == "e2e-elastic" and labels["transfer.dev/pool"] == "e2e-elastic"
    assert labels["node.kubernetes.io/instance-type"] == "b200-8x"
    assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in [
        {k: t[k] for k in ("key", "effect")} for t in node["spec"].get("taints") or []
    ]
    bound_s = time.monotonic() - started
    status = wait_for(
        lambda: (s := pool_status(cluster, "e2e-elastic")).get("nodes", {}).get("ready") == 1 and s,
        60,
        "status.nodes.ready 1",
    )
    assert status["nodes"]["bought"] >= 1 and status["allocatedGpus"] == 8
    wait_for(lambda: job_status(cluster, namespace, "grow").get("phase") == "Succeeded", 180, "grow Succeeded")
    # The job's pods are gone: Karpenter consolidates the empty node (consolidateAfter 30 s).
    wait_for(lambda: not nodes_of(cluster, "e2e-elastic"), 180, "the bought node consolidated away")
    wait_for(lambda: not claims_of(cluster, "e2e-elastic"), 60, "no NodeClaim left")
    status = wait_for(
        lambda: (s := pool_status(cluster, "e2e-elastic")).get("nodes", {}).get("released", 0) >= 1 and s,
        60,
        "status.nodes.released",
    )
    assert status["nodes"]["ready"] == 0 and status["freeGpus"] == 0
    print(f"\nelastic e2e: pods bound on a bought node {bound_s:.1f}s after the job was applied")


def test_an_elastic_gang_starts_at_the_size_that_can_be_bought(
    cluster: devcluster.Cluster, elastic_fleet: None, namespace: str
) -> None:
    """minWorkers 1, maxWorkers 4 of 8 GPUs on a pool that may buy 2 nodes of 8: it runs with 2."""
    job = a_job("gang", run_seconds=15, minWorkers=1, maxWorkers=4)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job))
    placed = wait_for(
        lambda: (s := job_status(cluster, namespace, "gang")).get("placement") and s, 60, "gang admitted"
    )
    assert placed["placement"]["pool"] == "e2e-elastic" and placed["placement"]["gpus"] == 16, placed
    rayjob = get_json(cluster, "rayjob", placed["rayJobName"], "-n", namespace)
    assert rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 2
    pods = wait_for(lambda: bound_pods(cluster, namespace, "gang", 3), 180, "head and 2 workers bound")
    assert len({p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"]["ray.io/node-type"] == "worker"}) == 2
    wait_for(lambda: job_status(cluster, namespace, "gang").get("phase") == "Succeeded", 180, "gang Succeeded")
    wait_for(lambda: not nodes_of(cluster, "e2e-elastic"), 180, "the pool back to no node")


def test_min_nodes_keeps_a_warm_node_that_a_job_takes_without_buying_and_that_outlives_it(
    cluster: devcluster.Cluster, elastic_fleet: None, namespace: str
) -> None:
    """minNodes 1: the operator's static floor NodePool (Karpenter's StaticCapacity) keeps one node;
    a job lands on it at once, nothing is bought, and the idle node stays past consolidateAfter."""
    floor = wait_for(lambda: [n for n in nodes_of(cluster, "e2e-floor-floor") if node_ready(n)], 120, "the floor node")
    assert len(floor) == 1
    wait_for(lambda: pool_status(cluster, "e2e-floor").get("nodes", {}).get("ready") == 1, 60, "status.nodes.ready 1")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(a_job("warm", run_seconds=10, gpu=FLOOR_GPU)))
    placed = wait_for(lambda: (s := job_status(cluster, namespace, "warm")).get("placement") and s, 60, "warm admitted")
    assert placed["placement"]["pool"] == "e2e-floor" and "nodes to be bought" not in placed["message"], placed
    pods = wait_for(lambda: bound_pods(cluster, namespace, "warm", 2), 90, "warm's pods bound")
    assert {p["spec"]["nodeName"] for p in pods} == {floor[0]["metadata"]["name"]}
    assert claims_of(cluster, "e2e-floor") == []  # the NodePool that buys bought nothing
    wait_for(lambda: job_status(cluster, namespace, "warm").get("phase") == "Succeeded", 120, "warm Succeeded")
    cluster.kubectl("delete", "transferjob", "warm", "-n", namespace)
    wait_for(lambda: not bound_pods(cluster, namespace, "warm", 1), 90, "warm's pods gone")
    time.sleep(40)  # past consolidateAfter (30 s): an empty node of the buying NodePool would go
    assert [n["metadata"]["name"] for n in nodes_of(cluster, "e2e-floor-floor")] == [floor[0]["metadata"]["name"]]


def node_ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (node.get("status") or {}).get("conditions") or [])


def test_a_nodeclaim_that_never_gets_ready_sends_the_job_back_with_the_reason(
    cluster: devcluster.Cluster, elastic_fleet: None, namespace: str
) -> None:
    """KWOKNodeClass never-ready registers its nodes after an hour: the job's pods find no node
    within the pool's 20 s provisioning timeout."""
    job = a_job("stuck", run_seconds=15, gpu=SLOW_GPU)
    job["spec"]["maxAttempts"] = 1
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job))
    placed = wait_for(
        lambda: (s := job_status(cluster, namespace, "stuck")).get("placement") and s, 60, "stuck admitted"
    )
    assert placed["placement"]["pool"] == "e2e-never-ready"
    wait_for(lambda: claims_of(cluster, "e2e-never-ready"), 90, "a NodeClaim for stuck")

    def requeued() -> dict[str, Any] | None:
        status = job_status(cluster, namespace, "stuck")
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        ready = conditions.get("Ready") or {}
        return status if ready.get("reason") in ("ProvisioningTimedOut", "MaxAttemptsReached") else None

    started = time.monotonic()
    status = wait_for(requeued, 120, "stuck back in the queue (ProvisioningTimedOut)")
    recovery_s = time.monotonic() - started
    events = get_json(cluster, "events", "-n", namespace, "--field-selector", "involvedObject.name=stuck")["items"]
    timed_out = [e for e in events if e["reason"] == "ProvisioningTimedOut"]
    assert timed_out and "found no node" in timed_out[0]["message"], status
    wait_for(lambda: not claims_of(cluster, "e2e-never-ready"), 90, "the never-ready NodeClaim released")
    violations = invariant_violations(cluster, namespace, ["stuck"])
    # recovery: from the claim's launch to the job back in the queue (the 20 s timeout included)
    record("a NodeClaim that never becomes ready", 1, violations, recovery_s)
    assert not any(violations.values()), violations


def test_karpenter_disrupting_a_node_under_a_running_job_loses_nothing(
    cluster: devcluster.Cluster, elastic_fleet: None, namespace: str, operator: OperatorProcess
) -> None:
    """The NodeClaim under a running job is deleted (as a consolidation, drift or expiry would):
    Karpenter taints the node karpenter.sh/disrupted and drains it; the job goes back to the
    queue at once (SpotInterrupted: the taint announces the node's end), is placed again on a
    node bought anew, and keeps exactly one live RayJob throughout."""
    keep_ray_jobs_running(cluster, namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(a_job("moved", run_seconds=600)))
    pods = wait_for(lambda: bound_pods(cluster, namespace, "moved", 2), 180, "moved's pods on a bought node")
    node = pods[0]["spec"]["nodeName"]
    claim = next(c for c in claims_of(cluster, "e2e-elastic") if (c.get("status") or {}).get("nodeName") == node)
    wait_for(lambda: job_status(cluster, namespace, "moved").get("phase") in ("Admitted", "Running"), 60, "moved holds")
    started = time.monotonic()
    cluster.kubectl("delete", "nodeclaim", claim["metadata"]["name"], "--wait=false")

    def replaced() -> dict[str, Any] | None:
        status = job_status(cluster, namespace, "moved")
        return status if status.get("attempts") == 2 and status.get("placement") else None

    try:
        status = wait_for(replaced, 180, "moved placed again (attempt 2)")
    except AssertionError as error:
        raise AssertionError(
            f"{error}\njob: {job_status(cluster, namespace, 'moved')}\npool: {pool_status(cluster, 'e2e-elastic')}\n"
            f"claims: {[(c['metadata']['name'], c.get('status', {}).get('nodeName'), c['metadata'].get('deletionTimestamp')) for c in claims_of(cluster, 'e2e-elastic')]}\n"
            f"nodes: {[(n['metadata']['name'], n['spec'].get('taints')) for n in nodes_of(cluster, 'e2e-elastic')]}\n"
            f"pods: {pods_report(cluster, namespace, 'transfer.dev/job=moved')}\n"
            f"operator log: {operator.log_path.read_text()[-6000:]}"
        ) from None
    recovery_s = time.monotonic() - started
    assert status["placement"]["pool"] == "e2e-elastic"
    new_pods = wait_for(lambda: bound_pods(cluster, namespace, "moved", 2), 180, "attempt 2's pods bound")
    assert all(p["metadata"]["labels"]["transfer.dev/attempt"] == "2" or p["spec"]["nodeName"] != node for p in new_pods)
    violations = invariant_violations(cluster, namespace, ["moved"])
    record("Karpenter disrupts the node under a running job", 1, violations, recovery_s)
    assert not any(violations.values()), violations
    cluster.kubectl("delete", "transferjob", "moved", "-n", namespace)
    wait_for(lambda: not nodes_of(cluster, "e2e-elastic"), 240, "the pool back to no node")
