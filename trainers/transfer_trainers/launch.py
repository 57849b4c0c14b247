"""Entrypoint of the RayJob: `python -m transfer_trainers.launch`.

Reads TRANSFER_JOB (the TransferJob spec, wire form JSON), TRANSFER_JOB_NAME,
TRANSFER_JOB_NAMESPACE, TRANSFER_STORAGE_PATH (default spec.checkpoint.uri),
TRANSFER_RESUME_FROM (optional) and TRANSFER_ATTEMPT; validates, then runs the trainer on the
Ray cluster it is started in. Exit codes: 0 done, 2 invalid spec (do not retry), 1 failure.
"""

from __future__ import annotations

import json
import os
import sys

from transfer_trainers import runner
from transfer_trainers.spec import SpecError


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        spec = json.loads(env["TRANSFER_JOB"])
    except (KeyError, json.JSONDecodeError) as exc:
        print(f"transfer_trainers.launch: TRANSFER_JOB must hold the TransferJob spec as JSON ({exc})", file=sys.stderr)
        return 2
    name = env.get("TRANSFER_JOB_NAME", "job")
    namespace = env.get("TRANSFER_JOB_NAMESPACE", "default")
    attempt = int(env.get("TRANSFER_ATTEMPT", "0") or 0)
    try:
        prepared = runner.prepare(spec)
    except SpecError as exc:
        print(f"invalid TransferJob {namespace}/{name}: {exc}", file=sys.stderr)
        return 2
    storage = env.get("TRANSFER_STORAGE_PATH") or prepared.job.checkpoint.uri
    if not storage:
        print("spec.checkpoint.uri: no storage path (set it or TRANSFER_STORAGE_PATH)", file=sys.stderr)
        return 2
    # TRANSFER_RESUME_FROM is a storage root (the operator sets the job's) or one checkpoint: in
    # both cases the run starts from the checkpoint with the highest step found under it.
    found = runner.latest_checkpoint(env.get("TRANSFER_RESUME_FROM") or storage)
    resume = found[0] if found else None
    if found:
        print(f"resuming {namespace}/{name} from {found[0]} (step {found[1].get('step', 0)})", flush=True)

    import ray

    # Inside a RayJob the job supervisor sets RAY_ADDRESS; without it, start a Ray of our own
    # rather than attach to whatever Ray instance happens to run on this machine.
    ray.init(address=env.get("RAY_ADDRESS") or "local", log_to_driver=True, ignore_reinit_error=True)
    result = runner.run_job(
        prepared,
        job_name=f"{namespace}/{name}",
        run_name=f"{name}-attempt-{attempt}",
        storage_path=storage,
        resume_from=resume,
        use_gpu=prepared.job.resources.gpus_per_worker > 0,
    )
    if result.error:
        print(f"training failed: {result.error}", file=sys.stderr)
        return 1
    output = None
    if prepared.job.output is not None and result.checkpoint is not None:
        from pathlib import Path

        with result.checkpoint.as_directory() as d:
            if (Path(d) / "model").is_dir():
                output = runner.publish_output(prepared.job, Path(d) / "model", dict(result.metrics or {}))
    print(json.dumps({"final_metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None,
                      "output": output}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
