"""Prometheus collectors of the operator. Labels are bounded: phase, queue, pool, region,
reason, result, namespace — never a job name or UID."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from transfer_operator.api.enums import Phase
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.scheduler import Action, Decision

JOBS = Gauge("transfer_jobs", "TransferJobs by phase and queue.", ["phase", "queue"])
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
RAYJOB_CREATE_ERRORS = Counter("transfer_rayjob_create_errors_total", "RayJob creations that failed.")
RECONCILE_ERRORS = Counter("transfer_reconcile_errors_total", "Errors while reconciling.", ["stage"])


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> None:
    start_http_server(port, registry=registry)


def seconds_since(timestamp: str | None, now: datetime) -> float | None:
    if not timestamp:
        return None
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return max(0.0, (now - then).total_seconds())


def record_cycle(decisions: Iterable[Decision], fleet_jobs: Iterable[TransferJob], seconds: float) -> None:
    CYCLE_DURATION.observe(seconds)
    reasons: Tally[str] = Tally()
    for decision in decisions:
        SCHEDULING_ATTEMPTS.labels(result=decision.action.value).inc()
        if decision.action is Action.WAIT:
            reasons[decision.reason.value] += 1
    PENDING.clear()
    for reason, count in reasons.items():
        PENDING.labels(reason=reason).set(count)
    phases: Tally[tuple[str, str]] = Tally((job.status.phase.value, job.spec.queue) for job in fleet_jobs)
    JOBS.clear()
    for phase in Phase:
        JOBS.labels(phase=phase.value, queue="default").set(0)
    for (phase, queue), count in phases.items():
        JOBS.labels(phase=phase, queue=queue).set(count)


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
