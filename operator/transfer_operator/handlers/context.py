"""Operator-wide objects, created once in `on.startup` and kept in kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass

from transfer_operator.api.config import OperatorConfig
from transfer_operator.handlers.kube import Kube


@dataclass
class Ctx:
    kube: Kube
    config: OperatorConfig
    identity: str
    lease_namespace: str
