"""A minimal third-party trainer: logistic regression on a CSV of numeric columns.

Install it next to transfer-operator with an entry point in its own pyproject.toml:

    [project.entry-points.transfer_trainers]
    minimal-logreg = "minimal_trainer:TRAINER"

and a TransferJob selects it with `spec.trainer.name: minimal-logreg`. It depends only on
the contract (spec fields + Ray Train), not on transfer_trainers internals.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field


class LogRegConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: list[str] = Field(min_length=1)


class InvalidJob(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _rows(uri: str) -> list[dict[str, str]]:
    with open(uri.removeprefix("file://"), newline="") as f:
        return list(csv.DictReader(f))


class MinimalLogReg:
    name = "minimal-logreg"
    config_schema = LogRegConfig

    def validate(self, job: Any) -> None:  # job: transfer_trainers.spec.JobSpec (duck-typed)
        cfg = LogRegConfig.model_validate(job.trainer.config)
        if not Path(job.dataset.uri.removeprefix("file://")).exists():
            raise InvalidJob("spec.dataset.uri", f"{job.dataset.uri} does not exist")
        header = _rows(job.dataset.uri)[0].keys()
        for col in [*cfg.features, job.dataset.label_column]:
            if col not in header:
                raise InvalidJob("spec.trainer.config.features", f"column {col!r} not in {sorted(header)}")

    def train_loop_per_worker(self, config: dict[str, Any]) -> None:
        import ray.train

        spec = config["job"]  # wire form (camelCase), as the operator wrote it
        cfg = LogRegConfig.model_validate(spec["trainer"]["config"])
        rows = _rows(spec["dataset"]["uri"])
        label = spec["dataset"].get("labelColumn", "label")
        x = torch.tensor([[float(r[c]) for c in cfg.features] for r in rows])
        y = torch.tensor([float(r[label]) for r in rows])
        torch.manual_seed(spec["training"].get("seed", 0))
        model = torch.nn.Linear(x.shape[1], 1)
        opt = torch.optim.SGD(model.parameters(), lr=spec["training"].get("learningRate", 0.1))
        steps = spec["training"].get("maxSteps") or 50
        start = 0
        ckpt = ray.train.get_checkpoint()  # this run's own (worker restart) ...
        if ckpt is None and config.get("resume_from"):  # ... or the operator's / an earlier run's
            ckpt = ray.train.Checkpoint(config["resume_from"])
        if ckpt is not None:
            with ckpt.as_directory() as d:
                state = torch.load(Path(d) / "state.pt")
            model.load_state_dict(state["model"])
            start = state["step"]
        for _ in range(start + 1, steps + 1):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = ((model(x).squeeze(-1) > 0).float() == y).float().mean().item()
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": model.state_dict(), "step": steps, "seed": spec["training"].get("seed", 0)},
                       Path(tmp) / "state.pt")
            ray.train.report({"step": steps, "train_loss": loss.item(), "train_accuracy": acc, "final": True},
                             checkpoint=ray.train.Checkpoint.from_directory(tmp))


TRAINER = MinimalLogReg()
