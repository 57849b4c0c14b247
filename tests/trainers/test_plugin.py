"""The plugin contract: entry-point discovery, the Protocol, a third-party trainer through Ray, launch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from trainer_specs import image_spec

from transfer_trainers import launch, registry
from transfer_trainers.contract import Trainer, TrainerError
from transfer_trainers.local import run_local


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    """Make the example trainer look pip-installed: a dist-info with its entry point on sys.path."""
    dist = tmp_path / "minimal_trainer-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: minimal-trainer\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[transfer_trainers]\nminimal-logreg = minimal_trainer:TRAINER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def table(tmp_path: Path) -> str:
    import random

    rng = random.Random(0)
    rows = ["x1,x2,label"]
    for _ in range(200):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        rows.append(f"{a:.4f},{b:.4f},{int(a + 2 * b > 0)}")
    path = tmp_path / "points.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_builtins_satisfy_the_protocol():
    for name in ("text-classification", "image-classification"):
        trainer = registry.get_trainer(name)
        assert isinstance(trainer, Trainer) and trainer.name == name


def test_entry_point_trainer_is_found(installed_example):
    assert registry.available()["minimal-logreg"] == "minimal_trainer:TRAINER"
    assert isinstance(registry.get_trainer("minimal-logreg"), Trainer)


def test_third_party_trainer_end_to_end(ray_session, installed_example, tmp_path):
    spec = {
        "model": {"source": "path:/unused", "task": "tabularClassification"},
        "dataset": {"uri": table(tmp_path), "format": "csv"},
        "strategy": {"type": "fineTune"},
        "trainer": {"name": "minimal-logreg", "config": {"features": ["x1", "x2"]}},
        "training": {"maxSteps": 100, "learningRate": 0.5},
        "resources": {"workers": 1, "gpusPerWorker": 0},
    }
    r = run_local(spec, "logreg", runs_dir=tmp_path / "runs", progress=False)
    assert r.status == "succeeded", r.error
    assert r.metrics["train_accuracy"] > 0.9
    bad = {**spec, "trainer": {"name": "minimal-logreg", "config": {"features": ["x3"]}}}
    with pytest.raises(ValueError, match="spec.trainer.config.features"):
        run_local(bad, "logreg-bad", runs_dir=tmp_path / "runs", progress=False)


def test_launch_runs_from_the_operator_environment(ray_session, tmp_path, capsys):
    spec = image_spec(training={"maxSteps": 8}, checkpoint={"everySteps": 4, "uri": "s3://ignored"})
    env = {"TRANSFER_JOB": json.dumps(spec), "TRANSFER_JOB_NAME": "digits", "TRANSFER_JOB_NAMESPACE": "team",
           "TRANSFER_STORAGE_PATH": str(tmp_path / "store"), "TRANSFER_ATTEMPT": "1"}
    assert launch.main(env) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["final_metrics"]["step"] == 8
    assert Path(out["checkpoint"]).is_dir() and "digits-attempt-1" in out["checkpoint"]


def test_launch_rejects_bad_spec_without_ray(capsys):
    env = {"TRANSFER_JOB": json.dumps(image_spec(strategy={"type": "lora"})), "TRANSFER_JOB_NAME": "x"}
    assert launch.main(env) == 2
    assert "spec.strategy.type" in capsys.readouterr().err


def test_launch_says_in_one_line_that_its_storage_is_unreachable(monkeypatch, capsys):
    """No traceback: the last line (what KubeRay's RayJob message shows) names the storage."""
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "k",
                       "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    spec = image_spec(training={"maxSteps": 8}, checkpoint={"everySteps": 4})
    env = {"TRANSFER_JOB": json.dumps(spec), "TRANSFER_JOB_NAME": "digits",
           "TRANSFER_STORAGE_PATH": "s3://bucket/checkpoints/digits"}
    assert launch.main(env) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("training failed: checkpoint storage s3://bucket/checkpoints/digits is unreachable ("), last


def test_unknown_trainer_error_lists_installed():
    with pytest.raises(TrainerError, match="text-classification"):
        registry.get_trainer("nope")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
