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
    try:
        found = runner.latest_checkpoint(env.get("TRANSFER_RESUME_FROM") or storage)
    except OSError as exc:
        print(f"training failed: checkpoint storage {storage} is unreachable ({one_line(exc)})", file=sys.stderr)
        return 1
    resume = found[0] if found else None
    if found:
        print(f"resuming {namespace}/{name} from {found[0]} (step {found[1].get('step', 0)})", flush=True)

    import ray

    # Inside a RayJob the job supervisor sets RAY_ADDRESS; without it, start a Ray of our own
    # rather than attach to whatever Ray instance happens to run on this machine.
    connected_here = not ray.is_initialized()  # a caller's own Ray (tests call main) stays up
    ray.init(address=env.get("RAY_ADDRESS") or "local", log_to_driver=True, ignore_reinit_error=True)
    error: BaseException | None
    try:
        result = runner.run_job(
            prepared,
            job_name=f"{namespace}/{name}",
            run_name=f"{name}-attempt-{attempt}",
            storage_path=storage,
            resume_from=resume,
            use_gpu=prepared.job.resources.gpus_per_worker > 0,
        )
        error = result.error
    except Exception as exc:  # Ray Train raises controller errors (e.g. a failed checkpoint upload) from fit()
        error = exc
    # The last line printed is what KubeRay's RayJob message and the TransferJob's condition show.
    # Ray prints the workers' logs here from a thread of its own and flushes its deduplicated
    # lines when it shuts down: shut it down now, or those lines would follow ours.
    if connected_here:
        ray.shutdown()
    if error:
        problem = storage_problem(storage)
        cause = f"checkpoint storage {storage} is unreachable ({problem})" if problem else one_line(error)
        print(f"training failed: {cause}", file=sys.stderr)
        return 1
    output = None
    if prepared.job.output is not None and result.checkpoint is not None:
        from pathlib import Path

        try:
            with result.checkpoint.as_directory() as d:
                if (Path(d) / "model").is_dir():
                    output = runner.publish_output(prepared.job, Path(d) / "model", dict(result.metrics or {}))
        except OSError as exc:
            print(f"training finished but publishing the model to {prepared.job.output.uri} failed "
                  f"({one_line(exc)}); its last checkpoint is under {storage}", file=sys.stderr)
            return 1
    print(json.dumps({"final_metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None,
                      "output": output}))
    return 0


def one_line(error: BaseException, limit: int = 1000) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def storage_problem(storage: str) -> str | None:
    """Why the checkpoint storage does not answer, or None when it does."""
    from transfer_trainers import storage as storage_io

    try:
        storage_io.exists(storage)
    except OSError as exc:
        return one_line(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
