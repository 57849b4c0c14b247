"""Plain values the scheduler reads and returns. No Kubernetes here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from transfer_operator.api.enums import Preference, PriceClass, Reason, UtilizationPolicy


class Fit(IntEnum):
    """How well a job fits a pool; higher is better, the worst constraint decides."""

    NO_FIT = 0
    PREEMPT = 1
    FITS = 2


class Action(StrEnum):
    ADMIT = "admit"
    PREEMPT = "preempt"  # evict the victims; the job is admitted in a later cycle
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class PoolState:
    name: str
    region: str
    gpu_type: str
    nodes: int
    gpus_per_node: int
    on_demand_usd_per_gpu_hour: float
    spot_usd_per_gpu_hour: float | None = None
    spot_interruptions_per_hour: float = 0.0
    zone: str | None = None
    cordoned: bool = False

    @property
    def capacity_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass(frozen=True, slots=True)
class JobRequest:
    key: str  # "namespace/name"
    workers: int
    gpus_per_worker: int
    gpu_type: str | None = None
    regions: frozenset[str] = frozenset()
    spot: bool = False
    max_usd_per_gpu_hour: float | None = None
    budget_usd: float | None = None  # what is left of the budget
    estimated_hours: float = 1.0
    priority: int = 0
    queue: str = "default"
    created_at_s: float = 0.0
    prefer: Preference = Preference.CHEAPEST

    @property
    def gang_gpus(self) -> int:
        return self.workers * self.gpus_per_worker


@dataclass(frozen=True, slots=True)
class Allocation:
    """GPUs held by an admitted or running job."""

    job_key: str
    pool: str
    workers: int
    gpus_per_worker: int
    priority: int = 0
    queue: str = "default"
    admitted_at_s: float = 0.0

    @property
    def gpus(self) -> int:
        return self.workers * self.gpus_per_worker


@dataclass(frozen=True, slots=True)
class QueueQuota:
    """Kueue-like quota: nominal GPUs, borrowing unused nominal GPUs of the same cohort."""

    name: str
    nominal_gpus: int
    cohort: str | None = None
    borrowing_limit_gpus: int | None = None  # None: may borrow all the cohort has unused


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    pools: tuple[PoolState, ...]
    allocations: tuple[Allocation, ...] = ()
    quotas: tuple[QueueQuota, ...] = ()
    policy: UtilizationPolicy = UtilizationPolicy.BINPACK


@dataclass(frozen=True, slots=True)
class Placement:
    pool: str
    region: str
    gpu_type: str
    price_class: PriceClass
    usd_per_gpu_hour: float
    gpus: int
    expected_hours: float
    expected_cost_usd: float
    zone: str | None = None

    @property
    def usd_per_hour(self) -> float:
        return self.usd_per_gpu_hour * self.gpus


@dataclass(frozen=True, slots=True)
class Decision:
    job_key: str
    action: Action
    fit: Fit
    reason: Reason
    message: str
    placement: Placement | None = None
    victims: tuple[str, ...] = ()
    runner_ups: tuple[Placement, ...] = field(default=())
