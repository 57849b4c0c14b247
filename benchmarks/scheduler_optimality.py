"""The cycle's objective on 200 random small instances (up to 50 jobs x 20 pools, three priority
tiers), the exact path and the greedy path side by side, against an independent yardstick
(scipy's milp, `scheduler/exact.py`).

    python benchmarks/scheduler_optimality.py [--instances 200]

Per instance and path:
- GPUs placed per tier, against the lexicographic optimum (highest tier first);
- same-set cost ratio: our expected cost over the least cost of placing exactly the jobs we
  placed (so a path that places fewer jobs is not rewarded for "saving").
Workers are one GPU each, where counting GPUs per pool (as the yardstick does) is exact.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

from transfer_operator.scheduler import Action, ClusterSnapshot
from transfer_operator.scheduler.exact import optimum_gpus_per_tier, random_small_instance, same_set_cost
from transfer_operator.scheduler.schedule import SolvePath, schedule_cycle


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs/results/scheduler_optimality.json"))
    args = parser.parse_args()
    paths = {"exact": 0.2, "greedy": 0.0}
    stats: dict[str, dict[str, list[float]]] = {p: {"ratio": [], "short": [], "ms": []} for p in paths}
    ran_exact = tier_equal = 0
    for seed in range(args.instances):
        pools, jobs = random_small_instance(seed, max_nodes=8)
        rng = random.Random(seed)
        jobs = [replace(j, priority=rng.choice([0, 0, 1, 2])) for j in jobs]
        optimum = optimum_gpus_per_tier(pools, jobs)
        for name, budget in paths.items():
            started = time.perf_counter()
            result = schedule_cycle(ClusterSnapshot(pools), jobs, exact_budget_s=budget)
            stats[name]["ms"].append(1000 * (time.perf_counter() - started))
            admitted = [d for d in result.decisions if d.action is Action.ADMIT]
            by_key = {j.key: j for j in jobs}
            tiers = {tier: 0 for tier in optimum}
            for d in admitted:
                tiers[by_key[d.job_key].priority] += d.placement.gpus
            stats[name]["short"].append(sum(optimum.values()) - sum(tiers.values()))
            if name == "exact" and result.path is SolvePath.EXACT:
                ran_exact += 1
                tier_equal += tiers == optimum
            ours = sum(d.placement.expected_cost_usd for d in admitted)
            best = same_set_cost(pools, jobs, {d.job_key for d in admitted})
            stats[name]["ratio"].append(ours / best if best > 0 else 1.0)
    rows = {}
    for name, found in stats.items():
        rows[name] = {
            "mean_same_set_ratio": statistics.mean(found["ratio"]),
            "worst_same_set_ratio": max(found["ratio"]),
            "instances_short_of_optimum_gpus": sum(s > 0 for s in found["short"]),
            "gpus_short_total": sum(found["short"]),
            "mean_ms": statistics.mean(found["ms"]),
            "worst_ms": max(found["ms"]),
        }
    result = {
        "machine": platform.platform(),
        "instances": args.instances,
        "exact_path_ran": ran_exact,
        "gpus_per_tier_equal_to_optimum_where_exact_ran": tier_equal,
        "paths": rows,
    }
    print(f"instances {args.instances}; exact path ran on {ran_exact}; GPUs per tier = optimum on {tier_equal}")
    print(f"{'path':<8}{'mean ratio':>12}{'worst ratio':>13}{'short inst.':>13}{'GPUs short':>12}{'mean ms':>9}{'worst ms':>10}")
    for name, row in rows.items():
        print(
            f"{name:<8}{row['mean_same_set_ratio']:>12.5f}{row['worst_same_set_ratio']:>13.5f}"
            f"{row['instances_short_of_optimum_gpus']:>13}{row['gpus_short_total']:>12}"
            f"{row['mean_ms']:>9.1f}{row['worst_ms']:>10.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
