"""Defaults that learn: the head's own LR, enough steps on small data, and the run's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfer_trainers import loop, strategies
from transfer_trainers.local import RunResult, verdict
from transfer_trainers.spec import TrainingSpec


def test_a_new_head_trains_twenty_times_faster_than_the_backbone_by_default():
    assert strategies.head_lr(TrainingSpec(learning_rate=1e-3)) == pytest.approx(2e-2)
    assert strategies.head_lr(TrainingSpec(learning_rate=1e-3, head_learning_rate=5e-3)) == 5e-3


@pytest.mark.parametrize("n, epochs, max_steps, want", [
    pytest.param(4000, None, None, 750, id="big-data-3-epochs"),
    pytest.param(400, None, None, 100, id="small-data-raised-to-100-steps"),
    pytest.param(40, None, None, 60, id="tiny-data-capped-at-20-epochs"),
    pytest.param(400, 1.0, None, 25, id="explicit-epochs-kept"),
    pytest.param(400, None, 7, 7, id="max-steps-wins"),
])
def test_total_steps(n, epochs, max_steps, want):
    assert loop.total_steps(n, 16, 1, epochs, max_steps) == want


def test_majority_accuracy_is_the_share_of_the_training_majority_in_validation():
    assert loop.majority_accuracy([0, 1, 1, 1], [1, 0, 0, 0]) == 0.25


def test_verdict_says_whether_the_model_beat_the_majority_class(tmp_path: Path):
    good = RunResult("j", tmp_path, "succeeded", {"val_accuracy": 0.8, "majority_accuracy": 0.5, "wall_s": 90},
                     model_dir=tmp_path / "model")
    assert "+30.0 points: it learned" in verdict(good) and str(tmp_path / "model") in verdict(good)
    flat = RunResult("j", tmp_path, "succeeded", {"val_accuracy": 0.51, "majority_accuracy": 0.5})
    assert "did NOT learn" in verdict(flat)
    assert "failed" in verdict(RunResult("j", tmp_path, "failed", error="boom"))
