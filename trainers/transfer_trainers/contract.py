"""The shape of a trainer plugin. A Protocol, not a base class: nothing is inherited."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from transfer_trainers.spec import JobSpec, SpecError

ENTRY_POINT_GROUP = "transfer_trainers"


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
