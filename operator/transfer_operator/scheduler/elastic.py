"""Elastic supply and elastic gangs, as the rest of the scheduler sees them.

Elastic pools. A pool whose provisioner may still buy nodes becomes two rows of the snapshot: its
ready nodes (the pool's own name), and the nodes still to buy (`<pool>/provisionable`, a name no
GPUPool can have), whose placements carry the pool's node start-up time in their expected hours.
Every other step treats the rows as two pools, so a gang runs either on ready nodes or on bought
ones, never on a mix: a mixed gang would wait for the new nodes anyway. Prices of the two rows are
the same; among options of equal score the ready row wins (admit.py's tie key), so a bought node
is only asked for when no free one does as well. Decisions name the pool itself (`to_pools`).

Elastic gangs. A job of `min_workers`..`workers` is sized before a cycle to the most workers that
fit some option's free capacity now, within its budget (cost is linear in workers: hours do not
depend on the gang size, as the cost map states), so the cycle sees a fixed gang; a job the cycle
then leaves waiting is sized again to what the admissions left (`schedule_cycle`). The most GPUs
within a tier come first; among options that fit that size, cost decides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from transfer_operator.scheduler.capacity import PoolCapacity
from transfer_operator.scheduler.costmap import BUDGET_SLACK
from transfer_operator.scheduler.types import Decision, JobRequest, PoolState

PROVISIONABLE_SUFFIX = "/provisionable"


def split_provisionable(pools: Sequence[PoolState]) -> tuple[PoolState, ...]:
    """Each elastic pool as its ready row and its row of nodes still to buy, sorted by name."""
    rows: list[PoolState] = []
    for pool in pools:
        if pool.parent is not None:
            rows.append(pool)
            continue
        rows.append(dataclasses.replace(pool, provisionable_nodes=0, startup_hours=0.0))  # ready now
        if pool.provisionable_nodes <= 0:
            continue
        rows.append(
            dataclasses.replace(
                pool,
                name=pool.name + PROVISIONABLE_SUFFIX,
                nodes=pool.provisionable_nodes,
                provisionable_nodes=0,
                parent=pool.name,
            )
        )
    return tuple(sorted(rows, key=lambda p: p.name))


def provisionable_row(pool: str) -> str:
    return pool + PROVISIONABLE_SUFFIX


def to_pools(decisions: Sequence[Decision]) -> list[Decision]:
    """The decisions with each placement on a row of nodes to buy naming its pool instead."""
    out = []
    for decision in decisions:
        placement = decision.placement
        if placement is not None and placement.pool.endswith(PROVISIONABLE_SUFFIX):
            pool = placement.pool[: -len(PROVISIONABLE_SUFFIX)]
            decision = dataclasses.replace(
                decision,
                placement=dataclasses.replace(placement, pool=pool),
                message=decision.message.replace(placement.pool, f"{pool} (on nodes to be bought)"),
            )
        out.append(decision)
    return out


def most_workers(
    job: JobRequest,
    options: Sequence[tuple[str, float, float]],
    capacity: Mapping[str, PoolCapacity],
) -> int | None:
    """The most workers in [min_workers, workers] that fit one option's free capacity and the
    budget left; None when not even min_workers does. `options` are (row name, $/GPU-hour,
    expected run hours) of the job's options that pass its static limits."""
    assert job.min_workers is not None
    best = 0
    for row, usd, hours in options:
        free = capacity.get(row)
        if free is None:
            continue
        fit = min(job.workers, free.workers_that_fit(job.gpus_per_worker))
        best = max(best, min(fit, affordable_workers(job.budget_usd, usd, hours, job.gpus_per_worker)))
    return best if best >= job.min_workers else None


def affordable_workers(budget_usd: float | None, usd_per_gpu_hour: float, hours: float, gpus_per_worker: int) -> int:
    """The most workers the budget left pays for over `hours` (any number when there is no budget
    or the workers cost nothing)."""
    per_worker = usd_per_gpu_hour * hours * gpus_per_worker
    if budget_usd is None or per_worker <= 0:
        return 1 << 30
    return math.floor(budget_usd * (1 + BUDGET_SLACK) / per_worker)


def sized(job: JobRequest, workers: int) -> JobRequest:
    return dataclasses.replace(job, workers=workers)
