"""Gradient sync across workers: the classifiers' bucketed all-reduce on a real 2-process gloo
group, and the recipes under Ray Train with 2 CPU workers (gloo), the trainable set changing
mid-run (progressive unfreezing)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from trainer_specs import image_spec, text_spec

from transfer_trainers import loop
from transfer_trainers.local import run_local

SHAPES = [(3, 5), (7,), (2, 2, 2), (11,), (1,)]


def _grads(rank: int) -> list[torch.nn.Parameter]:
    params = []
    for i, shape in enumerate(SHAPES):
        p = torch.nn.Parameter(torch.zeros(shape))
        if i != 3:  # a parameter that did not train this step (grad None) is skipped on every rank
            g = torch.Generator().manual_seed(100 * rank + i)
            p.grad = torch.randn(shape, generator=g)
        params.append(p)
    return params


def _worker(rank: int, init_file: str, bucket_bytes: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    loop.GRAD_BUCKET_BYTES = bucket_bytes
    params = _grads(rank)
    loop.average_gradients(params, 2)
    torch.save([p.grad for p in params], f"{out}.{rank}")
    dist.destroy_process_group()


def test_bucketed_all_reduce_averages_every_gradient(tmp_path: Path):
    want = [None if a.grad is None else (a.grad + b.grad) / 2 for a, b in zip(_grads(0), _grads(1), strict=True)]
    # 40 bytes: buckets of one to three tensors; 1 MiB: everything in one bucket
    for bucket_bytes in (40, 2**20):
        init = tmp_path / f"init-{bucket_bytes}"
        out = tmp_path / f"grads-{bucket_bytes}"
        mp.start_processes(_worker, args=(str(init), bucket_bytes, str(out)), nprocs=2, start_method="spawn")
        for rank in (0, 1):
            got = torch.load(f"{out}.{rank}")
            for g, w in zip(got, want, strict=True):
                assert (g is None) == (w is None)
                if w is not None:
                    torch.testing.assert_close(g, w)


def _train_steps(run_dir: Path) -> list[int]:
    return [e["step"] for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if e["kind"] == "train"]


def test_image_progressive_unfreezing_on_two_workers(ray_session, tmp_path: Path):
    spec = image_spec(strategy={"type": "progressiveUnfreezing",
                                "progressiveUnfreezing": {"unfreezeEveryEpochs": 0.5, "startLayers": 1}},
                      training={"epochs": 2}, resources={"workers": 2})
    r = run_local(spec, "img-ddp", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    # 810 training digits: 405 a worker, 13 steps of 32 an epoch (the global batch is 64)
    assert r.metrics["step"] == 26 and _train_steps(r.run_dir) == list(range(1, 27))
    assert r.metrics["val_accuracy"] > 0.8


def test_text_lora_on_two_workers(ray_session, tmp_path: Path):
    spec = text_spec(strategy={"type": "lora", "lora": {"rank": 4, "alpha": 8, "targetModules": ["query", "value"]}},
                     training={"maxSteps": 6, "evalEverySteps": 3}, resources={"workers": 2, "gpusPerWorker": 0})
    r = run_local(spec, "text-ddp", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    assert r.metrics["step"] == 6 and r.metrics["final"]
    assert (r.model_dir / "adapter").is_dir()


def test_a_checkpoint_of_one_worker_resumes_on_two_at_the_same_epoch_position(ray_session, tmp_path: Path):
    """The operator grows an elastic gang by restarting it at the new size from its checkpoint:
    batches are per worker, so step 13 of 26 (epoch 0.5 on one worker) is step 6 or 7 of 13 on two."""
    first = run_local(image_spec(), "resize", runs_dir=tmp_path, progress=False, _stop_at_step=13)
    assert first.status == "interrupted", first.error
    second = run_local(image_spec(resources={"workers": 2}), "resize", runs_dir=tmp_path, progress=False)
    assert second.status == "succeeded", second.error
    assert second.resumed_from_step == 13
    steps = _train_steps(second.run_dir)
    assert steps[:13] == list(range(1, 14))  # one worker's steps, then two workers' from epoch 0.5
    assert steps[13:] in (list(range(7, 14)), list(range(8, 14)))
    assert second.metrics["step"] == 13 and second.metrics["epoch"] == 1.0
    assert second.metrics["val_accuracy"] > 0.8
    reports = [json.loads(x) for x in (second.run_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = [e["lr"] for e in reports if e["kind"] == "train"]
    # The schedule goes on from the same point of the run: no jump back to the warm-up's start.
    assert lrs[13] <= lrs[12] * 1.5 and lrs[-1] < lrs[13]
