"""The shape of a trainer plugin. A Protocol, not a base class: nothing is inherited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from transfer_trainers.spec import JobSpec, SpecError

ENTRY_POINT_GROUP = "transfer_trainers"
ConfigT = TypeVar("ConfigT", bound=BaseModel)


class TrainerError(SpecError):
    """Raised by `Trainer.validate`: names the spec field and says how to fix it."""


@runtime_checkable
class Trainer(Protocol):
    """What an entry point in group `transfer_trainers` must point to.

    name                   the value users write in `spec.trainer.name`.
    config_schema          pydantic model for `spec.trainer.config`.
    validate(job)          runs on the driver before Ray starts; raises TrainerError.
    train_loop_per_worker  Ray Train's per-worker function. It receives the dict built by
                           the runner (see `transfer_trainers.runner.loop_config`): the job
                           spec, the parsed trainer config, run name, seed and resume info.
    """

    name: str
    config_schema: type[BaseModel]

    def validate(self, job: JobSpec) -> None: ...

    def train_loop_per_worker(self, config: dict[str, Any]) -> None: ...


def parse_config(schema: type[ConfigT], job: JobSpec) -> ConfigT:
    """`spec.trainer.config` read as `schema`; the first error names its field."""
    try:
        return schema.model_validate(job.trainer.config)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise TrainerError("spec.trainer.config." + ".".join(map(str, err["loc"])),
                           "unknown option" if err["type"] == "extra_forbidden" else err["msg"]) from None


@dataclass(frozen=True)
class Recipe:
    """A built-in trainer made of a recipe module's two functions (a Trainer by shape). A model
    that cannot be read (OSError while validating) is refused as spec.model.source."""

    name: str
    config_schema: type[BaseModel]
    check: Callable[[JobSpec], None]
    loop: Callable[[dict[str, Any]], None]

    def validate(self, job: JobSpec) -> None:
        try:
            self.check(job)
        except SpecError:
            raise
        except OSError as exc:
            raise TrainerError("spec.model.source", f"cannot load the model: {exc}") from None

    def train_loop_per_worker(self, config: dict[str, Any]) -> None:
        self.loop(config)
