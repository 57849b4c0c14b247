"""Recipe `image-classification`: a small CNN on scikit-learn's 8x8 digits.

Its pre-trained model `builtin:digits-cnn` is made by this project: trained on a source task
(digits 0-4, `builtin:digits-0-4`), cached under ~/.cache/transfer-operator/models/, then
transferred to the target task (digits 5-9, `builtin:digits`) with featureExtraction,
fineTune or progressiveUnfreezing (+ layerLrDecay). The source and target classes do not
overlap, so whatever the target gains from the backbone is genuine transfer of features.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transfer_trainers import datasets, loop, strategies
from transfer_trainers.contract import Recipe, TrainerError, parse_config
from transfer_trainers.sources import EXPORT_MARKER
from transfer_trainers.spec import DatasetSpec, JobSpec, StrictWire

NAME = "image-classification"
BUILTIN_MODEL = "builtin:digits-cnn"
MODEL_VERSION = "v1"


class ImageConfig(StrictWire):
    from_scratch: bool = Field(False, description="random init instead of the pre-trained backbone (baselines)")
    eval_batch_size: int = Field(256, gt=0)


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU())
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(64, num_classes)

    def layers(self) -> list[nn.Module]:
        return [self.conv1, self.conv2, self.fc]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def pretrained_path() -> Path:
    return datasets.CACHE / "models" / "digits-cnn" / MODEL_VERSION / "weights.pt"


def ensure_pretrained() -> Path:
    """Train the source model (digits 0-4) once and cache it; deterministic, a few seconds on CPU."""
    path = pretrained_path()
    if path.exists():
        return path
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    rows = datasets.digits(range(0, 5))
    x = torch.tensor([r["image"] for r in rows], dtype=torch.float32).unsqueeze(1)
    y = torch.tensor([r["label"] for r in rows])
    model = DigitsCNN(5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(15):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("head.")}, tmp)
    os.replace(tmp, path)  # atomic: workers may race to create it
    return path


def _model_path(source: str) -> Path:
    if source == BUILTIN_MODEL:
        return ensure_pretrained()
    path = Path(source.removeprefix("path:").removeprefix("file://")).expanduser()
    if not (path / "weights.pt").exists():
        raise TrainerError("spec.model.source", f"{source!r}: use {BUILTIN_MODEL} or a directory exported by "
                                                "this trainer (holding weights.pt)")
    return path / "weights.pt"


def _images(rows: list[Any]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(1)


def validate(job: JobSpec) -> None:
    if job.model.task != "imageClassification":
        raise TrainerError("spec.model.task", f"{NAME} trains imageClassification, not {job.model.task}")
    parse_config(ImageConfig, job)
    st = job.strategy
    if st.type not in ("featureExtraction", "fineTune", "progressiveUnfreezing"):
        raise TrainerError("spec.strategy.type", f"{NAME} supports featureExtraction, fineTune and "
                                                 f"progressiveUnfreezing, not {st.type}; use text-classification for it")
    if st.type == "fineTune" and (st.fine_tune.top_k_layers or 0) > 3:
        raise TrainerError("spec.strategy.fineTune.topKLayers", "the digits CNN has 3 layers (conv1, conv2, fc)")
    if st.type == "progressiveUnfreezing" and st.progressive_unfreezing.start_layers > 3:
        raise TrainerError("spec.strategy.progressiveUnfreezing.startLayers", "the digits CNN has 3 layers")
    if not job.dataset.uri.startswith("builtin:digits"):
        raise TrainerError("spec.dataset.uri", f"{NAME} reads builtin:digits (5-9) or builtin:digits-0-4")
    _model_path(job.model.source)
    datasets.prepare(job.dataset, job.training.seed, input_key="image")


def train_loop_per_worker(config: dict[str, Any]) -> None:
    job, cfg, rank, world, device = loop.start_worker(config, ImageConfig)
    tr, st, seed = job.training, job.strategy, job.training.seed
    t_start = time.perf_counter()
    ds: DatasetSpec = job.dataset
    train_x, train_y, val_x, val_y, labels = datasets.prepare(ds, seed, input_key="image")
    x_train, y_train = _images(train_x), torch.tensor(train_y)
    x_val, y_val = _images(val_x).to(device), torch.tensor(val_y).to(device)

    model = DigitsCNN(len(labels))
    if not cfg.from_scratch:
        state = torch.load(_model_path(job.model.source), map_location="cpu")
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")}, strict=False)
    layers = model.layers()
    strategies.set_trainable(layers, model.head, strategies.trainable_top_layers(st, len(layers), 0.0))
    groups = strategies.param_groups(layers, [model.head], st, tr)
    model.to(device)
    optimizer = strategies.make_optimizer(groups, tr)
    n_trainable = sum(p.numel() for g in groups for p in g["params"])
    n_params = sum(p.numel() for p in model.parameters())

    run = loop.TrainLoop(config, job, len(train_x), rank, world, model, optimizer, average_grads=True,
                         checkpoint_extra={"labels": labels})
    run.resume()

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_val[i : i + cfg.eval_batch_size])
                                for i in range(0, len(x_val), cfg.eval_batch_size)])
        return {"val_loss": F.cross_entropy(logits, y_val).item(),
                "val_accuracy": (logits.argmax(-1) == y_val).float().mean().item()}

    def export(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "weights.pt")
        (out / EXPORT_MARKER).write_text(json.dumps({"trainer": NAME, "labels": labels, "strategy": st.type}))

    def train_step(idx: list[int]) -> tuple[torch.Tensor, int | None]:
        if st.type == "progressiveUnfreezing":
            strategies.set_trainable(layers, model.head, strategies.trainable_top_layers(st, len(layers), run.step / run.spe))
        model.train()
        loss = F.cross_entropy(model(x_train[idx].to(device)), y_train[idx].to(device))
        loss.backward()
        return loss, None

    run.run(train_step, evaluate)
    if run.stopped:
        return
    final = {**run.final_metrics(), **evaluate(), "trainable_params": n_trainable, "total_params": n_params,
             "majority_accuracy": loop.majority_accuracy(train_y, val_y),
             "wall_s": time.perf_counter() - t_start, "labels": [str(x) for x in labels]}
    run.finish(final, export)


TRAINER = Recipe(NAME, ImageConfig, validate, train_loop_per_worker)
