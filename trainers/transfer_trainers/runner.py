"""Build and run the Ray Train job of a TransferJob. Shared by `launch` (in the RayJob) and
`local.run_local` (transferctl run)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfer_trainers import registry, storage
from transfer_trainers.contract import Trainer
from transfer_trainers.loop import META_FILE, STATE_FILE
from transfer_trainers.spec import JobSpec, SpecError, parse_job


@dataclass
class Prepared:
    job: JobSpec
    trainer: Trainer


def prepare(spec: dict[str, Any], *, use_gpu: bool | None = None) -> Prepared:
    """Parse + validate before Ray starts. `use_gpu=False` forces gpusPerWorker to 0 (CPU machines)."""
    job = parse_job(spec)
    if use_gpu is False and job.resources.gpus_per_worker:
        job = job.model_copy(update={"resources": job.resources.model_copy(update={"gpus_per_worker": 0})})
    trainer = registry.get_trainer(job.trainer.name)
    trainer.validate(job)
    return Prepared(job, trainer)


def _fs(uri: str) -> tuple[Any, str]:
    return storage.filesystem(uri)


def is_complete(fs: Any, directory: str, meta: dict[str, Any]) -> bool:
    """A checkpoint whose state file is all there (an upload cut off by a lost node or cluster
    leaves a meta.json beside a short or missing state.pt)."""
    expected = meta.get("state_bytes")
    if expected is None:  # written before sizes were recorded
        return True
    return int(fs.get_file_info(f"{directory}/{STATE_FILE}").size or -1) == int(expected)


def latest_checkpoint(storage_path: str) -> tuple[str, dict[str, Any]] | None:
    """The checkpoint with the highest step anywhere under `storage_path` (all attempts' runs)."""
    import pyarrow.fs as pafs

    fs, root = _fs(storage_path)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return None
    best: tuple[tuple[int, str], str, dict[str, Any]] | None = None
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.base_name != META_FILE or "/checkpoint_" not in info.path:
            continue
        with fs.open_input_stream(info.path) as f:
            meta = json.loads(f.read())
        directory = info.path.rsplit("/", 1)[0]
        if not is_complete(fs, directory, meta):
            continue
        key = (int(meta.get("step", 0)), directory)
        if best is None or key > best[0]:
            best = (key, directory, meta)
    if best is None:
        return None
    directory = best[1]
    if "://" in storage_path and not storage_path.startswith("file://"):
        directory = storage_path.split("://", 1)[0] + "://" + directory
    return directory, best[2]


def loop_config(job: JobSpec, job_name: str, **extra: Any) -> dict[str, Any]:
    """What `train_loop_per_worker(config)` receives: the job (wire form) plus runner fields."""
    return {"job": job.model_dump(by_alias=True, mode="json"), "job_name": job_name, **extra}


def run_job(
    prepared: Prepared,
    *,
    job_name: str,
    run_name: str,
    storage_path: str,
    resume_from: str | None = None,
    use_gpu: bool = False,
    extra_config: dict[str, Any] | None = None,
) -> Any:
    """Run the trainer with Ray Train's TorchTrainer (Ray must be initialised); returns ray.train.Result."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    job = prepared.job
    storage = storage_path if "://" in storage_path else str(Path(storage_path).expanduser().resolve())
    trainer = TorchTrainer(
        prepared.trainer.train_loop_per_worker,
        train_loop_config=loop_config(job, job_name, resume_from=resume_from, **(extra_config or {})),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=job.resources.workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.checkpoint.keep),
            failure_config=ray.train.FailureConfig(max_failures=0),
        ),
    )
    return trainer.fit()


MANIFEST_FILE = "manifest.json"
MANIFEST_METRICS = ("step", "epoch", "train_loss", "val_loss", "val_accuracy", "zero_shot_accuracy",
                    "majority_accuracy", "trainable_params", "total_params", "wall_s", "peak_rss_mb")


def publish_output(job: JobSpec, model_dir: Path, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """Write the exported model and manifest.json to `spec.output.uri` (local path or s3://).

    The manifest says what the model is (base model, trainer, strategy, format), how it did
    (final metrics) and what it learned from (dataset URI and sha256). None without spec.output.
    """
    if job.output is None:
        return None
    from transfer_trainers import datasets
    from transfer_trainers.sources import EXPORT_MARKER

    exported = json.loads((model_dir / EXPORT_MARKER).read_text()) if (model_dir / EXPORT_MARKER).exists() else {}
    manifest = {
        "uri": job.output.uri,
        "format": exported.get("format") or ("adapter" if exported.get("lora") else "full"),
        "base_model": job.model.source,
        "trainer": job.trainer.name,
        "strategy": job.strategy.type,
        "metrics": {k: metrics[k] for k in MANIFEST_METRICS if metrics.get(k) is not None},
        "data": {"uri": job.dataset.uri, "sha256": datasets.fingerprint(job.dataset),
                 "max_examples": job.dataset.max_examples},
    }
    uri = job.output.uri.rstrip("/")
    storage.upload_dir(model_dir, uri)
    storage.write_bytes(f"{uri}/{MANIFEST_FILE}", json.dumps(manifest, indent=2).encode())
    return manifest


def package_pythonpath() -> None:
    """Let local Ray workers import this package (and the caller's) from a source checkout."""
    here = str(Path(__file__).resolve().parent.parent)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *parts])


__all__ = ["Prepared", "SpecError", "latest_checkpoint", "loop_config", "prepare", "run_job"]


def run_in_process(prepared: Prepared, *, job_name: str = "local", export_dir: str | None = None,
                   extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the built-in recipe's loop in this process, without Ray (benchmarks, overhead baseline).

    Only for the built-in recipes, which honour config["in_process"]; returns the last report.
    """
    config = loop_config(prepared.job, job_name, in_process=True, export_dir=export_dir, **(extra_config or {}))
    prepared.trainer.train_loop_per_worker(config)
    return config["reports"][-1]
