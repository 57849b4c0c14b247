"""image-classification: genuine transfer from digits 0-4 to 5-9, and exact resume after an interruption."""

from __future__ import annotations

import json

import pytest
import torch
from trainer_specs import image_spec

from transfer_trainers import runner
from transfer_trainers.local import run_local
from transfer_trainers.recipes import image_classification as ic


def test_pretrained_digits_cnn_is_cached():
    path = ic.ensure_pretrained()
    assert path.exists() and path == ic.pretrained_path()
    state = torch.load(path)
    assert "conv1.0.weight" in state and not any(k.startswith("head.") for k in state)


def test_feature_extraction_on_pretrained_features(ray_session, tmp_path):
    spec = image_spec(strategy={"type": "featureExtraction"}, training={"epochs": 3, "learningRate": 1e-2})
    r = run_local(spec, "img-fe", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    assert r.metrics["trainable_params"] == 64 * 5 + 5
    weights = torch.load(r.model_dir / "weights.pt")
    source = torch.load(ic.pretrained_path())
    for name in ("conv1.0.weight", "conv2.0.weight", "fc.1.weight"):
        assert torch.equal(weights[name], source[name]), name
    assert r.metrics["val_accuracy"] > 0.5  # 5 unseen classes from frozen source features; chance is 0.2


def test_progressive_unfreezing_runs(ray_session, tmp_path):
    spec = image_spec(strategy={"type": "progressiveUnfreezing", "layerLrDecay": 0.5,
                                "progressiveUnfreezing": {"unfreezeEveryEpochs": 0.5, "startLayers": 1}},
                      training={"epochs": 2})
    r = run_local(spec, "img-pu", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    weights, source = torch.load(r.model_dir / "weights.pt"), torch.load(ic.pretrained_path())
    assert not torch.equal(weights["conv1.0.weight"], source["conv1.0.weight"])  # unfrozen by epoch 1.0


@pytest.fixture(scope="module")
def uninterrupted(ray_session, tmp_path_factory):
    return run_local(image_spec(), "full", runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_fine_tune_transfers(uninterrupted):
    r = uninterrupted
    assert r.status == "succeeded", r.error
    assert r.metrics["step"] == 26  # 810 train digits / 32 per batch, one epoch
    assert r.metrics["val_accuracy"] > 0.8


def test_interrupted_run_resumes_to_the_same_weights(uninterrupted, tmp_path):
    first = run_local(image_spec(), "resume", runs_dir=tmp_path, progress=False, _stop_at_step=13)
    assert first.status == "interrupted", first.error
    found = runner.latest_checkpoint(str(tmp_path / "resume" / "ray"))
    assert found is not None and found[1]["step"] == 13 and found[1]["seed"] == 0

    second = run_local(image_spec(), "resume", runs_dir=tmp_path, progress=False)
    assert second.status == "succeeded", second.error
    assert second.resumed_from_step == 13
    assert second.metrics["step"] == 26
    a = torch.load(uninterrupted.model_dir / "weights.pt")
    b = torch.load(second.model_dir / "weights.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name  # same data order, RNG, optimizer and LR schedule
    steps = [json.loads(x)["step"] for x in (tmp_path / "resume" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert steps == list(range(1, 27))  # the resumed run continues at step 14
