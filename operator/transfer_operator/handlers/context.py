"""Operator-wide objects, created once in `on.startup` and kept in kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass, field

from transfer_operator.api.config import OperatorConfig
from transfer_operator.handlers.inflight import InFlight, Latest, Lease
from transfer_operator.handlers.informer import FleetIndex
from transfer_operator.handlers.kube import Kube
from transfer_operator.handlers.remote import RemoteCluster
from transfer_operator.handlers.rolling import RollingPass


@dataclass
class Ctx:
    kube: Kube
    config: OperatorConfig
    identity: str
    lease_namespace: str
    index: FleetIndex = field(default_factory=FleetIndex)  # watch-fed; the cycle reads only this
    rolling_pass: RollingPass = field(default_factory=RollingPass)  # where the reconcile of held jobs stands
    lease: Lease = field(default_factory=Lease)  # the scheduler Lease: whether the cycle's writes may go out
    in_flight: InFlight = field(default_factory=InFlight)  # admissions still being written
    pool_status: Latest = field(default_factory=Latest)  # GPUPool status, written in the background
    # Elastic pools: the NodeClaims of each pool's NodePool at the last cycle (bought / released).
    elastic_claims: dict[str, set[str]] = field(default_factory=dict)
    clusters: dict[str, RemoteCluster] = field(
        default_factory=dict
    )  # worker clusters, by TransferCluster name
