"""Fault injection on the real control plane: the operator SIGKILLed at random points, and two
replicas at once. Afterwards every TransferJob has exactly the RayJobs its phase says (one while
it holds GPUs, none otherwise), none is lost, none is doubled.

TRANSFER_FAULT_RUNS sets the number of kills (CI: 10; the full run: 100). TRANSFER_FAULT_REPORT
names a JSON file to append the results to (benchmarks/reliability_report.py renders it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
    from transfer_operator.devcluster.cluster import restart

    operator = OperatorProcess(sa_kubeconfig, tmp_path / "operator.log")
    operator.start()
    try:
        settle(cluster, namespace, jobs)
        started = time.monotonic()
        restart(cluster, "kube-apiserver")
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
