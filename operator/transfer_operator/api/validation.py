"""Parse TransferJob / GPUPool documents and check what the schema alone cannot say."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from transfer_operator.api.enums import StrategyType
from transfer_operator.api.models import GPUPool, TransferJob, TransferJobSpec


class InvalidSpec(ValueError):
    """A spec the user must edit. `problems` are one sentence each, naming the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _field_path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if not str(part).startswith("function-"))


def format_errors(error: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for item in error.errors():
        path = _field_path(item["loc"])
        where = f"{prefix}{path}" if path else prefix.rstrip(".") or "document"
        problems.append(f"{where}: {item['msg']}")
    return problems


_PARAMS_OF = {
    StrategyType.FINE_TUNE: "fine_tune",
    StrategyType.PROGRESSIVE_UNFREEZING: "progressive_unfreezing",
    StrategyType.LORA: "lora",
    StrategyType.DISTILLATION: "distillation",
    StrategyType.DOMAIN_ADAPTATION: "domain_adaptation",
}
_WIRE_NAME = {
    "fine_tune": "fineTune",
    "progressive_unfreezing": "progressiveUnfreezing",
    "lora": "lora",
    "distillation": "distillation",
    "domain_adaptation": "domainAdaptation",
}


def semantic_problems(spec: TransferJobSpec) -> list[str]:
    """Cross-field checks that are not CEL rules already, with how to fix each."""
    problems: list[str] = []
    strategy = spec.strategy
    own = _PARAMS_OF.get(strategy.type)
    for attribute, wire in _WIRE_NAME.items():
        if attribute != own and getattr(strategy, attribute) is not None:
            problems.append(
                f"spec.strategy.{wire} is set but spec.strategy.type is {strategy.type.value}; "
                f"remove it or set type: {wire}"
            )
    if strategy.type is StrategyType.LORA and strategy.lora is not None and not strategy.lora.target_modules:
        problems.append(
            "spec.strategy.lora.targetModules is empty; name the modules to adapt, e.g. [query, value]"
        )
    if spec.resources.gpus_per_worker == 0 and spec.placement.max_price_per_gpu_hour is not None:
        problems.append("spec.placement.maxPricePerGpuHour is set but the job asks for no GPUs")
    # The CRD's CEL rules say the same to the API server; `transferctl validate` has none.
    if strategy.type is StrategyType.DISTILLATION and strategy.distillation is None:
        problems.append("spec.strategy.distillation (with a teacher) is required when type is distillation")
    if strategy.type is StrategyType.DOMAIN_ADAPTATION and strategy.domain_adaptation is None:
        problems.append(
            "spec.strategy.domainAdaptation (with a targetDataset) is required when type is domainAdaptation"
        )
    if strategy.layer_lr_decay is not None and strategy.type not in (
        StrategyType.FINE_TUNE,
        StrategyType.PROGRESSIVE_UNFREEZING,
    ):
        problems.append(
            "spec.strategy.layerLrDecay (discriminative learning rates) only applies to fineTune and "
            "progressiveUnfreezing"
        )
    if spec.resources.gpu_type is not None and spec.resources.gpus_per_worker == 0:
        problems.append("spec.resources.gpuType needs spec.resources.gpusPerWorker > 0")
    return problems


def parse_transferjob(document: dict[str, Any]) -> TransferJob:
    """A TransferJob from its YAML/JSON document, or InvalidSpec with every problem found."""
    if document.get("kind") not in (None, "TransferJob"):
        raise InvalidSpec([f"kind: expected TransferJob, got {document.get('kind')}"])
    try:
        job = TransferJob.model_validate(
            {**document, "metadata": document.get("metadata") or {}, "status": document.get("status") or {}}
        )
    except ValidationError as error:
        raise InvalidSpec(format_errors(error)) from None
    problems = semantic_problems(job.spec)
    if problems:
        raise InvalidSpec(problems)
    return job


def parse_gpupool(document: dict[str, Any]) -> GPUPool:
    if document.get("kind") not in (None, "GPUPool"):
        raise InvalidSpec([f"kind: expected GPUPool, got {document.get('kind')}"])
    try:
        pool = GPUPool.model_validate(
            {**document, "metadata": document.get("metadata") or {}, "status": document.get("status") or {}}
        )
    except ValidationError as error:
        raise InvalidSpec(format_errors(error)) from None
    pricing = pool.spec.pricing
    if pricing.spot_per_gpu_hour is not None and pricing.spot_per_gpu_hour > pricing.on_demand_per_gpu_hour:
        # The CRD's CEL rule says the same to the API server.
        raise InvalidSpec(["spec.pricing.spotPerGpuHour must not exceed pricing.onDemandPerGpuHour"])
    return pool
