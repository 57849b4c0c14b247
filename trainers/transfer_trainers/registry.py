"""Find trainers: entry points in group `transfer_trainers`, plus the built-ins.

The built-ins are registered here too so that tests and `transferctl run` work from a
source checkout where the distribution (and hence its entry points) is not installed.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from transfer_trainers.contract import ENTRY_POINT_GROUP, Trainer, TrainerError

BUILTINS: dict[str, str] = {
    "text-classification": "transfer_trainers.recipes.text_classification:TRAINER",
    "image-classification": "transfer_trainers.recipes.image_classification:TRAINER",
    "causal-lm": "transfer_trainers.recipes.causal_lm:TRAINER",
}


def _load(target: str) -> Trainer:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]


def available() -> dict[str, str]:
    """name -> "module:attr" of every trainer that can be loaded."""
    found = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def get_trainer(name: str) -> Trainer:
    targets = available()
    if name not in targets:
        raise TrainerError(
            "spec.trainer.name",
            f"no trainer named {name!r}; installed: {sorted(targets)}. A third-party trainer "
            f"must be installed in the image and declare an entry point in group {ENTRY_POINT_GROUP!r}.",
        )
    trainer = _load(targets[name])
    missing = [a for a in ("name", "config_schema", "validate", "train_loop_per_worker") if not hasattr(trainer, a)]
    if missing:
        raise TrainerError("spec.trainer.name", f"{targets[name]} is not a trainer: it lacks {missing}")
    return trainer
