"""An S3 outage during training. The job's checkpoints go to a real SeaweedFS, which is stopped
under the running attempt (the RayJob's own entrypoint, `python -m transfer_trainers.launch`,
on a local Ray as in test_failover). The attempt must end within bounded time with an exit code
of 1 (KubeRay then reports the Ray job FAILED and the TransferJob's condition carries the
driver's last lines, engine/status.py), and those lines must name the storage. Nothing is lost:
every checkpoint written before the outage is intact once the store is back, and the next
attempt resumes from the last complete one and finishes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from transfer_operator.devcluster import objectstore

from .conftest import wait_for
from .test_failover import MAX_STEPS, resumable_training, stop
from .test_faults import record
from .test_s3_resume import s3_checkpoint_steps

BUCKET = "outage"
NAME = "s3-outage"
FAILS_WITHIN_S = 300  # the attempt ends on its own; a hang would hold its GPUs forever


def launch(
    spec: dict[str, Any], store: objectstore.ObjectStore, attempt: int, log: Path
) -> subprocess.Popen[bytes]:
    """The RayJob entrypoint with the env the engine renders (no GPU here: gpusPerWorker 0)."""
    job = {**spec, "resources": {"workers": 1, "gpusPerWorker": 0}}
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        **store.credentials.env(),  # what the pod gets from the storage Secret by envFrom
        "TRANSFER_JOB": json.dumps(job),
        "TRANSFER_JOB_NAME": NAME,
        "TRANSFER_JOB_NAMESPACE": "e2e",
        "TRANSFER_ATTEMPT": str(attempt),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "transfer_trainers.launch"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_an_s3_outage_fails_the_attempt_clearly_and_loses_nothing(weed: Path, tmp_path: Path) -> None:
    store = objectstore.start(tmp_path / "store", weed)
    try:
        store.create_bucket(BUCKET)
        prefix = f"{BUCKET}/checkpoints/e2e/{NAME}"
        spec = resumable_training({"uri": f"s3://{prefix}"})
        filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(store.credentials))

        log_1 = tmp_path / "attempt-1.log"
        attempt_1 = launch(spec, store, 1, log_1)
        try:
            wait_for(
                lambda: s3_checkpoint_steps(filesystem, prefix) or attempt_1.poll() is not None,
                300,
                "a first checkpoint in S3",
            )
            assert attempt_1.poll() is None, log_1.read_text()[-4000:]
            before = s3_checkpoint_steps(filesystem, prefix)
            objectstore.stop_store(store.state_dir)  # the outage
            outage = time.monotonic()
            code = attempt_1.wait(timeout=FAILS_WITHIN_S)
            failed_after_s = time.monotonic() - outage
        finally:
            stop(attempt_1)
        last_words = log_1.read_text()[-3000:]
        assert code == 1, last_words
        last_line = last_words.strip().splitlines()[-1]
        assert last_line.startswith(f"training failed: checkpoint storage s3://{prefix} is unreachable"), (
            last_words
        )

        store = objectstore.start(tmp_path / "store", weed)  # back, with its data
        filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(store.credentials))
        kept = s3_checkpoint_steps(filesystem, prefix)
        assert set(before) <= set(kept), (before, kept)  # nothing written before the outage is lost
        assert max(kept) < MAX_STEPS

        log_2 = tmp_path / "attempt-2.log"
        attempt_2 = launch(spec, store, 2, log_2)
        try:
            assert attempt_2.wait(timeout=900) == 0, log_2.read_text()[-4000:]
        finally:
            stop(attempt_2)
        resumed_at = [line for line in log_2.read_text().splitlines() if line.startswith("resuming")]
        assert resumed_at, log_2.read_text()[-4000:]
        step = int(resumed_at[0].rsplit("(step ", 1)[1].rstrip(")"))
        assert step == max(kept), (step, kept)  # the last complete checkpoint
        final = s3_checkpoint_steps(filesystem, prefix, run=f"{NAME}-attempt-2")
        assert final[0] == step + 10 and final[-1] == MAX_STEPS, final
        record(
            "S3 outage during training",
            1,
            {"lost": [], "duplicated": [], "wrong": []},
            failed_after_s,
        )
    finally:
        objectstore.stop_store(tmp_path / "store")
