"""The loop skeleton the recipes share, and the helpers it is made of (no base class).

A recipe builds its model, parameter groups and loss (strategies.py, recipes/*.py); what is
here is the part that must behave the same in every recipe for the operator to rely on it,
written once: seeding, the data order (so a resumed run sees the batches it would have seen),
the LR schedule, gradient averaging across workers, clipping, evaluation and early stopping,
checkpoint layout and resume (with its seed check), progress and stop requests.
`TrainLoop` strings them together; a recipe hands it a `train_step` and an `evaluate`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfer_trainers.contract import ConfigT, TrainerError, parse_config
from transfer_trainers.spec import JobSpec

logger = logging.getLogger(__name__)

STATE_FILE = "state.pt"
META_FILE = "meta.json"  # {"step", "seed", "epoch", "final"}: readable without torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


GROUP_BATCHES = 32  # length grouping sorts windows of this many global batches


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int,
                  lengths: list[int] | None = None) -> list[list[int]]:
    """This worker's batches for one epoch: a permutation fixed by (seed, epoch), sharded by rank.

    Every worker gets the same number of examples (the tail that does not divide is dropped),
    so all workers take the same number of steps and meet at each report.

    With `lengths` (tokens per example), batches are grouped by length, as Hugging Face's
    `group_by_length` does: the permutation is cut into windows of GROUP_BATCHES global
    batches, each window sorted by length and cut into global batches, and the order of all
    global batches shuffled (by the same seed); each global batch is then dealt out by rank.
    Padding to the longest in a batch then costs little. Still a pure function of (seed,
    epoch), so a resumed run sees the batches it would have seen.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_worker = n // world
    if lengths is None:
        shard = perm[rank::world][:per_worker]
        return [shard[i : i + batch_size] for i in range(0, per_worker, batch_size)]
    keep = perm[: per_worker * world]  # the same examples as the plain order keeps
    span, window = batch_size * world, batch_size * world * GROUP_BATCHES
    grouped: list[list[int]] = []
    for w in range(0, len(keep), window):
        part = sorted(keep[w : w + window], key=lambda i: -lengths[i])
        grouped += [part[i : i + span] for i in range(0, len(part), span)]
    order = torch.randperm(len(grouped), generator=g).tolist()
    return [grouped[j][rank::world] for j in order]


def steps_per_epoch(n: int, batch_size: int, world: int) -> int:
    return max(1, math.ceil((n // world) / batch_size))


DEFAULT_EPOCHS = 3.0
MIN_DEFAULT_STEPS = 100  # without `epochs`, small data gets more passes (up to MAX_DEFAULT_EPOCHS)
MAX_DEFAULT_EPOCHS = 20


def total_steps(n: int, batch_size: int, world: int, epochs: float | None, max_steps: int | None) -> int:
    """`maxSteps`, else `epochs` passes, else 3 passes raised to at least 100 steps (at most 20
    passes): a few hundred labels at batch 16 are 20 steps an epoch, too few for a new head."""
    spe = steps_per_epoch(n, batch_size, world)
    if max_steps:
        return max_steps
    if epochs is not None:
        return max(1, math.ceil(epochs * spe))
    return max(math.ceil(DEFAULT_EPOCHS * spe), min(MIN_DEFAULT_STEPS, MAX_DEFAULT_EPOCHS * spe))


def lr_lambda(schedule: str, warmup_steps: int, total: int):
    """Multiplier of the base LR at a step: linear warm-up, then linear/cosine decay or constant."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total - warmup_steps)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return f


def majority_accuracy(train_y: list[int], val_y: list[int]) -> float:
    """Validation accuracy of always answering the most common training label: the bar a model
    must clear to have learned anything from the inputs."""
    if not train_y or not val_y:
        return 0.0
    majority = max(set(train_y), key=train_y.count)
    return sum(1 for y in val_y if y == majority) / len(val_y)


def trainable_counts(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def autocast(enabled: bool):
    """bf16 autocast on a GPU when asked; a no-op on CPU (mixed precision needs a GPU here)."""
    if enabled and torch.cuda.is_available():
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


def save_state(directory: Path, state: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state, directory / STATE_FILE)
    meta: dict[str, Any] = {k: state[k] for k in ("step", "seed", "epoch", "final") if k in state}
    # The upload of a checkpoint may be cut off between its files: resume checks this size.
    meta["state_bytes"] = (directory / STATE_FILE).stat().st_size
    (directory / META_FILE).write_text(json.dumps(meta))


def load_state(checkpoint: Any) -> dict[str, Any]:
    """Read state.pt from a ray.train.Checkpoint."""
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)


def report(metrics: dict[str, Any], state: dict[str, Any] | None, rank: int, export=None,
           config: dict[str, Any] | None = None) -> None:
    """ray.train.report on every worker (they must call it together); rank 0 adds the checkpoint.

    `export(dir)` writes the adapted model into `dir/model` of the checkpoint (final one only).
    In-process runs (benchmarks) collect the metrics in config["reports"] instead.
    """
    if config is not None and config.get("in_process"):
        config.setdefault("reports", []).append(metrics)
        if export is not None and config.get("export_dir"):
            export(Path(config["export_dir"]))
        return
    import ray.train

    if state is None or rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_state(Path(tmp), state)
        if export is not None:
            export(Path(tmp) / "model")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def get_checkpoint(config: dict[str, Any] | None = None) -> Any:
    """The checkpoint to start from: this run's latest (Ray restarts a failed worker group with
    it), else the one the runner found (config["resume_from"]: TRANSFER_RESUME_FROM or the
    latest under the storage path; Ray Train v2 dropped `resume_from_checkpoint`)."""
    config = config or {}
    if config.get("in_process"):
        return None
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None and config.get("resume_from"):
        ckpt = ray.train.Checkpoint(config["resume_from"])
    return ckpt


class Progress:
    """Rank 0's running record: a JSON line per event in `progress_file` (local runs) and Ray gauges.

    `stop_requested` turns a stop file (written by the local runner on Ctrl-C) or a test's
    `stop_at_step` into one decision shared by all workers.
    """

    def __init__(self, config: dict[str, Any], rank: int, world: int) -> None:
        self.rank, self.world = rank, world
        self.file = Path(config["progress_file"]) if config.get("progress_file") and rank == 0 else None
        self.stop_file = Path(config["stop_file"]) if config.get("stop_file") else None
        self.stop_at_step = config.get("stop_at_step")
        self.job = config.get("job_name", "job")
        self.t_last = time.perf_counter()
        self.samples = 0
        self.gauges: dict[str, Any] = {}
        if rank == 0 and not config.get("in_process"):
            try:
                from ray.util.metrics import Gauge

                for name, desc in (
                    ("transfer_train_loss", "training loss of the last step"),
                    ("transfer_train_accuracy", "validation accuracy of the last evaluation"),
                    ("transfer_train_samples_per_second", "training throughput of this job"),
                    ("transfer_train_tokens_per_second", "tokens (non-padding) trained per second"),
                    ("transfer_train_gpu_memory_bytes", "peak GPU memory allocated by rank 0"),
                ):
                    self.gauges[name] = Gauge(name, description=desc, tag_keys=("transferjob",))
            except Exception:  # metrics are best effort: never fail a training run on them
                self.gauges = {}

    def write(self, event: dict[str, Any]) -> None:
        if self.file is not None:
            with self.file.open("a") as f:
                f.write(json.dumps({**event, "time": round(time.time(), 3)}) + "\n")

    def gauge(self, name: str, value: float) -> None:
        if name in self.gauges:
            self.gauges[name].set(float(value), tags={"transferjob": self.job})

    def step(self, step: int, total: int, epoch: float, loss: float, lr: float, batch: int,
             tokens: int | None = None) -> float:
        self.samples += batch * self.world
        now = time.perf_counter()
        elapsed = max(1e-9, now - self.t_last)
        sps = batch * self.world / elapsed
        self.t_last = now
        if self.rank == 0:
            event: dict[str, Any] = {"kind": "train", "step": step, "total": total, "epoch": round(epoch, 4),
                                     "loss": loss, "lr": lr, "samples_per_s": sps}
            self.gauge("transfer_train_loss", loss)
            self.gauge("transfer_train_samples_per_second", sps)
            if tokens is not None:  # text trainers: tokens of this worker's batch, times the workers
                tokens_per_s = tokens * self.world / elapsed
                event["tokens_per_s"] = tokens_per_s
                self.gauge("transfer_train_tokens_per_second", tokens_per_s)
            if torch.cuda.is_available():
                self.gauge("transfer_train_gpu_memory_bytes", float(torch.cuda.max_memory_allocated()))
            self.write(event)
        return sps

    def eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.rank == 0:
            self.write({"kind": "eval", "step": step, **metrics})
            if "val_accuracy" in metrics:
                self.gauge("transfer_train_accuracy", metrics["val_accuracy"])

    def stop_requested(self, step: int) -> bool:
        flag = bool(self.stop_at_step is not None and step >= self.stop_at_step)
        flag = flag or bool(self.stop_file is not None and self.stop_file.exists())
        if self.world > 1 and (self.stop_file is not None or self.stop_at_step is not None):
            import torch.distributed as dist

            t = torch.tensor([1.0 if flag else 0.0])
            dist.all_reduce(t)
            flag = bool(t.item() > 0)
        return flag


def worker_context(config: dict[str, Any] | None = None) -> tuple[int, int, torch.device]:
    """(rank, world size, device); in-process runs are rank 0 of 1."""
    if config is not None and config.get("in_process"):
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    return ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device()


def start_worker(config: dict[str, Any], schema: type[ConfigT]) -> tuple[JobSpec, ConfigT, int, int, torch.device]:
    """What every recipe's loop starts with: (the job, its trainer config as `schema`, rank,
    world size, device), with the libraries quiet and every RNG seeded from spec.training.seed."""
    quiet_libraries()
    job = JobSpec.model_validate(config["job"])
    cfg = parse_config(schema, job)
    rank, world, device = worker_context(config)
    seed_everything(job.training.seed)
    return job, cfg, rank, world, device


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


# --------------------------------------------------------------------------- the loop skeleton


def resume_state(config: dict[str, Any], seed: int) -> dict[str, Any] | None:
    """The state to resume from (see get_checkpoint), or None for a fresh start; a checkpoint
    made under another seed is refused: its data order and RNG streams are not this job's."""
    ckpt = get_checkpoint(config)
    if ckpt is None:
        return None
    state = load_state(ckpt)
    if state["seed"] != seed:
        raise TrainerError("spec.training.seed", f"checkpoint was made with seed {state['seed']}, job has {seed}")
    return state


GRAD_BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Mean of each gradient over the workers, in flat buckets of about 25 MiB (one all-reduce a
    bucket, as DDP does). The recipes that change their trainable set mid-run (progressive
    unfreezing) call this after backward instead of wrapping the model in DDP, which fixes its
    parameter set at wrap time; every worker has the same parameters with a gradient, in the
    same order, so the buckets line up."""
    if world <= 1:
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0
    for i, g in enumerate(grads):
        bucket.append(g)
        size += g.numel() * g.element_size()
        if size >= GRAD_BUCKET_BYTES or i == len(grads) - 1:
            flat = torch.cat([t.reshape(-1) for t in bucket]) if len(bucket) > 1 else bucket[0].reshape(-1)
            dist.all_reduce(flat)
            flat.div_(world)
            if len(bucket) > 1:
                offset = 0
                for t in bucket:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()
            bucket, size = [], 0


@dataclass
class TrainLoop:
    """One recipe run's steps: batches, optimizer and LR schedule, evaluation with early stopping,
    checkpoints, progress and stop requests, resume. The recipe supplies the model (what to
    clip, and what to average when `average_grads`), `train_step(idx)` (forward and backward on
    the examples `idx`, returning the loss and the batch's non-padding tokens or None),
    `evaluate()` ({"val_loss": …, maybe "val_accuracy": …}) and, unless the model's state_dict
    is all there is to keep, `model_state()` (its part of a checkpoint). `step`, `spe` and `total` may be read by train_step while it runs."""

    config: dict[str, Any]
    job: JobSpec
    n_train: int
    rank: int
    world: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    model_state: Callable[[], dict[str, Any]] | None = None  # default {"model": model.state_dict()}
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)  # e.g. the label names
    average_grads: bool = False  # True: all-reduce after backward (no DDP wrapper on the model)
    lengths: list[int] | None = None  # tokens per training example: batches grouped by length
    step: int = 0
    best_val: float = math.inf
    bad_evals: int = 0
    stopped: bool = False  # a stop request (Ctrl-C, preemption): no final report
    early: bool = False  # early stopping ended the run
    losses: list[float] = field(default_factory=list)  # training losses since the last report

    def __post_init__(self) -> None:
        tr = self.job.training
        self.seed: int = tr.seed
        self.spe = steps_per_epoch(self.n_train, tr.batch_size, self.world)
        self.total = total_steps(self.n_train, tr.batch_size, self.world, tr.epochs, tr.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(tr.schedule, int(tr.warmup_ratio * self.total), self.total))
        self.progress = Progress(self.config, self.rank, self.world)

    def resume(self) -> None:
        """Fresh start, or everything from the checkpoint to resume from, the model included
        (for the default model_state; a recipe with its own loads that part and calls restore)."""
        state = resume_state(self.config, self.seed)
        if state is not None:
            self.model.load_state_dict(state["model"])
        self.restore(state)

    def restore(self, state: dict[str, Any] | None) -> None:
        """Optimizer, schedule, RNG streams and counters from `resume_state`."""
        if state is None:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        self.step, self.best_val, self.bad_evals = state["step"], state["best_val"], state["bad_evals"]
        if state.get("world", self.world) != self.world:
            self.rescale(state)

    def rescale(self, state: dict[str, Any]) -> None:
        """Resume a checkpoint of another gang size (the operator resized an elastic gang): batches
        are per worker, so an epoch has another number of steps. The run goes on from the same
        epoch position (`maxSteps` counts steps, so it keeps the step), and the learning-rate
        schedule, built for this size's total, continues from that step."""
        if not self.job.training.max_steps:
            self.step = min(self.total, round(state["epoch"] * self.spe))
        self.scheduler.last_epoch = self.step
        lrs = [base * f(self.step) for base, f in zip(self.scheduler.base_lrs, self.scheduler.lr_lambdas, strict=True)]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.scheduler._last_lr = lrs  # what get_last_lr() reports until the next step
        logger.info("resumed a %d-worker checkpoint on %d workers: epoch %.3f is step %d of %d",
                    state["world"], self.world, state["epoch"], self.step, self.total)

    def snapshot(self, final: bool = False) -> dict[str, Any]:
        model = self.model_state() if self.model_state is not None else {"model": self.model.state_dict()}
        return {**model, **self.checkpoint_extra, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "step": self.step, "world": self.world,
                "seed": self.seed, "epoch": self.step / self.spe, "best_val": self.best_val,
                "bad_evals": self.bad_evals, "final": final}

    def run(self, train_step: Callable[[list[int]], tuple[torch.Tensor, int | None]],
            evaluate: Callable[[], dict[str, float]]) -> None:
        """Train from `step` to `total`; ends early on a stop request (`stopped`) or when the
        validation loss has not improved `earlyStoppingPatience` evaluations in a row (`early`)."""
        tr, progress = self.job.training, self.progress
        self.progress.t_last = time.perf_counter()
        batches: list[list[int]] = []
        batches_epoch = -1
        while self.step < self.total:
            epoch_i, b = divmod(self.step, self.spe)
            if epoch_i != batches_epoch:
                batches = epoch_batches(self.n_train, tr.batch_size, self.seed, epoch_i, self.rank, self.world,
                                        self.lengths)
                batches_epoch = epoch_i
            idx = batches[b]
            loss, tokens = train_step(idx)
            if self.average_grads:
                average_gradients(list(self.model.parameters()), self.world)
            if tr.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None],
                                               tr.grad_clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            step = self.step
            self.losses.append(loss.item())
            lr = float(self.scheduler.get_last_lr()[-1])
            sps = progress.step(step, self.total, step / self.spe, self.losses[-1], lr, len(idx), tokens=tokens)

            eval_now = step % tr.eval_every_steps == 0 and step < self.total
            ckpt_now = step % self.job.checkpoint.every_steps == 0 and step < self.total
            self.stopped = progress.stop_requested(step) and step < self.total
            if eval_now or ckpt_now or self.stopped:
                metrics: dict[str, Any] = {"step": step, "epoch": step / self.spe,
                                           "train_loss": sum(self.losses) / len(self.losses),
                                           "lr": lr, "samples_per_s": sps}
                self.losses = []
                if eval_now:
                    ev = evaluate()
                    metrics.update(ev)
                    progress.eval(step, ev)
                    if ev["val_loss"] < self.best_val - 1e-4:
                        self.best_val, self.bad_evals = ev["val_loss"], 0
                    else:
                        self.bad_evals += 1
                    patience = tr.early_stopping_patience
                    self.early = patience is not None and self.bad_evals >= patience
                keep = ckpt_now or self.stopped or self.early
                report(metrics, self.snapshot() if keep else None, self.rank, config=self.config)
            if self.stopped or self.early:
                break

    def final_metrics(self) -> dict[str, Any]:
        """What every recipe's final report starts with."""
        return {"step": self.step, "epoch": self.step / self.spe,
                "train_loss": sum(self.losses) / len(self.losses) if self.losses else None,
                "early_stopped": self.early, "final": True}

    def finish(self, final: dict[str, Any], export: Callable[[Path], None]) -> None:
        """The last report: the final metrics, the final checkpoint and the exported model."""
        self.progress.eval(self.step, {k: final[k] for k in ("val_loss", "val_accuracy") if k in final})
        report(final, self.snapshot(final=True), self.rank, export=export, config=self.config)
