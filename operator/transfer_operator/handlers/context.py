"""Operator-wide objects, created once in `on.startup` and kept in kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass, field

from transfer_operator.api.config import OperatorConfig
from transfer_operator.handlers.kube import Kube
from transfer_operator.handlers.rayjob_cache import RayJobCache


@dataclass
class Ctx:
    kube: Kube
    config: OperatorConfig
    identity: str
    lease_namespace: str
    rayjobs: RayJobCache = field(default_factory=RayJobCache)
    last_reconcile_s: float = 0.0  # when the cycle last reconciled the jobs that hold GPUs
