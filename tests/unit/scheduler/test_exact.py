"""`schedule` against the exact optimum of an integer program, on random small instances."""

from __future__ import annotations

import random
import statistics

from transfer_operator.scheduler import Action, ClusterSnapshot, JobRequest, PoolState, schedule
from transfer_operator.scheduler.exact import solve_exact

REGIONS = ["eu-west", "us-east", "ap-south"]
GPUS = ["A100", "H100", "L4"]


def random_instance(seed: int) -> tuple[tuple[PoolState, ...], list[JobRequest]]:
    rng = random.Random(seed)
    pools = []
    for i in range(rng.randint(2, 20)):
        on_demand = round(rng.uniform(1.0, 6.0), 2)
        spot = round(on_demand * rng.uniform(0.3, 0.7), 2) if rng.random() < 0.5 else None
        pools.append(
            PoolState(
                f"p{i}",
                rng.choice(REGIONS),
                rng.choice(GPUS),
                rng.randint(1, 4),
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
            rng.choice([*GPUS, None]),
            frozenset(rng.sample(REGIONS, rng.randint(0, 3))),
            rng.random() < 0.5,
            estimated_hours=rng.uniform(0.5, 5.0),
        )
        for i in range(rng.randint(5, 50))
    ]
    return tuple(pools), jobs


def test_within_two_percent_of_the_ilp_optimum():
    ratios, misses = [], 0
    instances = 0
    for seed in range(120):
        pools, jobs = random_instance(seed)
        exact = solve_exact(pools, jobs)
        if exact.placed < len(jobs):
            continue  # over-subscribed: placing fewer, different jobs is another objective
        instances += 1
        admitted = [d for d in schedule(ClusterSnapshot(pools), jobs) if d.action is Action.ADMIT]
        if len(admitted) < len(jobs):
            misses += 1
            continue
        ours = sum(d.placement.expected_cost_usd for d in admitted)
        ratios.append(ours / exact.cost_usd)
    assert instances >= 25
    assert min(ratios) >= 1 - 1e-9, "cheaper than the optimum means the two disagree on costs"
    assert statistics.mean(ratios) <= 1.02, f"mean ratio {statistics.mean(ratios):.4f}"
    assert misses / instances <= 0.1, f"{misses} of {instances} feasible instances not fully placed"
