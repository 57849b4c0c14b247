"""Why a job is (or would be) placed where it is: the plan's decision for it and its best options,
for `transferctl explain` (files) and `transferctl describe` (a cluster). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.enums import Reason
from transfer_operator.api.models import GPUPool, TransferJob, TransferJobStatus
from transfer_operator.scheduler import Action, Allocation, Decision, schedule
from transfer_operator.scheduler.explain import OptionView, options_of
from transfer_operator.scheduler.snapshot import snapshot_of


@dataclass(frozen=True, slots=True)
class Explanation:
    job_key: str
    decision: Decision | None  # None: the job is not queued (and was not asked to be)
    static: tuple[Reason, str] | None  # why no pool can ever take it
    options: list[OptionView]


def as_queued(job: TransferJob) -> TransferJob:
    """`job` as the scheduler sees it when it is queued again: only its checkpoint is kept."""
    status = TransferJobStatus(last_checkpoint=job.status.last_checkpoint)
    return job.model_copy(update={"status": status})


def explain(
    target: TransferJob,
    jobs: list[TransferJob],
    pools: list[GPUPool],
    config: OperatorConfig,
    limit: int = 5,
    *,
    requeue: bool = False,
) -> Explanation:
    """The plan's decision for `target` among `jobs`, and its best `limit` options after the plan's
    other admissions. `requeue`: plan `target` as if it were queued now (a running job: where it
    would go today, and its runner-up pools), the others keeping what they hold."""
    if requeue:
        target = as_queued(target)
        jobs = [target if job.key == target.key else job for job in jobs]
    snapshot, pending = snapshot_of(pools, jobs, config)
    decisions = {d.job_key: d for d in schedule(snapshot, pending)}
    decision = decisions.get(target.key)
    request = next((r for r in pending if r.key == target.key), None)
    if decision is None or request is None:
        return Explanation(target.key, None, None, [])
    held = [
        Allocation(d.job_key, d.placement.pool, r.workers, r.gpus_per_worker)
        for r in pending
        if (d := decisions[r.key]).action is Action.ADMIT and d.placement is not None and r.key != target.key
    ]
    static, views = options_of(snapshot, request, held, limit)
    return Explanation(target.key, decision, static, views)


def fit_text(view: OptionView) -> str:
    if view.fits_now:
        return "fits"
    return f"once {view.short_gpus} GPUs free up" if view.short_gpus else "once whole nodes free up"
