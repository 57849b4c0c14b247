"""Bad TransferJobs fail before Ray starts, with a message naming the field to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_specs import image_spec, text_spec

from transfer_trainers import local, runner
from transfer_trainers.local import run_local
from transfer_trainers.spec import SpecError


@pytest.fixture
def no_ray(monkeypatch):
    """Starting Ray or a Ray Train run is a test failure here: validation must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("Ray was started for an invalid job")

    monkeypatch.setattr(local, "_start_ray", boom)
    monkeypatch.setattr(runner, "run_job", boom)


def labelled_csv(tmp_path: Path, val_labels: tuple[str, ...] = ("pos", "neg")) -> str:
    rows = ["review,sentiment,split"]
    rows += [f"good movie {i},pos,train" for i in range(10)] + [f"bad movie {i},neg,train" for i in range(10)]
    rows += [f"a film {i},{lab},validation" for i, lab in enumerate(val_labels)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.mark.parametrize("override, field, words", [
    pytest.param({"model": {"source": "path:/nonexistent/model"}}, "spec.model.source", "does not exist",
                 id="missing-model-path"),
    pytest.param({"model": {"source": "package:not-a-model-package"}}, "spec.model.source", "not installed",
                 id="missing-model-package"),
    pytest.param({"strategy": {"type": "lora", "lora": {"rnak": 8}}}, "spec.strategy.lora.rnak", "unknown option",
                 id="unknown-strategy-option"),
    pytest.param({"strategy": {"type": "fineTunning"}}, "spec.strategy.type", "fineTunning",
                 id="unknown-strategy-type"),
    pytest.param({"strategy": {"type": "lora", "lora": {"targetModules": ["query", "q_proj"]}}},
                 "spec.strategy.lora.targetModules", "q_proj", id="unknown-target-module"),
    pytest.param({"strategy": {"type": "lora", "lora": {"rank": 512}}}, "spec.strategy.lora.rank", "384",
                 id="lora-rank-larger-than-layer"),
    pytest.param({"strategy": {"type": "lora", "lora": {"quantize4bit": True}}},
                 "spec.strategy.lora.quantize4bit", "GPU", id="qlora-without-gpu"),
    pytest.param({"strategy": {"type": "lora", "layerLrDecay": 0.8}}, "spec.strategy.layerLrDecay", "fineTune",
                 id="layer-lr-decay-with-lora"),
    pytest.param({"strategy": {"type": "fineTune", "fineTune": {"topKLayers": 9}}},
                 "spec.strategy.fineTune.topKLayers", "layers", id="top-k-too-deep"),
    pytest.param({"dataset": {"textColumn": "review"}}, "spec.dataset.textColumn", "review", id="wrong-text-column"),
    pytest.param({"dataset": {"labelColumn": "sentiment"}}, "spec.dataset.labelColumn", "sentiment",
                 id="wrong-label-column"),
    pytest.param({"dataset": {"uri": "builtin:imdb"}}, "spec.dataset.uri", "builtin:imdb", id="unknown-dataset"),
    pytest.param({"trainer": {"name": "no-such-trainer"}}, "spec.trainer.name", "no-such-trainer",
                 id="unknown-trainer"),
    pytest.param({"trainer": {"config": {"poolng": "cls"}}}, "spec.trainer.config.poolng", "unknown option",
                 id="unknown-trainer-config"),
    pytest.param({"training": {"batchSize": 0}}, "spec.training.batchSize", "greater than 0", id="zero-batch"),
    pytest.param({"model": {"task": "imageClassification"}}, "spec.model.task", "image-classification",
                 id="wrong-task"),
    pytest.param({"strategy": {"type": "distillation", "distillation": {
        "teacher": {"source": "path:/no/teacher"}}}},
        "spec.strategy.distillation.teacher.source", "does not exist", id="missing-teacher"),
    pytest.param({"strategy": {"type": "distillation"}}, "spec.strategy.distillation", "teacher",
                 id="distillation-without-teacher"),
])
def test_bad_text_job_fails_before_ray(override, field, words, no_ray, tmp_path):
    with pytest.raises(SpecError) as err:
        run_local(text_spec(**override), "bad", runs_dir=tmp_path, progress=False)
    assert err.value.field == field
    assert words in str(err.value)


def test_unknown_validation_label_is_named(tmp_path):
    uri = labelled_csv(tmp_path, val_labels=("pos", "meh"))
    spec = text_spec(dataset={"uri": uri, "format": "csv", "textColumn": "review", "labelColumn": "sentiment",
                              "splits": {"train": "train", "validation": "validation"}, "maxExamples": None})
    with pytest.raises(SpecError) as err:
        runner.prepare(spec, use_gpu=False)
    assert err.value.field == "spec.dataset.labelColumn"
    assert "meh" in str(err.value)


def test_label_outside_declared_labels(tmp_path):
    uri = labelled_csv(tmp_path)
    spec = text_spec(dataset={"uri": uri, "textColumn": "review", "labelColumn": "sentiment", "maxExamples": None},
                     trainer={"config": {"labels": ["pos"]}})
    with pytest.raises(SpecError) as err:
        runner.prepare(spec, use_gpu=False)
    assert err.value.field == "spec.dataset.labelColumn" and "neg" in str(err.value)


def test_good_csv_job_validates(tmp_path):
    uri = labelled_csv(tmp_path)
    spec = text_spec(dataset={"uri": uri, "textColumn": "review", "labelColumn": "sentiment",
                              "splits": {"validation": "validation"}, "maxExamples": None})
    prepared = runner.prepare(spec, use_gpu=False)
    assert prepared.job.resources.gpus_per_worker == 0  # CPU machine: GPUs count as 0


@pytest.mark.parametrize("override, field", [
    pytest.param({"strategy": {"type": "lora"}}, "spec.strategy.type", id="lora-on-cnn"),
    pytest.param({"model": {"source": "path:/nowhere"}}, "spec.model.source", id="missing-image-model"),
    pytest.param({"dataset": {"uri": "builtin:rotten-tomatoes"}}, "spec.dataset.uri", id="text-data-for-images"),
])
def test_bad_image_job_fails_before_ray(override, field):
    with pytest.raises(SpecError) as err:
        runner.prepare(image_spec(**override), use_gpu=False)
    assert err.value.field == field


def test_operator_fields_are_ignored():
    spec = image_spec(placement={"regions": ["eu-west"]}, budget={"maxDollars": 5}, priority=3, queue="q",
                      suspend=False)
    assert runner.prepare(spec, use_gpu=False).job.strategy.type == "fineTune"
