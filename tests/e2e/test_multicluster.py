"""One operator, three clusters (`dev-cluster up --clusters 2`: a management cluster with a local
pool and two worker clusters): jobs land in both workers, a deleted job's remote RayJob goes, a
worker whose kube-apiserver is SIGKILLed loses its jobs to the other worker (ClusterLost), and
when it comes back no second live RayJob of a job exists anywhere."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
import yaml

from transfer_operator.api.manifests import gpupool_manifest, transferjob_manifest
from transfer_operator.dashboards import cluster_expressions
from transfer_operator.devcluster import cluster as cluster_mod
from transfer_operator.devcluster import fleet as fleet_mod
from transfer_operator.devcluster import karpenter, objectstore
from transfer_operator.devcluster.binaries import BinariesMissing
from transfer_operator.devcluster.nodes import load_pools
from transfer_operator.devcluster.processes import stop as stop_process
from transfer_operator.engine.elastic_pool import NODEPOOL_LABEL

from .conftest import (
    CHART,
    EXAMPLES,
    RELEASE_NAMESPACE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    get_json,
    get_or_none,
    keep_ray_jobs_running,
    pods_report,
    wait_for,
)
from .prometheus import Prometheus, assert_every_query_returns_data, shipped_queries
from .test_failover import (
    MAX_STEPS,
    resumable_training,
    run_rayjob_locally,
    run_resumed_attempt,
    stop,
    wait_for_first_checkpoint,
)
from .test_faults import record
from .test_s3_resume import s3_checkpoint_steps

POOLS = Path(__file__).resolve().parents[2] / "manifests" / "multicluster" / "pools.yaml"
NAMESPACE = "mc"
CHECKPOINT_ROOT = f"s3://{fleet_mod.STORAGE_BUCKET}/checkpoints"  # the operator's storage.checkpointRoot
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fleet_mod.Fleet]:
    state = tmp_path_factory.mktemp("fleet")
    pools = load_pools(POOLS)
    running = fleet_mod.up(state, pools, clusters=2, s3=True, max_nodes_per_pool=1)
    try:
        management = running.management
        management.helm(
            "upgrade",
            "--install",
            "transfer-operator",
            str(CHART),
            "-n",
            RELEASE_NAMESPACE,
            "--set",
            "replicas=0",
        )
        management.kubectl("apply", "-f", str(POOLS))
        for name in running.workers:  # lost after 10 s (the least allowed), to keep the test short
            management.kubectl(
                "patch",
                "transfercluster",
                name,
                "--type=merge",
                "-p",
                '{"spec":{"clusterLostAfterSeconds":10}}',
            )
        for member in [management, *running.workers.values()]:
            member.kubectl("create", "namespace", NAMESPACE)
        assert running.store is not None
        storage = fleet_mod.storage_secret(NAMESPACE, running.store)
        for worker in running.workers.values():
            keep_ray_jobs_running(worker, NAMESPACE)  # the jobs stay Running while the test looks
            # The admin's storage Secret in each worker (docs/multicluster.md): pods read it by envFrom.
            worker.kubectl("apply", "-f", "-", input=json.dumps(storage))
        yield running
    finally:
        fleet_mod.down(state)


@pytest.fixture(scope="module")
def operator(fleet: fleet_mod.Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = fleet.management.service_account_kubeconfig(
        SERVICE_ACCOUNT, RELEASE_NAMESPACE, workdir / "kubeconfig"
    )
    settings = {"storage": {"checkpointRoot": CHECKPOINT_ROOT, "credentialsSecret": fleet_mod.STORAGE_SECRET}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(settings))
    process = OperatorProcess(kubeconfig, workdir / "operator.log", config=workdir / "config.yaml")
    process.start()
    yield process
    process.kill(signal.SIGTERM)
    print(process.log()[-6000:])


@pytest.fixture(scope="module")
def prometheus(operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Scrapes the operator from its start, so the cluster dashboard sees every loss of this module."""
    server = Prometheus.start(
        tmp_path_factory.mktemp("prometheus"), {"transfer-operator": f"127.0.0.1:{operator.metrics_port}"}
    )
    yield server
    server.stop()


def apply_job(fleet: fleet_mod.Fleet, name: str, regions: list[str], **spec: Any) -> None:
    manifest = transferjob_manifest(
        name,
        resources={"workers": 1, "gpusPerWorker": 4, "gpuType": "A100"},
        placement={"regions": regions},
        **spec,
    )
    manifest["metadata"]["namespace"] = NAMESPACE
    fleet.management.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))


def status_of(fleet: fleet_mod.Fleet, name: str) -> dict[str, Any]:
    return get_json(fleet.management, "transferjob", name, "-n", NAMESPACE).get("status") or {}


def rayjobs_in(worker: cluster_mod.Cluster) -> dict[str, dict[str, Any]]:
    items = get_json(worker, "rayjobs", "-n", NAMESPACE)["items"]
    return {r["metadata"]["name"]: r for r in items if not r["metadata"].get("deletionTimestamp")}


def live_attempts(fleet: fleet_mod.Fleet, job: str) -> list[tuple[str, str]]:
    """(cluster, RayJob) of every live RayJob of `job` in every worker."""
    return [
        (cluster, name)
        for cluster, worker in fleet.workers.items()
        for name, rayjob in rayjobs_in(worker).items()
        if rayjob["metadata"]["labels"].get("transfer.dev/origin-name") == job
    ]


def earlier_attempts_pods(fleet: fleet_mod.Fleet, job: str) -> list[str]:
    """cluster/pod of every pod of `job` in a worker from an attempt before the current one: the
    nodes they run on are not free until they go (the operator counts them as taken)."""
    attempt = str(status_of(fleet, job).get("attempts") or 1)
    return [
        f"{cluster}/{pod['metadata']['name']}"
        for cluster, worker in fleet.workers.items()
        for pod in get_json(worker, "pods", "-n", NAMESPACE, "-l", f"transfer.dev/job={job}")["items"]
        if pod["metadata"]["labels"].get("transfer.dev/attempt") != attempt
    ]


def placed_in(fleet: fleet_mod.Fleet, name: str, attempt: int) -> str:
    def placed() -> str | None:
        status = status_of(fleet, name)
        placement = status.get("placement") or {}
        return placement.get("cluster") if status.get("attempts") == attempt else None

    return wait_for(placed, 120, f"{name} placed in a worker cluster (attempt {attempt})")


WAITING = {"reviews-distill": "BudgetTooLow"}  # examples that wait by design, with their reason


def test_the_examples_land_in_their_pools_clusters(
    fleet: fleet_mod.Fleet, operator: OperatorProcess, prometheus: Prometheus
) -> None:
    """`kubectl apply` of the example TransferJobs on the management cluster (the fleet's pools,
    manifests/multicluster/pools.yaml, stand in for examples/pools.yaml): each job's RayJob is
    created in the cluster of the pool it is placed on, pinned to that pool, and the jobs span
    a worker cluster and the management cluster's own pool. reviews-distill waits with
    BudgetTooLow, as its manifest says (its only pool, us-east-h100, costs more than its budget)."""
    examples = [
        document
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and document["kind"] == "TransferJob"
    ]
    for worker in fleet.workers.values():
        keep_ray_jobs_running(worker, "default")
    keep_ray_jobs_running(fleet.management, "default")
    for document in examples:
        fleet.management.kubectl("apply", "-f", "-", input=yaml.safe_dump(document))
    names = [d["metadata"]["name"] for d in examples]
    members = {None: fleet.management, **fleet.workers}

    def landed() -> dict[str, str | None] | None:
        where: dict[str, str | None] = {}
        for name in names:
            status = get_json(fleet.management, "transferjob", name, "-n", "default").get("status") or {}
            if name in WAITING:
                if WAITING[name] not in {c["reason"] for c in status.get("conditions") or []}:
                    return None
                continue
            placement = status.get("placement")
            if not placement:
                return None
            rayjob = get_or_none(
                members[placement.get("cluster")], "rayjob", status["rayJobName"], "-n", "default"
            )
            if rayjob is None:
                return None
            template = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
            assert template["nodeSelector"] == {"transfer.dev/pool": placement["pool"]}, name
            where[name] = placement.get("cluster")
        return where

    try:
        where = wait_for(landed, 180, "every example placed, its RayJob in its pool's cluster")
        assert len(set(where.values())) >= 2 and None in where.values(), where  # ap-south-l4 is local
    except AssertionError as failure:
        messages = {
            j["metadata"]["name"]: (j.get("status") or {}).get("message")
            for j in get_json(fleet.management, "transferjobs", "-n", "default")["items"]
        }
        raise AssertionError(f"{failure}: {messages}") from None
    finally:  # their GPUs free for the next tests, pass or fail
        fleet.management.kubectl(
            "delete", "transferjobs", "--all", "-n", "default", "--wait=true", "--timeout=120s"
        )
        for cluster, member in members.items():
            wait_for(
                lambda m=member: (
                    not any(
                        not r["metadata"].get("deletionTimestamp")
                        for r in get_json(m, "rayjobs", "-n", "default")["items"]
                    )
                    or None
                ),
                120,
                f"the examples' RayJobs deleted in {cluster or 'the management cluster'}",
            )


def test_jobs_are_dispatched_deleted_and_moved_on_cluster_loss(
    fleet: fleet_mod.Fleet, operator: OperatorProcess
) -> None:
    us, eu = fleet.workers["us-east"], fleet.workers["eu-west"]
    apply_job(fleet, "east", ["us-east"])
    apply_job(fleet, "west", ["eu-west"])
    assert placed_in(fleet, "east", 1) == "us-east"
    assert placed_in(fleet, "west", 1) == "eu-west"

    # Each RayJob is in its own worker cluster, with origin labels and no owner reference; KubeRay
    # there makes the Ray cluster and kube-scheduler binds its pods to that cluster's kwok nodes.
    for worker, job, pool in ((us, "east", "us-east-a100"), (eu, "west", "eu-west-a100")):
        name = status_of(fleet, job)["rayJobName"]
        rayjob = wait_for(lambda w=worker, n=name: rayjobs_in(w).get(n), 60, f"RayJob {name} in its worker")
        labels = rayjob["metadata"]["labels"]
        assert (
            labels["transfer.dev/origin-name"] == job and labels["transfer.dev/origin-namespace"] == NAMESPACE
        )
        assert not rayjob["metadata"].get("ownerReferences")
        assert rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["nodeSelector"] == {
            "transfer.dev/pool": pool
        }

        def bound(w: cluster_mod.Cluster = worker, j: str = job) -> set[str] | None:
            pods = get_json(w, "pods", "-n", NAMESPACE, "-l", f"transfer.dev/job={j}")["items"]
            nodes = {p["spec"].get("nodeName") for p in pods}
            return nodes if nodes and None not in nodes else None

        assert all(node.startswith(pool) for node in wait_for(bound, 90, f"pods of {name} bound"))
    assert (
        "transfer.dev/remote-cleanup"
        in get_json(fleet.management, "transferjob", "east", "-n", NAMESPACE)["metadata"]["finalizers"]
    )

    # Deleting a TransferJob removes its RayJob in the worker cluster (the finalizer's work).
    east_rayjob = status_of(fleet, "east")["rayJobName"]
    fleet.management.kubectl("delete", "transferjob", "east", "-n", NAMESPACE, "--wait=true", "--timeout=60s")
    wait_for(lambda: east_rayjob not in rayjobs_in(us) or None, 60, "east's RayJob deleted in us-east")

    # Let "west" move: it may now run in either worker. Kill eu-west's API server for longer than
    # clusterLostAfterSeconds; start it again later with the same flags.
    fleet.management.kubectl(
        "patch",
        "transferjob",
        "west",
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        '{"spec":{"placement":{"regions":["eu-west","us-east"]}}}',
    )
    old_rayjob = status_of(fleet, "west")["rayJobName"]
    restarted = threading.Thread(
        target=cluster_mod.restart, args=(eu, "kube-apiserver"), kwargs={"down_s": 45}
    )
    restarted.start()
    try:
        moved = wait_for(
            lambda: (
                (s := status_of(fleet, "west")).get("attempts") == 2
                and (s.get("placement") or {}).get("cluster")
            ),
            90,
            "west re-placed after losing eu-west",
        )
        assert moved == "us-east"
        conditions = {c["type"]: c for c in status_of(fleet, "west")["conditions"]}
        history = fleet.management.kubectl(
            "get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=west", "-o", "yaml"
        ).stdout
        assert "ClusterLost" in history, conditions
        lost = get_json(fleet.management, "transfercluster", "eu-west")["status"]
        assert lost["reachable"] is False
        assert {c["type"]: c["reason"] for c in lost["conditions"]}["Ready"] == "Unreachable"
    finally:
        restarted.join()

    # eu-west is back: the orphaned attempt there is deleted; one live RayJob of "west" in all.
    new_rayjob = status_of(fleet, "west")["rayJobName"]
    assert new_rayjob != old_rayjob
    wait_for(lambda: old_rayjob not in rayjobs_in(eu) or None, 120, "the old attempt deleted in eu-west")
    live = [
        name
        for w in (us, eu)
        for name, r in rayjobs_in(w).items()
        if r["metadata"]["labels"]["transfer.dev/origin-name"] == "west"
    ]
    assert live == [new_rayjob], live
    ready = wait_for(
        lambda: (get_json(fleet.management, "transfercluster", "eu-west").get("status") or {}).get(
            "reachable"
        ),
        60,
        "eu-west reachable again",
    )
    assert ready
    fleet.management.kubectl("delete", "transferjob", "west", "-n", NAMESPACE, "--wait=true", "--timeout=60s")
    wait_for(lambda: not live_attempts(fleet, "west") or None, 60, "west's RayJob deleted")  # its GPUs free
    for worker in (us, eu):  # the workers' credentials never reach the log
        token = yaml.safe_load((worker.state_dir / "operator-kubeconfig").read_text())["users"][0]["user"][
            "token"
        ]
        assert token not in operator.log()


LOSSES = int(os.environ.get("TRANSFER_CLUSTER_LOSSES", "2"))


def test_repeated_worker_cluster_losses_lose_and_double_nothing(
    fleet: fleet_mod.Fleet, operator: OperatorProcess
) -> None:
    """Kill the API server of the worker that holds both jobs, LOSSES times (alternating as the
    jobs move): every time both jobs are re-placed in the other worker, and once the lost one is
    back each job has exactly one live RayJob, the one its status names."""
    jobs = ["roam-a", "roam-b"]
    for job in jobs:  # every loss is one more attempt
        apply_job(fleet, job, ["eu-west", "us-east"], maxAttempts=min(100, LOSSES + 2))
    violations: dict[str, list[str]] = {"lost": [], "duplicated": [], "wrong": []}
    recoveries: list[float] = []
    for run in range(LOSSES):
        where = {job: placed_in(fleet, job, status_of(fleet, job).get("attempts") or 1) for job in jobs}
        victim = where[jobs[0]]
        attempts = {job: status_of(fleet, job)["attempts"] for job in jobs}
        started = time.monotonic()
        restart = threading.Thread(
            target=cluster_mod.restart, args=(fleet.workers[victim], "kube-apiserver"), kwargs={"down_s": 20}
        )
        restart.start()
        try:
            for job in jobs:
                if where[job] != victim:
                    continue
                try:
                    moved = wait_for(
                        lambda j=job: (
                            (s := status_of(fleet, j)).get("attempts", 0) > attempts[j]
                            and (s.get("placement") or {}).get("cluster")
                        ),
                        120,
                        f"{job} re-placed after losing {victim} (run {run})",
                    )
                except AssertionError:
                    violations["lost"].append(f"run {run}: {job}")
                    continue
                if moved == victim:
                    others = [c for c in fleet.workers if c != victim]
                    violations["wrong"].append(
                        f"run {run}: {job} placed in the lost cluster; in {others}: {pods_report(fleet.workers[others[0]], NAMESPACE, 'transfer.dev/job')}"
                    )
            recoveries.append(time.monotonic() - started)
        finally:
            restart.join()

        def settled() -> bool:
            return all(
                live_attempts(fleet, j)
                == [(((s := status_of(fleet, j)).get("placement") or {}).get("cluster"), s.get("rayJobName"))]
                for j in jobs
            )

        try:
            wait_for(settled, 120, f"one live RayJob per job after {victim} returned (run {run})")
        except AssertionError:
            for job in jobs:
                if len(live_attempts(fleet, job)) > 1:
                    violations["duplicated"].append(f"run {run}: {job}: {live_attempts(fleet, job)}")
                else:
                    violations["wrong"].append(f"run {run}: {job}: {live_attempts(fleet, job)}")
        wait_for(
            lambda v=victim: (get_json(fleet.management, "transfercluster", v).get("status") or {}).get(
                "reachable"
            ),
            60,
            f"{victim} reachable again",
        )
        # The next loss moves the jobs back here: the pods of their attempts here must be gone first.
        wait_for(lambda: not any(earlier_attempts_pods(fleet, j) for j in jobs), 120, f"{victim}'s old pods gone")
    record("worker cluster loss (kube-apiserver SIGKILL)", LOSSES, violations, max(recoveries, default=0.0))
    for job in jobs:  # their GPUs free for the next test
        fleet.management.kubectl(
            "delete", "transferjob", job, "-n", NAMESPACE, "--wait=true", "--timeout=60s"
        )
        wait_for(lambda j=job: not live_attempts(fleet, j) or None, 60, f"{job}'s RayJob deleted")
    assert not any(violations.values()), violations


def test_a_job_trained_in_a_lost_cluster_resumes_in_the_other_from_its_s3_checkpoint(
    fleet: fleet_mod.Fleet, operator: OperatorProcess, tmp_path: Path
) -> None:
    """Real training: attempt 1 (the RayJob the operator created in one worker, run on a local Ray
    as that cluster's Ray head would) writes checkpoints to the shared S3 store under the
    operator's checkpointRoot; its cluster is lost; attempt 2, rendered for the other worker,
    resumes from the S3 checkpoint at the last step and finishes, with the final model in S3."""
    assert fleet.store is not None
    prefix = CHECKPOINT_ROOT.removeprefix("s3://") + f"/{NAMESPACE}/trained"
    output = f"s3://{fleet_mod.STORAGE_BUCKET}/models/{NAMESPACE}/trained"
    apply_job(fleet, "trained", ["eu-west", "us-east"], output={"uri": output}, **resumable_training({}))
    first_cluster = placed_in(fleet, "trained", 1)
    first = status_of(fleet, "trained")
    assert first["lastCheckpoint"] == f"{CHECKPOINT_ROOT}/{NAMESPACE}/trained", "the operator's default"
    lost, other = (
        fleet.workers[first_cluster],
        next(w for n, w in fleet.workers.items() if n != first_cluster),
    )
    filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(fleet.store.credentials))

    restart = threading.Thread(
        target=cluster_mod.restart, args=(lost, "kube-apiserver"), kwargs={"down_s": 30}
    )
    attempt_1 = run_rayjob_locally(lost, NAMESPACE, first["rayJobName"], tmp_path / "attempt-1.log")
    try:
        wait_for_first_checkpoint(
            attempt_1, tmp_path / "attempt-1.log", lambda: s3_checkpoint_steps(filesystem, prefix)
        )
        interrupted = time.monotonic()
        restart.start()
        moved = wait_for(
            lambda: (
                (s := status_of(fleet, "trained")).get("attempts") == 2
                and (s.get("placement") or {}).get("cluster")
            ),
            120,
            "trained re-placed after its cluster was lost",
        )
        recovery_s = time.monotonic() - interrupted
    finally:
        stop(attempt_1)  # the lost region's Ray cluster goes down with it
        if restart.is_alive():
            restart.join()
    assert moved != first_cluster
    second = status_of(fleet, "trained")
    assert second["lastCheckpoint"] == first["lastCheckpoint"]
    assert "starts over" not in json.dumps(second["conditions"]), "shared storage: it resumes"
    interrupted_at = max(s3_checkpoint_steps(filesystem, prefix))
    assert interrupted_at < MAX_STEPS

    run_resumed_attempt(other, NAMESPACE, second["rayJobName"], tmp_path / "attempt-2.log", interrupted_at)
    resumed = s3_checkpoint_steps(filesystem, prefix, run="trained-attempt-2")
    assert resumed[0] == interrupted_at + 10 and resumed[-1] == MAX_STEPS, resumed
    manifest = output.removeprefix("s3://") + "/manifest.json"
    assert filesystem.get_file_info(manifest).type == pafs.FileType.File, "the final model is in S3"
    with filesystem.open_input_stream(manifest) as stream:
        assert json.loads(stream.read())["metrics"]["step"] == MAX_STEPS, "its manifest names the last step"
    # The lost cluster is back: its attempt is deleted there, and one live RayJob of the job remains.
    wait_for(lambda: first["rayJobName"] not in rayjobs_in(lost) or None, 120, "attempt 1 deleted")
    assert live_attempts(fleet, "trained") == [(moved, second["rayJobName"])]
    no_violations: dict[str, list[str]] = {"lost": [], "duplicated": [], "wrong": []}
    record("worker cluster loss during real training (resumed from S3)", 1, no_violations, recovery_s)
    fleet.management.kubectl(
        "delete", "transferjob", "trained", "-n", NAMESPACE, "--wait=true", "--timeout=60s"
    )


ELASTIC_GPU = "GB200"  # no other pool has it: only nodes bought in the worker take the job


def test_an_elastic_pool_of_a_worker_cluster_buys_and_releases_its_nodes_there(
    fleet: fleet_mod.Fleet, operator: OperatorProcess
) -> None:
    """A GPUPool of the us-east worker with 0 nodes and maxNodes 1: the operator writes its NodePool
    into the worker, the job goes onto nodes to buy, the worker's Karpenter buys one, the pods bind
    there, and once the job is deleted the node is consolidated away and counted as released."""
    worker = fleet.workers["us-east"]
    pool = gpupool_manifest(
        "us-east-elastic",
        region="us-east",
        zone="us-east-1b",
        gpuType=ELASTIC_GPU,
        nodes=0,
        gpusPerNode=8,
        pricing={"onDemandPerGpuHour": 5.0},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        cluster="us-east",
        scaling={"maxNodes": 1, "nodeClassRef": karpenter.NODE_CLASS, "nodeStartupSeconds": 5},
    )
    try:
        karpenter.start(worker, [pool], build=os.environ.get("TRANSFER_E2E_KARPENTER") == "require")
    except BinariesMissing as missing:
        pytest.skip(f"Karpenter's kwok provider is not built ({missing}); set TRANSFER_E2E_KARPENTER=require")
    try:
        fleet.management.kubectl("apply", "-f", "-", input=yaml.safe_dump(pool))

        def pool_ready() -> dict[str, Any] | None:
            status = get_json(fleet.management, "gpupool", "us-east-elastic").get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
            return ready if ready is not None and ready["status"] == "True" else None

        ready = wait_for(pool_ready, 60, "the worker's elastic pool Ready (its NodePool written there)")
        assert "in cluster us-east" in ready["message"], ready
        assert get_json(worker, "nodepool", "us-east-elastic")["spec"]["limits"] == {"nvidia.com/gpu": "8"}
        manifest = transferjob_manifest(
            "bought",
            resources={"workers": 1, "gpusPerWorker": 8, "gpuType": ELASTIC_GPU},
            placement={"regions": ["us-east"]},
        )
        manifest["metadata"]["namespace"] = NAMESPACE
        fleet.management.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        def bound() -> list[dict[str, Any]] | None:
            pods = get_json(worker, "pods", "-n", NAMESPACE, "-l", "transfer.dev/job=bought")["items"]
            ray = [p for p in pods if "ray.io/node-type" in p["metadata"].get("labels", {})]
            return ray if len(ray) >= 2 and all(p["spec"].get("nodeName") for p in ray) else None

        try:  # (the RayJob stays Initializing: the module keeps its submitter from running)
            pods = wait_for(bound, 180, "bought's pods bound in the worker")
        except AssertionError:
            print("status:", json.dumps(status_of(fleet, "bought"), indent=1))
            print(pods_report(worker, NAMESPACE, "transfer.dev/job=bought"))
            log = worker.state_dir / "logs" / "karpenter.log"
            print("karpenter:", log.read_text()[-6000:] if log.exists() else "(no log)")
            raise
        placement = status_of(fleet, "bought")["placement"]
        assert placement["pool"] == "us-east-elastic" and placement["cluster"] == "us-east", placement
        nodes = get_json(worker, "nodes", "-l", f"{NODEPOOL_LABEL}=us-east-elastic")["items"]
        assert len(nodes) == 1 and nodes[0]["metadata"]["labels"]["transfer.dev/pool"] == "us-east-elastic"
        assert {p["spec"]["nodeName"] for p in pods} == {nodes[0]["metadata"]["name"]}, pods

        def counted() -> dict[str, Any] | None:
            status = get_json(fleet.management, "gpupool", "us-east-elastic").get("status") or {}
            return status if (status.get("nodes") or {}).get("ready") == 1 else None

        assert wait_for(counted, 60, "status.nodes.ready 1")["nodes"]["bought"] >= 1
        fleet.management.kubectl("delete", "transferjob", "bought", "-n", NAMESPACE, "--wait=true", "--timeout=60s")
        wait_for(
            lambda: not get_json(worker, "nodes", "-l", f"{NODEPOOL_LABEL}=us-east-elastic")["items"],
            180,
            "the bought node consolidated away in the worker",
        )

        def released() -> dict[str, Any] | None:
            status = get_json(fleet.management, "gpupool", "us-east-elastic").get("status") or {}
            return status if (status.get("nodes") or {}).get("released", 0) >= 1 else None

        assert wait_for(released, 60, "status.nodes.released")["nodes"]["ready"] == 0
    finally:
        fleet.management.kubectl("delete", "gpupool", "us-east-elastic", "--wait=false", check=False)
        worker.kubectl("delete", "nodepool", "us-east-elastic", "--ignore-not-found", check=False, timeout_s=120)
        provider = worker.processes.get(karpenter.COMPONENT)
        if provider is not None:
            stop_process(provider)


def test_every_cluster_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    """After the losses above, each panel of the clusters dashboard (as the chart ships it) has data."""
    queries = shipped_queries(multicluster=True)
    assert len(queries) >= len(cluster_expressions())
    assert_every_query_returns_data(prometheus, queries, timeout_s=60)
