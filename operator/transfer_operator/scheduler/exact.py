"""The exact optimum of one cycle, as an integer program: the yardstick for `schedule`.

Used by tests and benchmarks only (it needs scipy). Same static limits as `schedule`, so both
see the same options; capacity is counted per pool in GPUs, which is exact when workers need
one GPU or a whole node. Objective: place as many jobs as possible, then at the least cost.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transfer_operator.scheduler.schedule import estimate_options
from transfer_operator.scheduler.types import JobRequest, PoolState

REGIONS = ("eu-west", "us-east", "ap-south")
GPU_TYPES = ("A100", "H100", "L4")


@dataclass(frozen=True)
class ExactResult:
    placed: int
    cost_usd: float
    assignment: dict[str, str]  # job key -> pool


def solve_exact(pools: Sequence[PoolState], jobs: Sequence[JobRequest]) -> ExactResult:
    from scipy.optimize import Bounds, LinearConstraint, milp

    variables: list[tuple[int, int, float]] = []  # (job index, pool index, cost)
    for j, job in enumerate(jobs):
        for option in estimate_options(job, pools).options:
            variables.append((j, option.pool_index, option.placement.expected_cost_usd))
    if not variables:
        return ExactResult(0, 0.0, {})
    costs = np.array([cost for _, _, cost in variables])
    big = float(costs.sum()) + 1.0
    objective = costs - big

    one_per_job = np.zeros((len(jobs), len(variables)))
    per_pool = np.zeros((len(pools), len(variables)))
    for v, (j, p, _) in enumerate(variables):
        one_per_job[j, v] = 1.0
        per_pool[p, v] = jobs[j].gang_gpus
    capacity = np.array([pool.capacity_gpus for pool in pools], dtype=float)
    constraints = [
        LinearConstraint(one_per_job, -np.inf, 1.0),
        LinearConstraint(per_pool, -np.inf, capacity),
    ]
    result = milp(
        objective,
        constraints=constraints,
        integrality=np.ones(len(variables)),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 0.0},  # the default gap would let "optimal" be a little worse
    )
    if result.x is None:
        raise RuntimeError(f"ILP failed: {result.message}")
    chosen = [v for v, x in enumerate(result.x) if x > 0.5]
    assignment = {jobs[variables[v][0]].key: pools[variables[v][1]].name for v in chosen}
    return ExactResult(len(chosen), float(sum(costs[v] for v in chosen)), assignment)


def _variables(pools: Sequence[PoolState], jobs: Sequence[JobRequest]) -> list[tuple[int, int, float]]:
    return [
        (j, option.pool_index, option.placement.expected_cost_usd)
        for j, job in enumerate(jobs)
        for option in estimate_options(job, pools).options
    ]


def _milp(pools, jobs, variables, objective, extra=()):  # type: ignore[no-untyped-def]
    from scipy.optimize import Bounds, LinearConstraint, milp

    one_per_job = np.zeros((len(jobs), len(variables)))
    per_pool = np.zeros((len(pools), len(variables)))
    for v, (j, p, _) in enumerate(variables):
        one_per_job[j, v] = 1.0
        per_pool[p, v] = jobs[j].gang_gpus
    capacity = np.array([pool.capacity_gpus for pool in pools], dtype=float)
    constraints = [LinearConstraint(one_per_job, -np.inf, 1.0), LinearConstraint(per_pool, -np.inf, capacity), *extra]
    result = milp(
        objective,
        constraints=constraints,
        integrality=np.ones(len(variables)),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 0.0},
    )
    if result.x is None:
        raise RuntimeError(f"ILP failed: {result.message}")
    return result.x


def optimum_gpus_per_tier(pools: Sequence[PoolState], jobs: Sequence[JobRequest]) -> dict[int, int]:
    """GPUs placed per priority at the lexicographic optimum (highest priority first), by scipy's
    milp: a yardstick independent of solve.py."""
    from scipy.optimize import LinearConstraint

    variables = _variables(pools, jobs)
    tiers = sorted({job.priority for job in jobs}, reverse=True)
    out: dict[int, int] = {}
    extra: list[LinearConstraint] = []
    for tier in tiers:
        weights = np.array([jobs[j].gang_gpus if jobs[j].priority == tier else 0.0 for j, _, _ in variables])
        if not variables:
            out[tier] = 0
            continue
        x = _milp(pools, jobs, variables, -weights, extra)
        out[tier] = round(float(weights @ x))
        extra.append(LinearConstraint(weights[None, :], out[tier] - 0.5, np.inf))
    return out


def same_set_cost(pools: Sequence[PoolState], jobs: Sequence[JobRequest], placed: set[str]) -> float:
    """The least expected cost of placing exactly the jobs in `placed` (each on one of its options)."""
    from scipy.optimize import LinearConstraint

    chosen = [job for job in jobs if job.key in placed]
    variables = _variables(pools, chosen)
    costs = np.array([cost for _, _, cost in variables])
    every = np.zeros((len(chosen), len(variables)))
    for v, (j, _, _) in enumerate(variables):
        every[j, v] = 1.0
    x = _milp(pools, chosen, variables, costs, [LinearConstraint(every, 1.0, 1.0)])
    return float(costs @ x)


def random_small_instance(seed: int, max_nodes: int = 4) -> tuple[tuple[PoolState, ...], list[JobRequest]]:
    """A seeded instance of up to 50 jobs x 20 pools, workers of one GPU (so that counting GPUs
    per pool, as the ILP does, is exact)."""
    rng = random.Random(seed)
    pools = []
    for i in range(rng.randint(2, 20)):
        on_demand = round(rng.uniform(1.0, 6.0), 2)
        spot = round(on_demand * rng.uniform(0.3, 0.7), 2) if rng.random() < 0.5 else None
        pools.append(
            PoolState(
                f"p{i}",
                rng.choice(REGIONS),
                rng.choice(GPU_TYPES),
                rng.randint(max_nodes // 4 or 1, max_nodes),
                8,
                on_demand,
                spot,
                rng.uniform(0, 0.2),
            )
        )
    jobs = [
        JobRequest(
            f"ns/j{i}",
            rng.randint(1, 8),
            1,
            rng.choice([*GPU_TYPES, None]),
            frozenset(rng.sample(REGIONS, rng.randint(0, 3))),
            rng.random() < 0.5,
            estimated_hours=rng.uniform(0.5, 5.0),
        )
        for i in range(rng.randint(5, 50))
    ]
    return tuple(pools), jobs
