"""The trainer's own reading of a TransferJob's `spec` (wire form, camelCase).

The operator owns the CRD; these models only read the fields a trainer needs and ignore
the rest (placement, budget, priority, queue, suspend), so the two sides can evolve apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class StrictWire(BaseModel):
    """Strategy options: a misspelt option is an error, not a silently ignored key."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


Task = Literal["textClassification", "imageClassification", "tabularClassification", "causalLM"]


class ModelSpec(Wire):
    source: str
    task: Task = "textClassification"
    architecture: str | None = None


class Splits(Wire):
    train: str = "train"
    validation: str | None = None
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)


class DatasetSpec(Wire):
    uri: str
    format: Literal["csv", "jsonl", "parquet", "builtin"] | None = None
    text_column: str = "text"
    label_column: str = "label"
    splits: Splits = Field(default_factory=Splits)
    max_examples: int | None = Field(None, gt=0)


class FineTune(StrictWire):
    top_k_layers: int | None = Field(None, ge=0)


class ProgressiveUnfreezing(StrictWire):
    unfreeze_every_epochs: float = Field(1.0, gt=0)
    start_layers: int = Field(0, ge=0)


class Lora(StrictWire):
    rank: int = Field(8, gt=0)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["query", "value"]
    quantize4bit: bool = False


class Distillation(StrictWire):
    teacher: ModelSpec
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)


class DomainAdaptation(StrictWire):
    method: Literal["dann"] = "dann"
    target_dataset: DatasetSpec
    adversarial_weight: float = Field(0.1, ge=0)


StrategyType = Literal[
    "featureExtraction", "fineTune", "progressiveUnfreezing", "lora", "distillation", "domainAdaptation"
]


class StrategySpec(StrictWire):
    type: StrategyType
    layer_lr_decay: float | None = Field(None, gt=0, le=1)
    fine_tune: FineTune = Field(default_factory=FineTune)
    progressive_unfreezing: ProgressiveUnfreezing = Field(default_factory=ProgressiveUnfreezing)
    lora: Lora = Field(default_factory=Lora)
    distillation: Distillation | None = None
    domain_adaptation: DomainAdaptation | None = None


class TrainerSpec(Wire):
    name: str = "text-classification"
    image: str | None = None
    config: dict[str, Any] = {}


class TrainingSpec(Wire):
    epochs: float | None = Field(None, gt=0, description="default: 3, and at least 100 steps (see loop.total_steps)")
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(16, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    grad_clip_norm: float | None = Field(1.0, gt=0)
    early_stopping_patience: int | None = Field(None, gt=0)
    eval_every_steps: int = Field(50, gt=0)
    mixed_precision: bool = True
    seed: int = 0
    max_seq_length: int = Field(128, gt=0)


class ResourcesSpec(Wire):
    workers: int = Field(1, gt=0)
    gpus_per_worker: float = Field(1, ge=0)
    gpu_type: str | None = None
    cpu_per_worker: str | int | float | None = None
    memory_per_worker: str | None = None


class CheckpointSpec(Wire):
    uri: str | None = None
    every_steps: int = Field(100, gt=0)
    keep: int = Field(2, gt=0)


class OutputSpec(Wire):
    uri: str = Field(min_length=1)
    format: Literal["adapter", "merged", "full"] | None = None  # default: adapter under lora, else full


class JobSpec(Wire):
    model: ModelSpec
    dataset: DatasetSpec
    strategy: StrategySpec
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    output: OutputSpec | None = None


class SpecError(ValueError):
    """A TransferJob the trainer cannot run. `field` is the dotted wire path (spec.x.y)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def parse_job(spec: dict[str, Any]) -> JobSpec:
    """Parse a wire-form spec; errors name the first offending field the way kubectl shows it."""
    try:
        return JobSpec.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "spec." + ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown option; check the spelling against docs/trainers.md"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        raise SpecError(field, msg) from None
