"""Prometheus collectors of the operator. Labels are bounded: phase, queue, pool, region,
reason, result, namespace. The per-job gauges (`transfer_job_*`) carry the job's name; their
series exist only while the job is not finished (a Succeeded or Failed job has none; its final
cost stays in status.costSoFar), so their number is that of the jobs queued or running, not of
every job ever run. The gauges of the jobs' state are computed when scraped (JobStateCollector)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from transfer_operator.api.enums import Phase
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.scheduler import Action, Decision

PENDING = Gauge("transfer_pending_jobs", "Queued TransferJobs by wait reason.", ["reason"])
ADMISSION_LATENCY = Histogram(
    "transfer_admission_latency_seconds",
    "Time from a TransferJob's creation to its admission.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
CYCLE_DURATION = Histogram(
    "transfer_scheduling_cycle_duration_seconds",
    "Wall time of one scheduling cycle (list, decide, write).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
SCHEDULING_ATTEMPTS = Counter(
    "transfer_scheduling_attempts_total", "Scheduling decisions by result.", ["result"]
)
POOL_GPUS = Gauge("transfer_pool_gpus", "GPUs of a pool by state.", ["pool", "region", "gpu_type", "state"])
POOL_UTILIZATION = Gauge("transfer_pool_utilization_ratio", "Allocated / capacity.", ["pool", "region"])
POOL_PRICE = Gauge(
    "transfer_pool_price_usd_per_gpu_hour", "Price per GPU-hour.", ["pool", "region", "price_class"]
)
JOB_COST = Counter("transfer_job_cost_dollars_total", "Dollars accrued by TransferJobs.", ["namespace"])
PREEMPTIONS = Counter("transfer_preemptions_total", "Jobs sent back to the queue, by reason.", ["reason"])
FAILOVERS = Counter(
    "transfer_failovers_total", "Jobs that lost their pool or RayJob and went back to the queue.", ["reason"]
)
GANG_RESIZES = Counter(
    "transfer_gang_resizes_total", "Running elastic gangs restarted at a larger size (scheduler/growth.py)."
)
RAYJOB_CREATE_ERRORS = Counter("transfer_rayjob_create_errors_total", "RayJob creations that failed.")
CYCLE_STAGE_DURATION = Histogram(
    "transfer_scheduling_cycle_stage_seconds",
    "Wall time of each stage of a scheduling cycle: read (list and parse the fleet), reconcile "
    "(running jobs), decide (the pure scheduler), write (decisions and pool status).",
    ["stage"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
EVENTS_DROPPED = Counter(
    "transfer_events_dropped_total",
    "Normal Kubernetes events not posted because they came faster than 10/s (warnings are never dropped).",
    ["reason"],
)
LEASE_RENEWALS_IN_CYCLE = Counter(
    "transfer_lease_renewals_in_cycle_total",
    "Scheduler Lease renewals made while a long cycle was still running.",
)
CLUSTER_REACHABLE = Gauge(
    "transfer_cluster_ready",
    "1 while a worker cluster (TransferCluster) is Ready and answering, else 0.",
    ["cluster"],
)
CLUSTER_GPUS = Gauge(
    "transfer_cluster_gpus",
    'GPUs of the pools of a cluster by state (cluster "local": the operator\'s own).',
    ["cluster", "state"],
)
CLUSTER_JOBS = Gauge("transfer_cluster_jobs", "TransferJobs holding GPUs in a cluster.", ["cluster"])
REMOTE_RAYJOBS_DELETED = Counter(
    "transfer_remote_rayjobs_deleted_total",
    "RayJobs the operator deleted in a worker cluster (deleted jobs, orphans, moved attempts).",
    ["cluster"],
)
DISPATCH_LATENCY = Histogram(
    "transfer_dispatch_seconds",
    "Time to create a job's RayJob in its cluster (namespace included).",
    ["cluster"],
)
WATCH_RELISTS = Counter(
    "transfer_watch_relists_total",
    "Full relists of a watched kind after its watch expired (410 Gone); the first list is not counted.",
    ["kind"],
)
RECONCILE_ERRORS = Counter("transfer_reconcile_errors_total", "Errors while reconciling.", ["stage"])
SOLVE_PATH = Counter(
    "transfer_scheduling_solve_path_total",
    "Scheduling cycles by the path that decided them: exact (HiGHS proved the optimum within the "
    "time budget), bestFound (out of time: HiGHS's best answer, kept because it beats the walk's on "
    "the objective), localSearch (greedy walk, then local search), greedy (the walk alone), none "
    "(nothing pending).",
    ["path"],
)


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> None:
    start_http_server(port, registry=registry)


def record_solve_path(path: str) -> None:
    SOLVE_PATH.labels(path=path).inc()


def record_cycle(decisions: Iterable[Decision], fleet_jobs: Sequence[TransferJob], seconds: float) -> None:
    CYCLE_DURATION.observe(seconds)
    reasons: Tally[str] = Tally()
    for decision in decisions:
        SCHEDULING_ATTEMPTS.labels(result=decision.action.value).inc()
        if decision.action is Action.WAIT:
            reasons[decision.reason.value] += 1
    PENDING.clear()
    for reason, count in reasons.items():
        PENDING.labels(reason=reason).set(count)
    record_jobs(fleet_jobs)


@dataclass(frozen=True)
class StateGauge:
    """A gauge read from the jobs when Prometheus scrapes (JobStateCollector)."""

    name: str
    documentation: str
    labels: tuple[str, ...]

    def family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labels)


JOBS = StateGauge("transfer_jobs", "TransferJobs by phase and queue.", ("phase", "queue"))
SPEND_RATE = StateGauge(
    "transfer_spend_usd_per_hour",
    "Dollars per hour of the GPUs held right now.",
    ("region", "namespace", "price_class"),
)
# Per-job series: only of the TransferJobs not finished.
JOB_COST_SO_FAR = StateGauge(
    "transfer_job_spent_dollars",
    "Dollars a queued or running TransferJob has spent so far (finished jobs: status.costSoFar).",
    ("namespace", "transferjob"),
)
JOB_PRICE = StateGauge(
    "transfer_job_usd_per_hour",
    "What a running TransferJob costs per hour, on which pool.",
    ("namespace", "transferjob", "pool", "region", "price_class"),
)
JOB_PHASE = StateGauge(
    "transfer_job_phase",
    "1 for the phase a queued or running TransferJob is in (finished jobs have no series).",
    ("namespace", "transferjob", "phase"),
)
STATE_GAUGES = (JOBS, SPEND_RATE, JOB_COST_SO_FAR, JOB_PRICE, JOB_PHASE)


class JobStateCollector(Collector):
    """The gauges of the jobs' state, computed from the last cycle's jobs when Prometheus scrapes:
    once a scrape interval, instead of a pass over every job (and a gauge update per job) in every
    cycle, which cycles started by the watches' news run many times a second."""

    def __init__(self) -> None:
        self._jobs: Sequence[TransferJob] = ()

    def set_jobs(self, jobs: Sequence[TransferJob]) -> None:
        self._jobs = jobs  # one reference swapped: a scrape reads one cycle's jobs or the next's

    def describe(self) -> Iterable[Metric]:
        return [gauge.family() for gauge in STATE_GAUGES]

    def collect(self) -> Iterable[Metric]:
        jobs = self._jobs
        families = {gauge: gauge.family() for gauge in STATE_GAUGES}
        phases: Tally[tuple[str, str]] = Tally((job.status.phase.value, job.spec.queue) for job in jobs)
        for phase in Phase:
            phases.setdefault((phase.value, "default"), 0)
        for (phase_name, queue), count in phases.items():
            families[JOBS].add_metric([phase_name, queue], count)
        spend: dict[tuple[str, str, str], float] = {}
        for job in jobs:
            if job.status.phase.is_terminal:
                continue
            namespace, name = job.metadata.namespace or "default", job.metadata.name
            families[JOB_COST_SO_FAR].add_metric([namespace, name], job.status.cost_so_far)
            families[JOB_PHASE].add_metric([namespace, name, job.status.phase.value], 1.0)
            placement = job.status.placement
            if placement is not None and job.status.phase.holds_capacity:
                price_class = placement.price_class.value
                families[JOB_PRICE].add_metric(
                    [namespace, name, placement.pool, placement.region, price_class], placement.usd_per_hour
                )
                key = (placement.region, namespace, price_class)
                spend[key] = spend.get(key, 0.0) + placement.usd_per_hour
        for labels, usd_per_hour in spend.items():
            families[SPEND_RATE].add_metric(list(labels), usd_per_hour)
        return list(families.values())


JOB_STATE = JobStateCollector()
REGISTRY.register(JOB_STATE)


def record_jobs(jobs: Sequence[TransferJob]) -> None:
    """The jobs the state gauges are read from at the next scrape (every job, finished ones too)."""
    JOB_STATE.set_jobs(jobs)


def initialize() -> None:
    """Create the labelled counters at zero so dashboards show 0, not 'no data'."""
    from transfer_operator.api.enums import Reason

    for reason in (Reason.PREEMPTED, Reason.POOL_LOST, Reason.RAYJOB_LOST):
        PREEMPTIONS.labels(reason=reason.value)
    for reason in (Reason.POOL_LOST, Reason.RAYJOB_LOST):
        FAILOVERS.labels(reason=reason.value)
    for result in ("admit", "preempt", "wait"):
        SCHEDULING_ATTEMPTS.labels(result=result)
    for stage in ("cycle", "admit", "nodes", "reconcile", "watch"):
        RECONCILE_ERRORS.labels(stage=stage)


def record_pool(pool: GPUPool, allocated_gpus: int) -> None:
    name, region, spec = pool.metadata.name, pool.spec.region, pool.spec
    capacity = spec.capacity_gpus
    POOL_GPUS.labels(pool=name, region=region, gpu_type=spec.gpu_type, state="allocated").set(allocated_gpus)
    POOL_GPUS.labels(pool=name, region=region, gpu_type=spec.gpu_type, state="free").set(
        max(0, capacity - allocated_gpus)
    )
    POOL_UTILIZATION.labels(pool=name, region=region).set(allocated_gpus / capacity if capacity else 0.0)
    POOL_PRICE.labels(pool=name, region=region, price_class="onDemand").set(
        spec.pricing.on_demand_per_gpu_hour
    )
    if spec.pricing.spot_per_gpu_hour is not None:
        POOL_PRICE.labels(pool=name, region=region, price_class="spot").set(spec.pricing.spot_per_gpu_hour)


def record_clusters(totals: dict[str, tuple[int, int, int]]) -> None:
    """cluster -> (allocated GPUs, free GPUs, jobs)."""
    for cluster, (allocated, free, jobs) in totals.items():
        CLUSTER_GPUS.labels(cluster=cluster, state="allocated").set(allocated)
        CLUSTER_GPUS.labels(cluster=cluster, state="free").set(free)
        CLUSTER_JOBS.labels(cluster=cluster).set(jobs)


def operator_metrics() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(exposed name, type, labels, help) of every collector defined here."""
    from prometheus_client.metrics import MetricWrapperBase

    found: list[tuple[str, str, tuple[str, ...], str]] = []
    for value in globals().values():
        if isinstance(value, MetricWrapperBase):
            kind = value._type  # noqa: SLF001 - prometheus-client keeps these private
            name = value._name + ("_total" if kind == "counter" else "")
            found.append((str(name), str(kind), tuple(value._labelnames), str(value._documentation)))
    found += [(gauge.name, "gauge", gauge.labels, gauge.documentation) for gauge in STATE_GAUGES]
    return sorted(found)


def render_metrics_reference() -> str:
    lines = [
        "# Metrics",
        "",
        "Generated by `transferctl generate` from `transfer_operator.metrics`; do not edit.",
        "The operator serves them on `TRANSFER_METRICS_PORT` (chart value `metrics.port`) at `/metrics`.",
        "Trainers export `ray_transfer_train_*` through Ray's metrics endpoint (see docs/trainers.md).",
        "",
        "| name | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for name, kind, labels, documentation in operator_metrics():
        lines.append(f"| `{name}` | {kind} | {', '.join(labels) or '-'} | {documentation} |")
    return "\n".join(lines) + "\n"
