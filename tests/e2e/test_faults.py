"""Fault injection on the real control plane: the operator SIGKILLed at random points, and two
replicas at once. Afterwards every TransferJob has exactly the RayJobs its phase says (one while
it holds GPUs, none otherwise), none is lost, none is doubled.

TRANSFER_FAULT_RUNS sets the number of kills (CI: 10; the full run: 100). TRANSFER_FAULT_REPORT
names a JSON file to append the results to (benchmarks/reliability_report.py renders it).
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from transfer_operator import devcluster
from transfer_operator.api.manifests import transferjob_manifest

from .conftest import (
    EXAMPLES,
    RELEASE_NAMESPACE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    get_json,
    keep_ray_jobs_running,
    wait_for,
)

KILLS = int(os.environ.get("TRANSFER_FAULT_RUNS", "10"))
JOBS = 24
HOLDING = ("Admitted", "Running")
FINISHED = ("Succeeded", "Failed")  # may keep their own finished RayJob until KubeRay's TTL


def a_job(name: str, gpus: int, priority: int) -> dict[str, Any]:
    return transferjob_manifest(
        name,
        priority=priority,
        resources={"workers": 1, "gpusPerWorker": gpus, "gpuType": "A100"},
        placement={"regions": ["eu-west", "us-east"]},
    )


def invariant_violations(cluster: devcluster.Cluster, namespace: str, names: list[str]) -> dict[str, Any]:
    jobs = {j["metadata"]["name"]: j for j in get_json(cluster, "transferjobs", "-n", namespace)["items"]}
    rayjobs: dict[str, list[str]] = {}
    for rayjob in get_json(cluster, "rayjobs", "-n", namespace)["items"]:
        owner = rayjob["metadata"].get("labels", {}).get("transfer.dev/job", "?")
        if rayjob["metadata"].get("deletionTimestamp"):
            continue  # on its way out (background deletion)
        rayjobs.setdefault(owner, []).append(rayjob["metadata"]["name"])
    lost = [n for n in names if n not in jobs]
    duplicated = {n: r for n, r in rayjobs.items() if len(r) > 1}
    wrong = {}
    for name, job in jobs.items():
        status = job.get("status") or {}
        have = rayjobs.get(name, [])
        if status.get("phase") in HOLDING:
            if have != [status.get("rayJobName")]:
                wrong[name] = {
                    "phase": status.get("phase"),
                    "rayJobName": status.get("rayJobName"),
                    "rayjobs": have,
                }
        elif status.get("phase") in FINISHED:
            if have not in ([], [status.get("rayJobName")]):
                wrong[name] = {
                    "phase": status.get("phase"),
                    "rayJobName": status.get("rayJobName"),
                    "rayjobs": have,
                }
        elif have:
            wrong[name] = {"phase": status.get("phase"), "rayjobs": have}
    return {"lost": lost, "duplicated": duplicated, "wrong": wrong}


def record(fault: str, runs: int, violations: dict[str, Any], recovery_s: float) -> None:
    path = os.environ.get("TRANSFER_FAULT_REPORT")
    if not path:
        return
    with Path(path).open("a") as report:
        report.write(
            json.dumps(
                {
                    "fault": fault,
                    "runs": runs,
                    "lost": len(violations["lost"]),
                    "duplicated": len(violations["duplicated"]),
                    "inconsistent": len(violations["wrong"]),
                    "recovery_s": round(recovery_s, 1),
                }
            )
            + "\n"
        )


@pytest.fixture
def sa_kubeconfig(cluster: devcluster.Cluster, chart: None, tmp_path: Path) -> Path:
    return cluster.service_account_kubeconfig(SERVICE_ACCOUNT, RELEASE_NAMESPACE, tmp_path / "kubeconfig")


@pytest.fixture
def jobs(cluster: devcluster.Cluster, namespace: str) -> Iterator[list[str]]:
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    keep_ray_jobs_running(cluster, namespace)  # jobs hold their GPUs through every kill
    names = [f"job-{i}" for i in range(JOBS)]
    manifests = [a_job(name, gpus=(1, 2, 4, 8)[i % 4], priority=i % 3) for i, name in enumerate(names)]
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input="\n---\n".join(json.dumps(m) for m in manifests)
    )
    yield names


def settle(cluster: devcluster.Cluster, namespace: str, names: list[str], timeout_s: float = 120) -> float:
    """Seconds until every job has a phase and the invariants hold."""
    started = time.monotonic()

    def settled() -> bool:
        items = get_json(cluster, "transferjobs", "-n", namespace)["items"]
        phased = all(
            (j.get("status") or {}).get("phase") or (j.get("status") or {}).get("message") for j in items
        )
        v = invariant_violations(cluster, namespace, names)
        return phased and not (v["lost"] or v["duplicated"] or v["wrong"])

    try:
        wait_for(settled, timeout_s, "the fleet to settle with its invariants")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}: {invariant_violations(cluster, namespace, names)}") from None
    return time.monotonic() - started


def test_sigkill_at_random_points(
    cluster: devcluster.Cluster, namespace: str, jobs: list[str], sa_kubeconfig: Path, tmp_path: Path
) -> None:
    rng = random.Random(7)
    operator = OperatorProcess(sa_kubeconfig, tmp_path / "operator.log")
    for kill in range(KILLS):
        operator.start()
        time.sleep(rng.uniform(0.3, 4.0))  # lands anywhere: start-up, a cycle's writes, a timer
        operator.kill(signal.SIGKILL)
        violations = invariant_violations(cluster, namespace, jobs)
        assert not violations["lost"] and not violations["duplicated"], (kill, violations)
    operator.start()
    try:
        recovery_s = settle(cluster, namespace, jobs)
    finally:
        operator.kill(signal.SIGTERM)
    violations = invariant_violations(cluster, namespace, jobs)
    record("operator SIGKILL at a random point", KILLS, violations, recovery_s)
    assert violations == {"lost": [], "duplicated": {}, "wrong": {}}
    admitted = [
        j
        for j in get_json(cluster, "transferjobs", "-n", namespace)["items"]
        if j["status"].get("phase") in HOLDING
    ]
    assert admitted, "the fleet has room: some jobs must be placed"


def test_two_replicas_never_double_schedule(
    cluster: devcluster.Cluster, namespace: str, jobs: list[str], sa_kubeconfig: Path, tmp_path: Path
) -> None:
    replicas = []
    for i in range(2):
        replica = OperatorProcess(
            sa_kubeconfig, tmp_path / f"operator-{i}.log", peering=True, name=f"replica-{i}", priority=100 - i
        )
        replica.start()
        replicas.append(replica)
    try:
        recovery_s = settle(cluster, namespace, jobs)
        time.sleep(10)  # several cycles of both replicas
        violations = invariant_violations(cluster, namespace, jobs)
    finally:
        for replica in replicas:
            replica.kill(signal.SIGTERM)
    record("two operator replicas at once", 1, violations, recovery_s)
    assert violations == {"lost": [], "duplicated": {}, "wrong": {}}
    attempts = [
        j["status"].get("attempts", 0) for j in get_json(cluster, "transferjobs", "-n", namespace)["items"]
    ]
    assert max(attempts) <= 1, "a job admitted twice means two replicas scheduled it"


def test_apiserver_restart_mid_run(
    cluster: devcluster.Cluster, namespace: str, jobs: list[str], sa_kubeconfig: Path, tmp_path: Path
) -> None:
    operator = OperatorProcess(sa_kubeconfig, tmp_path / "operator.log")
    operator.start()
    try:
        settle(cluster, namespace, jobs)
        started = time.monotonic()
        restart_apiserver(cluster)
        late = a_job("after-restart", gpus=1, priority=50)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(late))

        def caught_up() -> bool:
            status = get_json(cluster, "transferjob", "after-restart", "-n", namespace).get("status") or {}
            return status.get("phase") in HOLDING

        wait_for(caught_up, 180, "the operator to reconnect and admit a job created after the restart")
        recovery_s = time.monotonic() - started
        settle(cluster, namespace, [*jobs, "after-restart"])
        violations = invariant_violations(cluster, namespace, [*jobs, "after-restart"])
        assert operator.process is not None and operator.process.poll() is None, "the operator must survive"
    finally:
        operator.kill(signal.SIGTERM)
    record("kube-apiserver SIGKILL and restart mid-run", 1, violations, recovery_s)
    assert violations == {"lost": [], "duplicated": {}, "wrong": {}}


def restart_apiserver(cluster: devcluster.Cluster) -> None:
    """Restart kube-apiserver once no namespace is being deleted. A namespace whose deletion spans
    the restart can lose its custom resources' deletion: the namespace controller's discovery of a
    starting API server may lack the CRDs' groups, so it finalizes the namespace and leaves its
    TransferJobs behind, holding GPUs for every later module (one CI run's failure)."""
    from transfer_operator.devcluster.cluster import restart

    def none_terminating() -> bool:
        items = get_json(cluster, "namespaces")["items"]
        return not [n for n in items if (n.get("status") or {}).get("phase") == "Terminating"]

    wait_for(none_terminating, 300, "earlier tests' namespaces to be deleted before the restart")
    restart(cluster, "kube-apiserver")


def etcd_compact(cluster: devcluster.Cluster) -> int:
    """Compact etcd's history up to its current revision (through etcd's HTTP gateway): a watch
    from any older resourceVersion can only be answered with 410 Gone."""
    base = f"http://127.0.0.1:{cluster.ports['etcd']}/v3/kv"

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    revision = int(post("range", {"key": base64.b64encode(b"/").decode(), "limit": 1})["header"]["revision"])
    post("compaction", {"revision": str(revision), "physical": True})
    return revision


def relists(operator: OperatorProcess, kind: str) -> float:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "transfer_watch_relists_total" and sample.labels.get("kind") == kind:
                return sample.value
    return 0.0


def pool_accounting_errors(cluster: devcluster.Cluster, namespace: str) -> dict[str, tuple[int, int]]:
    """Pools whose status.allocatedGpus differs from the GPUs of the jobs holding them: a job the
    index lost or kept after its deletion shows here. pool -> (status, from the jobs)."""
    held: dict[str, int] = {}
    for job in get_json(cluster, "transferjobs", "-A")["items"]:
        status = job.get("status") or {}
        if status.get("phase") in HOLDING and status.get("placement"):
            pool = status["placement"]["pool"]
            held[pool] = held.get(pool, 0) + int(status["placement"]["gpus"])
    errors = {}
    for pool in get_json(cluster, "gpupools")["items"]:
        name = pool["metadata"]["name"]
        written = int((pool.get("status") or {}).get("allocatedGpus", 0))
        if written != held.get(name, 0):
            errors[name] = (written, held.get(name, 0))
    return errors


def test_watch_expiry_relists_without_losing_or_doubling(
    cluster: devcluster.Cluster, namespace: str, jobs: list[str], sa_kubeconfig: Path, tmp_path: Path
) -> None:
    """The operator's watches expire while it is frozen (SIGSTOP): a job is created and another
    deleted, etcd is compacted to its current revision and the API server restarted (its new watch
    cache starts there), so every watch resumes from a resourceVersion that is gone: 410, relist.
    Afterwards the new job is admitted, the deleted one's GPUs are free, nothing lost or doubled."""
    operator = OperatorProcess(sa_kubeconfig, tmp_path / "operator.log")
    operator.start()
    assert operator.process is not None
    try:
        settle(cluster, namespace, jobs)
        wait_for(lambda: not pool_accounting_errors(cluster, namespace), 60, "the pools' status to settle")
        before = relists(operator, "transferjobs")
        started = time.monotonic()
        os.killpg(operator.process.pid, signal.SIGSTOP)
        try:
            late = a_job("during-expiry", gpus=1, priority=50)
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(late))
            cluster.kubectl("delete", "transferjob", jobs[0], "-n", namespace, "--wait=false")
            etcd_compact(cluster)
            restart_apiserver(cluster)
        finally:
            os.killpg(operator.process.pid, signal.SIGCONT)
        wait_for(lambda: relists(operator, "transferjobs") > before, 120, "a relist after 410 Gone")

        def caught_up() -> bool:
            status = get_json(cluster, "transferjob", "during-expiry", "-n", namespace).get("status") or {}
            return status.get("phase") in HOLDING

        wait_for(caught_up, 180, "the job created while the watch was gone to be admitted")
        names = [*jobs[1:], "during-expiry"]
        settle(cluster, namespace, names)
        recovery_s = time.monotonic() - started
        wait_for(lambda: not pool_accounting_errors(cluster, namespace), 60, "pool status = the jobs' GPUs")
        violations = invariant_violations(cluster, namespace, names)
        assert operator.process.poll() is None, "the operator must survive"
    finally:
        operator.kill(signal.SIGTERM)
    record("watch expiry (410 Gone: etcd compacted, API server restarted)", 1, violations, recovery_s)
    assert violations == {"lost": [], "duplicated": {}, "wrong": {}}
