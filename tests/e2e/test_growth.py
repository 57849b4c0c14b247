"""An elastic gang grows on the real control plane: it starts on the GPUs free beside another job
(1 of its 1..2 workers), the other job ends and goes, and the operator restarts the gang at 2
workers as its next attempt (a RayJob of 2 replicas, the old one deleted first), with exactly one
live RayJob throughout and no placement of maxAttempts spent. And the other way: a higher-priority
job shrinks a running gang to make room, rather than preempting it."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.devcluster.raysim import RUN_SECONDS_ANNOTATION

from .conftest import (
    EXAMPLES,
    RELEASE_NAMESPACE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    event_messages,
    get_json,
    wait_for,
)
from .test_faults import invariant_violations, record

GROW_AFTER_S = 5


@pytest.fixture(scope="module")
def operator(cluster: devcluster.Cluster, chart: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The module's operator, with a short growth cooldown (the default is 300 s)."""
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = cluster.service_account_kubeconfig(SERVICE_ACCOUNT, RELEASE_NAMESPACE, workdir / "kubeconfig")
    (workdir / "config.yaml").write_text(yaml.safe_dump({"growAfterSeconds": GROW_AFTER_S}))
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    process = OperatorProcess(kubeconfig, workdir / "operator.log", config=workdir / "config.yaml")
    process.start()
    yield process
    process.kill(signal.SIGTERM)
    print(process.log()[-5000:])


def h100_job(name: str, run_seconds: int, priority: int = 0, **resources: Any) -> dict[str, Any]:
    """8-GPU H100 workers: only us-east-h100 (2 nodes of 8) has them."""
    job = transferjob_manifest(
        name,
        resources={"gpusPerWorker": 8, "gpuType": "H100", **resources},
        placement={"regions": ["us-east"]},
        priority=priority,
    )
    job["metadata"]["annotations"] = {RUN_SECONDS_ANNOTATION: str(run_seconds)}
    return job


def status_of(cluster: devcluster.Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "transferjob", name, "-n", namespace).get("status") or {}


def stamp_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def replicas(cluster: devcluster.Cluster, namespace: str, rayjob: str) -> int:
    spec = get_json(cluster, "rayjob", rayjob, "-n", namespace)["spec"]
    return sum(group["replicas"] for group in spec["rayClusterSpec"]["workerGroupSpecs"])


def test_an_elastic_gang_grows_when_the_gpus_beside_it_free_up(
    cluster: devcluster.Cluster, operator: OperatorProcess, namespace: str
) -> None:
    holder = h100_job("holder", run_seconds=15, priority=5, workers=1)
    gang = h100_job("gang", run_seconds=600, minWorkers=1, maxWorkers=2)
    gang["spec"]["maxAttempts"] = 1  # a resize is not a placement: it must not use this one up
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(holder))
    wait_for(lambda: status_of(cluster, namespace, "holder").get("placement"), 90, "holder admitted")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(gang))
    first = wait_for(
        lambda: (s := status_of(cluster, namespace, "gang")).get("phase") == "Running" and s, 120, "gang Running"
    )
    assert first["placement"]["gpus"] == 8 and first["attempts"] == 1, first
    assert replicas(cluster, namespace, first["rayJobName"]) == 1

    done = wait_for(
        lambda: (s := status_of(cluster, namespace, "holder")).get("phase") == "Succeeded" and s, 120, "holder Succeeded"
    )
    cluster.kubectl("delete", "transferjob", "holder", "-n", namespace)  # its pods go with it
    grown = wait_for(
        lambda: (s := status_of(cluster, namespace, "gang")).get("attempts") == 2 and s, 120, "gang grown (attempt 2)"
    )
    # from the other job's end to the resize, as the API server's timestamps have it (1 s steps)
    grow_s = stamp_s(grown["admittedAt"]) - stamp_s(done["costAccruedAt"])  # billed up to its end
    assert grown["placement"]["gpus"] == 16 and grown["resizes"] == 1, grown
    assert replicas(cluster, namespace, grown["rayJobName"]) == 2
    rayjobs = [
        r["metadata"]["name"]
        for r in get_json(cluster, "rayjobs", "-n", namespace, "-l", "transfer.dev/job=gang")["items"]
        if not r["metadata"].get("deletionTimestamp")
    ]
    assert rayjobs == [grown["rayJobName"]], rayjobs
    running = wait_for(
        lambda: (s := status_of(cluster, namespace, "gang")).get("phase") == "Running" and s, 120, "gang Running at 2"
    )
    assert running["attempts"] == 2  # no second resize, and maxAttempts 1 did not fail it
    resized = wait_for(lambda: event_messages(cluster, namespace, "gang", "Resized"), 30, "the Resized event")
    assert "grown from 1 to 2 workers" in resized[0], resized
    violations = invariant_violations(cluster, namespace, ["gang"])
    # recovery: from the other job's end to the gang's resize written (the cooldown had passed)
    record("an elastic gang grows into freed GPUs (restart at 2 workers)", 1, violations, grow_s)
    assert not any(violations.values()), violations


def test_a_higher_priority_job_shrinks_a_running_gang_instead_of_preempting_it(
    cluster: devcluster.Cluster, operator: OperatorProcess, namespace: str
) -> None:
    gang = h100_job("wide", run_seconds=600, minWorkers=1, maxWorkers=2)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(gang))
    # Both H100 nodes: once the last test's namespace (and its gang) is gone.
    wide = wait_for(
        lambda: (s := status_of(cluster, namespace, "wide")).get("phase") == "Running" and s["placement"]["gpus"] == 16 and s,
        180,
        "wide Running on 2 workers",
    )
    assert wide["attempts"] == 1, wide
    started = time.monotonic()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(h100_job("vip", run_seconds=600, priority=9, workers=1)))
    shrunk = wait_for(
        lambda: (s := status_of(cluster, namespace, "wide")).get("attempts") == 2 and s, 120, "wide shrunk (attempt 2)"
    )
    assert shrunk["placement"]["gpus"] == 8 and shrunk["resizes"] == 1 and shrunk["phase"] != "Preempted", shrunk
    resized = wait_for(lambda: event_messages(cluster, namespace, "wide", "Resized"), 30, "the Resized event")
    assert "shrunk from 2 to 1 workers to make room for higher-priority" in resized[0], resized
    wait_for(lambda: status_of(cluster, namespace, "vip").get("phase") == "Running", 120, "vip Running")
    shrink_s = time.monotonic() - started
    running = wait_for(
        lambda: (s := status_of(cluster, namespace, "wide")).get("phase") == "Running" and s, 120, "wide Running at 1"
    )
    assert running["attempts"] == 2 and replicas(cluster, namespace, running["rayJobName"]) == 1
    violations = invariant_violations(cluster, namespace, ["wide", "vip"])
    # recovery: from the higher-priority job's apply to it running beside the shrunk gang
    record("a higher-priority job shrinks a running elastic gang (restart at 1 worker)", 1, violations, shrink_s)
    assert not any(violations.values()), violations
