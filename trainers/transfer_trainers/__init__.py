"""Trainers of transfer-operator: a plugin contract plus built-in recipes run by Ray Train.

This package never imports `transfer_operator`; its contract with the operator is the
environment of `python -m transfer_trainers.launch` (see docs/trainers.md).
"""

from transfer_trainers.contract import Trainer, TrainerError
from transfer_trainers.spec import JobSpec, SpecError, parse_job

__all__ = ["JobSpec", "SpecError", "Trainer", "TrainerError", "parse_job"]
