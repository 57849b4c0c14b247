"""Parse TransferJob / GPUPool documents and check what the schema alone cannot say.

Documents are validated as the API server validates them: from their JSON form, strictly (no
`"4"` for an integer, no `"true"` for a boolean, no Infinity or NaN) and by their wire names
only (`gpusPerWorker`; `gpus_per_worker` is an unknown field). Python code that builds models
by their attribute names is unaffected.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from transfer_operator.api.enums import API_VERSION, StrategyType
from transfer_operator.api.models import GPUPool, TransferJob, TransferJobSpec

MAX_DEPTH = 100
Model = TypeVar("Model", bound=BaseModel)


class InvalidSpec(ValueError):
    """A spec the user must edit. `problems` are one sentence each, naming the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [printable(str(part)) for part in location if not str(part).startswith("function-")]
    return ".".join(parts)


def printable(text: str, limit: int = 80) -> str:
    """`text` safe for one line of a terminal: control characters escaped, long text cut."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_problems(document: Any) -> list[str]:
    """What in `document` JSON (and so the API server) cannot carry, naming where: NaN or
    Infinity, a key that is not a string, a value of no JSON type, nesting deeper than MAX_DEPTH."""
    problems: list[str] = []
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack and len(problems) < 10:
        value, path, depth = stack.pop()
        where = path.lstrip(".") or "document"
        if depth > MAX_DEPTH:
            problems.append(f"{printable(where)}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(f"{printable(where)}: key {printable(repr(key))} is not a string")
                    continue
                stack.append((item, f"{path}.{key}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{printable(where)}: {value} is not a number JSON can carry")
        elif not isinstance(value, str | int | float | bool) and value is not None:
            problems.append(f"{printable(where)}: a {type(value).__name__} is not a JSON value")
    return problems


def validate_wire(model: type[Model], document: dict[str, Any]) -> Model:
    """`model` from a wire document, as strictly as the API server takes it, or InvalidSpec."""
    problems = json_problems(document)
    if problems:
        raise InvalidSpec(problems)
    try:
        return model.model_validate_json(
            json.dumps(document, allow_nan=False), strict=True, by_alias=True, by_name=False
        )
    except ValidationError as error:
        raise InvalidSpec(format_errors(error)) from None


def check_kind(document: dict[str, Any], kind: str) -> None:
    """`document` says it is a `kind` of transfer.dev/v1alpha1 (or does not say)."""
    found_kind, api_version = document.get("kind"), document.get("apiVersion")
    if found_kind not in (None, kind):
        raise InvalidSpec([f"kind: expected {kind}, got {printable(str(found_kind))}"])
    if api_version not in (None, API_VERSION):
        raise InvalidSpec([f"apiVersion: expected {API_VERSION}, got {printable(str(api_version))}"])


def format_errors(error: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        path = _field_path(item["loc"])
        where = f"{prefix}{path}" if path else prefix.rstrip(".") or "document"
        problems.append(f"{where}: {printable(item['msg'], 200)}")
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
    return problems


def parse_transferjob(document: dict[str, Any]) -> TransferJob:
    """A TransferJob from its YAML/JSON document, or InvalidSpec with every problem found."""
    document = with_defaults(document)
    check_kind(document, "TransferJob")
    job = validate_wire(TransferJob, document)
    problems = semantic_problems(job.spec)
    if problems:
        raise InvalidSpec(problems)
    return job


def parse_gpupool(document: dict[str, Any]) -> GPUPool:
    document = with_defaults(document)
    check_kind(document, "GPUPool")
    pool = validate_wire(GPUPool, document)
    pricing = pool.spec.pricing
    if pricing.spot_per_gpu_hour is not None and pricing.spot_per_gpu_hour > pricing.on_demand_per_gpu_hour:
        # The CRD's CEL rule says the same to the API server.
        raise InvalidSpec(["spec.pricing.spotPerGpuHour must not exceed pricing.onDemandPerGpuHour"])
    return pool


def with_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """An empty metadata or status (`null` in YAML) counts as absent, as the API server takes it."""
    if not isinstance(document, dict):
        raise InvalidSpec([f"document: expected an object, got {type(document).__name__}"])
    out = {
        key: value for key, value in document.items() if not (key in ("status", "metadata") and value is None)
    }
    out.setdefault("metadata", {})
    return out
