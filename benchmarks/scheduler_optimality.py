"""Total cost of `schedule` divided by the exact optimum (an ILP solved by HiGHS through scipy's
milp), on random small instances: up to 50 jobs x 20 pools.

    python benchmarks/scheduler_optimality.py [--instances 200]

Only instances where the optimum places every job count toward the ratio (with fewer places,
"cheaper" means "ran less"); instances where we place fewer jobs than the optimum are counted
separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from transfer_operator.scheduler import Action, ClusterSnapshot, schedule
from transfer_operator.scheduler.exact import random_small_instance, solve_exact
from transfer_operator.scheduler.schedule import estimate_options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs/results/scheduler_optimality.json"))
    args = parser.parse_args()
    ratios, fewer, oversubscribed = [], 0, 0
    ours_s = exact_s = 0.0
    for seed in range(args.instances):
        pools, jobs = random_small_instance(seed, max_nodes=8)
        # A job no pool could ever take is not a placement question: leave it out of both.
        jobs = [j for j in jobs if estimate_options(j, pools).count > 0]
        started = time.perf_counter()
        exact = solve_exact(pools, jobs)
        exact_s += time.perf_counter() - started
        started = time.perf_counter()
        admitted = [d for d in schedule(ClusterSnapshot(pools), jobs) if d.action is Action.ADMIT]
        ours_s += time.perf_counter() - started
        if exact.placed < len(jobs):
            oversubscribed += 1
            continue
        if len(admitted) < exact.placed:
            fewer += 1
            continue
        ratios.append(sum(d.placement.expected_cost_usd for d in admitted) / exact.cost_usd)
    result = {
        "instances": args.instances,
        "capacity_short_skipped": oversubscribed,
        "compared": len(ratios),
        "placed_fewer_than_optimum": fewer,
        "mean_ratio": statistics.mean(ratios),
        "worst_ratio": max(ratios),
        "share_exactly_optimal": sum(r <= 1 + 1e-9 for r in ratios) / len(ratios),
        "ours_ms_per_instance": 1000 * ours_s / args.instances,
        "ilp_ms_per_instance": 1000 * exact_s / args.instances,
    }
    print(f"{'instances':<28}{args.instances}")
    for key, value in result.items():
        if key != "instances":
            print(f"{key:<28}{value:.4f}" if isinstance(value, float) else f"{key:<28}{value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
