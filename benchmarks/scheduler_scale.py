"""Decision time and peak memory of one scheduling cycle, for 1k-100k jobs over 500-5,000 pools.

    python benchmarks/scheduler_scale.py            # the full table (several minutes)
    python benchmarks/scheduler_scale.py --quick    # 1k-10k jobs

`seconds` is the cycle with its decisions kept as columns (what the operator pays before it reads
a decision); `all read` adds building every Decision and its message (a first cycle, where every
job's status is written). Peak memory is with every decision read. Prints a table, fits how
time grows with jobs and pools (log-log slope), and writes JSON. Each time is the best of
--repeat runs (3): the machine is shared, and the best run is the one least disturbed by other
work.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import FleetConfig, WorkloadConfig, generate_fleet, generate_jobs  # noqa: E402

from transfer_operator.scheduler import Action, ClusterSnapshot  # noqa: E402
from transfer_operator.scheduler.admit import Walk  # noqa: E402
from transfer_operator.scheduler.batch import Estimates  # noqa: E402
from transfer_operator.scheduler.explain import Decisions  # noqa: E402
from transfer_operator.scheduler.options import OptionCache  # noqa: E402
from transfer_operator.scheduler.schedule import _solve, schedule_cycle  # noqa: E402


def run_one(jobs: int, pools: int, measure_memory: bool) -> dict[str, float]:
    fleet = generate_fleet(FleetConfig(pools=pools))
    pending = generate_jobs(WorkloadConfig(jobs=jobs))
    snapshot = ClusterSnapshot(fleet)
    if measure_memory:
        tracemalloc.start()
    started = time.perf_counter()
    gc.disable()  # as the operator runs a cycle (handlers/scheduling.py collector_paused)
    try:
        decisions = schedule_cycle(snapshot, pending).decisions
        seconds = time.perf_counter() - started
        built = list(decisions)  # every Decision and message, as a first cycle writes them all
        read_all = time.perf_counter() - started
    finally:
        gc.enable()
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20 if measure_memory else float("nan")
    if measure_memory:
        tracemalloc.stop()
    admitted = sum(d.action is Action.ADMIT for d in built)
    return {
        "jobs": jobs,
        "pools": pools,
        "seconds": seconds,
        "seconds_all_read": read_all,
        "peak_mb": peak_mb,
        "admitted": admitted,
    }


def step_seconds(jobs: int, pools: int) -> dict[str, float]:
    """One cycle's time per step, the steps of `schedule._cycle` called one by one (a fleet
    without elastic gangs or elastic pools, where `schedule_cycle` is exactly these calls)."""
    snapshot = ClusterSnapshot(generate_fleet(FleetConfig(pools=pools)))
    pending = generate_jobs(WorkloadConfig(jobs=jobs))
    times = {}
    gc.disable()
    try:
        started = time.perf_counter()
        cache = OptionCache(snapshot.pools)
        estimates = Estimates(pending, cache)
        times["estimate"] = time.perf_counter() - started
        order = estimates.order().tolist()
        times["order"] = time.perf_counter() - started - sum(times.values())
        walk = Walk(snapshot, pending, cache, estimates, order)
        walk.run()
        times["admit"] = time.perf_counter() - started - sum(times.values())
        outcome, _, _ = _solve(walk, 0.2)
        times["solve"] = time.perf_counter() - started - sum(times.values())
        Decisions(walk, outcome)
        times["explain"] = time.perf_counter() - started - sum(times.values())
    finally:
        gc.enable()
    return times


def seconds(row: dict[str, float]) -> float:
    return row["seconds"]


def slope(rows: list[dict[str, float]], vary: str, fixed: str) -> dict[float, float]:
    """Log-log slope of time against `vary` for each value of `fixed`."""
    out = {}
    for value in sorted({r[fixed] for r in rows}):
        points = [(math.log(r[vary]), math.log(r["seconds"])) for r in rows if r[fixed] == value]
        if len(points) >= 2:
            xs, ys = np.array(points).T
            out[value] = float(np.polyfit(xs, ys, 1)[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("docs/results/scheduler_scale.json"))
    parser.add_argument("--no-memory", action="store_true", help="skip tracemalloc (it slows Python ~2x)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the best time is kept")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    job_counts = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    pool_counts = [500, 5_000]
    rows = []
    print(f"{'jobs':>8} {'pools':>6} {'seconds':>9} {'all read':>9} {'peak MB':>8} {'admitted':>9}")
    for pools in pool_counts:
        for jobs in job_counts:
            row = min((run_one(jobs, pools, measure_memory=False) for _ in range(args.repeat)), key=seconds)
            if not args.no_memory:
                row["peak_mb"] = run_one(jobs, pools, measure_memory=True)["peak_mb"]
            rows.append(row)
            print(
                f"{jobs:>8} {pools:>6} {row['seconds']:>9.3f} {row['seconds_all_read']:>9.3f} "
                f"{row['peak_mb']:>8.1f} {row['admitted']:>9}",
                flush=True,
            )
    largest = (job_counts[-1], pool_counts[-1])
    runs = [step_seconds(*largest) for _ in range(args.repeat)]
    steps = min(runs, key=lambda run: sum(run.values()))
    print(f"steps at {largest[0]:,} x {largest[1]:,} (the run of least total):", {k: round(v, 3) for k, v in steps.items()})
    by_jobs = slope(rows, "jobs", "pools")
    by_pools = slope(rows, "pools", "jobs")
    print("time ~ jobs^k:", {int(k): round(v, 2) for k, v in by_jobs.items()}, "(per pool count)")
    print("time ~ pools^k:", {int(k): round(v, 2) for k, v in by_pools.items()}, "(per job count)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "rows": rows,
                "slope_jobs": by_jobs,
                "slope_pools": by_pools,
                "steps": {"jobs": largest[0], "pools": largest[1], "seconds": steps},
                "load_average_1m_at_start": load_at_start,
                "load_average_1m_at_end": os.getloadavg()[0],
                "command": " ".join(["python", "benchmarks/scheduler_scale.py", *sys.argv[1:]]),
                "repeat": args.repeat,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
