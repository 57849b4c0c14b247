"""s3:// models, datasets and outputs against a real S3 server (SeaweedFS): a model and its data
go in, training runs on them, the trained model and its manifest come out and answer again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_causal_lm import llm_spec, qa_jsonl, tiny_llama  # noqa: F401 (tiny_llama is a fixture)

from transfer_trainers import storage
from transfer_trainers.local import run_local
from transfer_trainers.predict import predict
from transfer_trainers.sources import resolve_model
from transfer_trainers.spec import SpecError


@pytest.fixture
def own_ray(s3_env):
    """A Ray started after the S3 variables are set, so its workers have them (as a pod's would);
    a session-wide Ray started earlier would not."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield
    if ray.is_initialized():
        ray.shutdown()


def test_storage_round_trip(tmp_path: Path, s3_bucket: str, s3_env):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a.txt").write_text("hello")
    storage.upload_dir(tmp_path / "d", f"s3://{s3_bucket}/rt")
    assert storage.is_dir(f"s3://{s3_bucket}/rt") and storage.exists(f"s3://{s3_bucket}/rt/sub/a.txt")
    back = storage.download_dir(f"s3://{s3_bucket}/rt", tmp_path / "back")
    assert (back / "sub" / "a.txt").read_text() == "hello"


def test_missing_s3_model_is_refused(s3_bucket: str, s3_env):
    with pytest.raises(SpecError) as err:
        resolve_model(f"s3://{s3_bucket}/no/such/model")
    assert err.value.field == "spec.model.source" and "not a folder" in str(err.value)


def test_model_and_data_from_s3_output_to_s3(tiny_llama: Path, tmp_path: Path, s3_bucket: str,  # noqa: F811
                                             s3_env, own_ray):
    data = qa_jsonl(tmp_path / "qa.jsonl")
    storage.upload_dir(tiny_llama, f"s3://{s3_bucket}/models/tiny-llama")
    storage.write_bytes(f"s3://{s3_bucket}/data/qa.jsonl", Path(data).read_bytes())
    out = f"s3://{s3_bucket}/outputs/tiny-lora"
    spec = llm_spec(f"s3://{s3_bucket}/models/tiny-llama", f"s3://{s3_bucket}/data/qa.jsonl",
                    trainer={"config": {"zeroShot": False}}, output={"uri": out})
    result = run_local(spec, "s3", runs_dir=tmp_path / "runs", progress=False, num_cpus=2)
    assert result.status == "succeeded", result.error
    manifest = json.loads(storage.read_bytes(f"{out}/manifest.json"))
    assert manifest["format"] == "adapter" and manifest["base_model"].startswith("s3://")
    assert manifest["data"]["sha256"] == hashlib.sha256(Path(data).read_bytes()).hexdigest()
    assert manifest["metrics"]["step"] == 6 and "val_accuracy" in manifest["metrics"]
    assert storage.exists(f"{out}/adapter/adapter_config.json")
    answers = predict(out, ["Item 1 is green. Which colour is it?"], max_new_tokens=2)
    assert len(answers) == 1 and isinstance(answers[0], str)
