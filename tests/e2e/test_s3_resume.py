"""Checkpoints in shared S3 storage (a real SeaweedFS): a job interrupted on one pool resumes on
another from the S3 checkpoint at its last step, and finishes with its final checkpoint in S3.

As in test_failover, this machine plays the Ray cluster of the chosen pool: the RayJob's own
entrypoint, runtime env and `envFrom` Secret (the storage keys) run on a local Ray.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.fs as pafs

from transfer_operator import devcluster
from transfer_operator.devcluster import objectstore
from transfer_trainers.runner import is_complete

from .conftest import OperatorProcess, get_or_none, keep_ray_jobs_running, wait_for
from .test_failover import (  # noqa: F401 (fleet is a fixture)
    MAX_STEPS,
    a_job,
    fleet,
    interrupt_spot,
    nodes_of_job,
    placed,
    resumable_training,
    run_rayjob_locally,
    run_resumed_attempt,
    stop,
    transferjob,
    wait_for_first_checkpoint,
)
from .test_faults import invariant_violations, record

STORAGE_SECRET = "transfer-storage"


def s3_checkpoint_steps(filesystem: pafs.FileSystem, root: str, run: str | None = None) -> list[int]:
    """Steps of the complete checkpoints under root (bucket/prefix), read back through the S3 API."""
    if filesystem.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    steps = []
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.base_name != "meta.json" or "/checkpoint_" not in info.path:
            continue
        if run is not None and f"/{run}/" not in info.path:
            continue
        with filesystem.open_input_stream(info.path) as stream:
            meta = json.loads(stream.read())
        # An upload cut off by the fault leaves meta.json beside a partial state file: not a checkpoint.
        if is_complete(filesystem, info.path.rsplit("/", 1)[0], meta):
            steps.append(int(meta["step"]))
    return sorted(steps)


def test_an_interrupted_job_resumes_from_its_s3_checkpoint(
    cluster: devcluster.Cluster,
    operator: OperatorProcess,
    namespace: str,
    fleet: None,
    s3_store: objectstore.ObjectStore,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    prefix = f"{s3_bucket}/checkpoints/{namespace}/s3-resumer"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": STORAGE_SECRET},
        "stringData": s3_store.credentials.env(),
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))
    spec = resumable_training({"uri": f"s3://{prefix}", "secretRef": {"name": STORAGE_SECRET}})
    keep_ray_jobs_running(cluster, namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(a_job("s3-resumer", **spec)))
    first = placed(cluster, namespace, "s3-resumer", attempt=1)["status"]
    assert first["lastCheckpoint"] == f"s3://{prefix}"
    # The status is written before the RayJob is created (a crash between the two loses nothing).
    rayjob = wait_for(
        lambda: get_or_none(cluster, "rayjob", first["rayJobName"], "-n", namespace), 60, "RayJob"
    )
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["envFrom"] == [{"secretRef": {"name": STORAGE_SECRET}}], "keys reach pods by reference only"
    assert s3_store.credentials.secret_key not in json.dumps(rayjob), "no key value in the RayJob"
    nodes = nodes_of_job(cluster, namespace, "s3-resumer", attempt=1)

    filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(s3_store.credentials))
    attempt_1 = run_rayjob_locally(cluster, namespace, first["rayJobName"], tmp_path / "attempt-1.log")
    try:
        wait_for_first_checkpoint(
            attempt_1, tmp_path / "attempt-1.log", lambda: s3_checkpoint_steps(filesystem, prefix)
        )
        interrupted = time.monotonic()
        for node in nodes:
            interrupt_spot(cluster, node)
        placed(cluster, namespace, "s3-resumer", attempt=2)
        recovery_s = time.monotonic() - interrupted
    finally:
        stop(attempt_1)
    interrupted_at = max(s3_checkpoint_steps(filesystem, prefix))
    assert interrupted_at < MAX_STEPS

    second = transferjob(cluster, namespace, "s3-resumer")["status"]
    assert second["placement"]["pool"] != first["placement"]["pool"]
    run_resumed_attempt(cluster, namespace, "s3-resumer-a2", tmp_path / "attempt-2.log", interrupted_at)
    resumed = s3_checkpoint_steps(filesystem, prefix, run="s3-resumer-attempt-2")
    assert resumed[0] == interrupted_at + 10 and resumed[-1] == MAX_STEPS, resumed
    record(
        "interrupted training resumes from its S3 checkpoint",
        1,
        invariant_violations(cluster, namespace, ["s3-resumer"]),
        recovery_s,
    )
