"""`schedule` against the exact optimum of an integer program, on random small instances."""

from __future__ import annotations

import statistics

from transfer_operator.scheduler import Action, ClusterSnapshot, schedule
from transfer_operator.scheduler.exact import random_small_instance, solve_exact


def test_within_two_percent_of_the_ilp_optimum():
    ratios, misses = [], 0
    instances = 0
    for seed in range(120):
        pools, jobs = random_small_instance(seed)
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
