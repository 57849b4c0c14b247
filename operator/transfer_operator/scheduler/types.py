"""Plain values the scheduler reads and returns. No Kubernetes here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from transfer_operator.api.enums import Preference, PriceClass, Reason, UtilizationPolicy


class Fit(IntEnum):
    """How well a job fits a pool; higher is better, the worst constraint decides."""

    NO_FIT = 0
    PREEMPT = 1
    FITS = 2


class Action(StrEnum):
    ADMIT = "admit"
    PREEMPT = "preempt"  # evict (or shrink) the victims; the job is admitted in a later cycle
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
    # An elastic pool: nodes its provisioner may still buy, and how long one takes to be ready.
    # A snapshot splits such a pool into two rows (elastic.py): its ready nodes, and the nodes to
    # buy as a row of its own named PROVISIONABLE_SUFFIX after the pool, with `parent` set.
    provisionable_nodes: int = 0
    startup_hours: float = 0.0
    parent: str | None = None

    @property
    def capacity_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def pool_name(self) -> str:
        """The GPUPool this row is of."""
        return self.parent or self.name


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
    min_workers: int | None = None  # an elastic gang: any size in [min_workers, workers]

    @property
    def gang_gpus(self) -> int:
        return self.workers * self.gpus_per_worker

    @property
    def elastic(self) -> bool:
        return self.min_workers is not None and self.min_workers < self.workers


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
    min_workers: int | None = None  # a running elastic gang may be shrunk to this instead of evicted
    in_flight: bool = False  # an admission still being written: it holds GPUs but is no victim

    @property
    def gpus(self) -> int:
        return self.workers * self.gpus_per_worker


ANY_GPU_TYPE = "*"


@dataclass(frozen=True, slots=True)
class QueueQuota:
    """Kueue-like quota per GPU type (as a ClusterQueue's quota per resource flavor): nominal
    GPUs of each type, borrowing unused nominal GPUs of the same type from the cohort.

    `nominal_gpus` is one count for any GPU type, or a mapping GPU type -> count where `*` counts
    for every type the mapping does not name. A job on a pool of type T counts against the
    queue's T quota, else its `*` quota, else a T quota of 0 (it may only borrow). Types compare
    case-insensitively. `borrowing_limit_gpus` bounds what the queue borrows of each type."""

    name: str
    nominal_gpus: int | Mapping[str, int]
    cohort: str | None = None
    borrowing_limit_gpus: int | None = None  # per GPU type; None: all the cohort has unused

    def by_type(self) -> dict[str, int]:
        """Nominal GPUs per quota key: upper-case GPU types, and `*` for any type not named."""
        if isinstance(self.nominal_gpus, int):
            return {ANY_GPU_TYPE: self.nominal_gpus}
        return {key.upper(): count for key, count in self.nominal_gpus.items()}


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    pools: tuple[PoolState, ...]
    allocations: tuple[Allocation, ...] = ()
    quotas: tuple[QueueQuota, ...] = ()
    policy: UtilizationPolicy = UtilizationPolicy.BINPACK

    def __post_init__(self) -> None:
        if any(pool.provisionable_nodes or (pool.startup_hours and pool.parent is None) for pool in self.pools):
            from transfer_operator.scheduler.elastic import split_provisionable

            object.__setattr__(self, "pools", split_provisionable(self.pools))


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
    victims: tuple[str, ...] = ()  # jobs to evict
    shrinks: tuple[tuple[str, int], ...] = ()  # (job, workers it keeps): elastic gangs to shrink


# A frozen dataclass's __init__ sets each field through object.__setattr__. A large cycle builds
# a placement and a decision per job; these build the same objects by setting their
# slots directly, about twice as fast.
_new = object.__new__
(
    _set_pool,
    _set_region,
    _set_gpu_type,
    _set_price_class,
    _set_usd_per_gpu_hour,
    _set_gpus,
    _set_expected_hours,
    _set_expected_cost_usd,
    _set_zone,
) = (getattr(Placement, f).__set__ for f in Placement.__dataclass_fields__)
(
    _set_job_key,
    _set_action,
    _set_fit,
    _set_reason,
    _set_message,
    _set_placement,
    _set_victims,
    _set_shrinks,
) = (getattr(Decision, f).__set__ for f in Decision.__dataclass_fields__)


def new_placement(
    pool: str,
    region: str,
    gpu_type: str,
    price_class: PriceClass,
    usd_per_gpu_hour: float,
    gpus: int,
    expected_hours: float,
    expected_cost_usd: float,
    zone: str | None,
) -> Placement:
    """Placement(pool, region, gpu_type, price_class, usd_per_gpu_hour, gpus, expected_hours,
    expected_cost_usd, zone), built faster."""
    placement = _new(Placement)
    _set_pool(placement, pool)
    _set_region(placement, region)
    _set_gpu_type(placement, gpu_type)
    _set_price_class(placement, price_class)
    _set_usd_per_gpu_hour(placement, usd_per_gpu_hour)
    _set_gpus(placement, gpus)
    _set_expected_hours(placement, expected_hours)
    _set_expected_cost_usd(placement, expected_cost_usd)
    _set_zone(placement, zone)
    return placement


def new_decision(
    job_key: str,
    action: Action,
    fit: Fit,
    reason: Reason,
    message: str,
    placement: Placement | None,
) -> Decision:
    """Decision(job_key, action, fit, reason, message, placement), built faster."""
    decision = _new(Decision)
    _set_job_key(decision, job_key)
    _set_action(decision, action)
    _set_fit(decision, fit)
    _set_reason(decision, reason)
    _set_message(decision, message)
    _set_placement(decision, placement)
    _set_victims(decision, ())
    _set_shrinks(decision, ())
    return decision
