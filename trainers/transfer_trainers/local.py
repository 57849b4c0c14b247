"""Run a TransferJob on this machine (what `transferctl run` calls).

runs/<name>/
  metrics.jsonl        one JSON object per training step ("kind": "train") and evaluation ("eval")
  final_metrics.json   the last report (accuracy, loss, trainable params, wall time, ...)
  ray/                 Ray Train storage: checkpoints of every attempt (checkpoint_*/state.pt)
  model/               the adapted model (or LoRA adapter + head), see docs/trainers.md
  curves.png           training loss and validation accuracy against steps

Ctrl-C asks the workers to write a checkpoint at the current step and stop; running the same
name again resumes from the latest checkpoint (model, optimizer, scheduler, RNG, data position).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfer_trainers import runner


@dataclass
class RunResult:
    name: str
    run_dir: Path
    status: str  # "succeeded" | "interrupted" | "failed"
    metrics: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    checkpoint: str | None = None
    resumed_from_step: int | None = None
    error: str | None = None
    output: dict[str, Any] | None = None  # manifest.json written to spec.output.uri


def _start_ray(num_cpus: int | None) -> bool:
    """Start a quiet local Ray unless one is already up; True when we started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    runner.package_pythonpath()
    # "local": a Ray of our own, never an instance some other program left running here.
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, configure_logging=True)
    return True


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written while we read
    return events


def write_curves(events: list[dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A run resumed after a crash repeats the steps after its last checkpoint: keep the last.
    train = {e["step"]: e["loss"] for e in events if e.get("kind") == "train"}
    evals = {e["step"]: e for e in events if e.get("kind") == "eval"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = sorted(train)
    ax1.plot(steps, [train[s] for s in steps], lw=0.8, label="train loss")
    if evals:
        es = sorted(evals)
        ax1.plot(es, [evals[s]["val_loss"] for s in es], "o-", label="validation loss")
        acc = [s for s in es if "val_accuracy" in evals[s]]  # causal LMs: only the final evaluation
        ax2.plot(acc, [evals[s]["val_accuracy"] for s in acc], "o-", color="C2")
    ax1.set_xlabel("step")
    ax1.set_title("loss")
    ax1.legend()
    ax2.set_xlabel("step")
    ax2.set_title("validation accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _follow(progress_file: Path, done: threading.Event, name: str, start_step: int) -> None:
    """Draw a progress bar from the rank-0 worker's progress file until `done`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]}"), TextColumn("acc {task.fields[acc]}"),
               TextColumn("{task.fields[sps]} samples/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    offset = progress_file.stat().st_size if progress_file.exists() else 0
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(name, total=None, completed=start_step, loss="-", acc="-", sps="-")
        while True:
            finished = done.is_set()
            if progress_file.exists():
                with progress_file.open() as f:
                    f.seek(offset)
                    chunk = f.read()
                cut = chunk.rfind("\n") + 1
                offset += len(chunk[:cut].encode())
                for line in chunk[:cut].splitlines():
                    e = json.loads(line)
                    if e["kind"] == "train":
                        bar.update(task, total=e["total"], completed=e["step"], loss=f"{e['loss']:.4f}",
                                   sps=f"{e['samples_per_s']:.1f}")
                    elif e["kind"] == "eval":
                        bar.update(task, acc=f"{e['val_accuracy']:.3f}")
            if finished:
                return
            done.wait(0.5)


def run_local(
    spec: dict[str, Any],
    name: str,
    runs_dir: Path = Path("runs"),
    num_cpus: int | None = None,
    resume: bool = True,
    progress: bool = True,
    *,
    _stop_at_step: int | None = None,
) -> RunResult:
    """Validate `spec` (wire form), train it with a local Ray, write runs/<name>/ and return the result.

    Raises SpecError (a ValueError naming the field) before Ray starts when the job is invalid.
    GPUs are used only when torch sees one; otherwise gpusPerWorker counts as 0.
    `_stop_at_step` simulates an interruption at that step (tests).
    """
    import torch

    use_gpu = torch.cuda.is_available()
    prepared = runner.prepare(spec, use_gpu=use_gpu)
    use_gpu = use_gpu and prepared.job.resources.gpus_per_worker > 0
    run_dir = Path(runs_dir).expanduser().resolve() / name
    storage = run_dir / "ray"
    run_dir.mkdir(parents=True, exist_ok=True)
    found = runner.latest_checkpoint(str(storage)) if resume else None
    if not resume:
        for stale in ("ray", "metrics.jsonl", "final_metrics.json", "model", "curves.png"):
            p = run_dir / stale
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    progress_file = run_dir / "metrics.jsonl"
    stop_file = run_dir / ".stop"
    stop_file.unlink(missing_ok=True)

    started_ray = _start_ray(num_cpus)
    result = RunResult(name=name, run_dir=run_dir, status="failed",
                       resumed_from_step=int(found[1]["step"]) if found else None)
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = runner.run_job(
                prepared, job_name=name, run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                storage_path=str(storage), resume_from=found[0] if found else None, use_gpu=use_gpu,
                extra_config={"progress_file": str(progress_file), "stop_file": str(stop_file),
                              "stop_at_step": _stop_at_step},
            )
        except BaseException as exc:  # noqa: BLE001 - reported in RunResult
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=fit, name=f"fit-{name}", daemon=True)
    follower = None
    if progress:
        start = result.resumed_from_step or 0
        follower = threading.Thread(target=_follow, args=(progress_file, done, name, start), daemon=True)
        follower.start()
    interrupted = False
    worker.start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        # The workers see the stop file, checkpoint at their current step and return.
        interrupted = True
        stop_file.touch()
        try:
            while not done.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: leave with the last periodic checkpoint
    finally:
        if follower is not None:
            follower.join(timeout=5)
        stop_file.unlink(missing_ok=True)
        if started_ray:
            import ray

            ray.shutdown()

    ray_result = outcome.get("result")
    if "error" in outcome or ray_result is None or ray_result.error:
        result.error = repr(outcome.get("error") or (ray_result.error if ray_result else "no result"))
        result.status = "interrupted" if interrupted else "failed"
        return result
    metrics = dict(ray_result.metrics or {})
    result.metrics = metrics
    result.checkpoint = ray_result.checkpoint.path if ray_result.checkpoint else None
    events = _read_events(progress_file)
    if (interrupted or _stop_at_step is not None) and not metrics.get("final"):
        result.status = "interrupted"
    else:
        result.status = "succeeded"
        (run_dir / "final_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        if ray_result.checkpoint is not None:
            with ray_result.checkpoint.as_directory() as d:
                if (Path(d) / "model").exists():
                    shutil.rmtree(run_dir / "model", ignore_errors=True)
                    shutil.copytree(Path(d) / "model", run_dir / "model")
                    result.model_dir = run_dir / "model"
        if result.model_dir is not None and prepared.job.output is not None:
            result.output = runner.publish_output(prepared.job, result.model_dir, metrics)
    if events:
        write_curves(events, run_dir / "curves.png", f"{name} ({prepared.job.strategy.type})")
    return result


def verdict(result: RunResult) -> str:
    """One line a user reads first: did the model learn, by how much, and where it went."""
    if result.status != "succeeded":
        hint = "run the same command again to resume" if result.status == "interrupted" else "see the error above"
        return f"{result.name}: {result.status} ({result.error or 'no final report'}); {hint}"
    m = result.metrics
    where = f"model in {result.model_dir}" if result.model_dir else f"checkpoint {result.checkpoint}"
    if result.output:
        where += f" and {result.output['uri']}"
    where += f", metrics in {result.run_dir / 'final_metrics.json'}"
    acc, base = m.get("val_accuracy"), m.get("majority_accuracy")
    if acc is None:
        loss = m.get("val_loss", m.get("train_loss"))
        return f"{result.name}: finished at step {m.get('step')} (loss {loss}); {where}"
    line = f"{result.name}: validation accuracy {acc:.3f}"
    if base is not None:
        gain = (acc - base) * 100
        learned = "it learned" if gain >= 5 else "it did NOT learn beyond the majority class"
        line += f" vs {base:.3f} for always answering the majority class ({gain:+.1f} points: {learned})"
    if m.get("zero_shot_accuracy") is not None:
        line += f", {m['zero_shot_accuracy']:.3f} before training"
    if m.get("wall_s") is not None:
        line += f", {m['wall_s']:.0f} s of training"
    return f"{line}; {where}"
