"""Time of one scheduling cycle on inputs built to make it slow (issue #13's bad-input cases).

    python benchmarks/scheduler_bad_input.py

- 2,000 running zero-GPU jobs and 10 top-priority jobs that fit nowhere (every GPU is held at a
  higher priority): zero-GPU jobs free nothing, so there is nothing to search;
- the same with a lower-priority job on every pool, but gangs that fit no pool even after its
  eviction (with and without a quota on the queue): one check per option, once per cycle;
- 4,000 one-GPU jobs on two 250-node pools and 10 full-pool gangs above them: bisection;
- 100,000 jobs no pool can ever take: explained once, not once per job.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from transfer_operator.scheduler import (
    Allocation,
    ClusterSnapshot,
    JobRequest,
    PoolState,
    QueueQuota,
    schedule,
)


def cases() -> list[tuple[str, ClusterSnapshot, list[JobRequest]]]:
    pools = tuple(PoolState(f"p{i}", "eu-west", "A100", 2, 8, 3.0 + i * 0.01) for i in range(20))
    zero = [Allocation(f"ns/zero-{i}", f"p{i % 20}", 4, 0, 0, "default", float(i)) for i in range(2000)]
    full = [Allocation(f"ns/full-{i}", f"p{i}", 2, 8, 100) for i in range(20)]
    half = [Allocation(f"ns/top-{i}", f"p{i}", 1, 8, 100) for i in range(20)]
    half += [Allocation(f"ns/low-{i}", f"p{i}", 1, 8, 0) for i in range(20)]
    urgent = [JobRequest(f"ns/urgent-{i}", 1, 8, priority=50) for i in range(10)]
    gangs = [JobRequest(f"ns/gang-{i}", 2, 8, priority=50) for i in range(10)]
    big = tuple(PoolState(f"b{i}", "eu-west", "A100", 250, 8, 3.0 + i) for i in range(2))
    ones = tuple(Allocation(f"ns/one-{i}", f"b{i % 2}", 1, 1, 0, "default", float(i)) for i in range(4000))
    huge = [JobRequest(f"ns/huge-{i}", 100, 8, priority=i % 3) for i in range(100_000)]
    return [
        (
            "2,000 zero-GPU running + 10 unfittable top priority",
            ClusterSnapshot(pools, tuple(full + zero)),
            urgent,
        ),
        ("same, a victim per pool that is not enough", ClusterSnapshot(pools, tuple(half + zero)), gangs),
        (
            "same, with a quota on the queue",
            ClusterSnapshot(pools, tuple(half + zero), (QueueQuota("default", 10_000),)),
            gangs,
        ),
        (
            "4,000 one-GPU victims, 10 full-pool gangs",
            ClusterSnapshot(big, ones),
            [JobRequest(f"ns/pool-{i}", 250, 8, priority=50 + i) for i in range(10)],
        ),
        ("100,000 jobs no pool can ever take", ClusterSnapshot(pools), huge),
    ]


def main() -> None:
    rows = []
    for name, snapshot, pending in cases():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            schedule(snapshot, pending)
            best = min(best, time.perf_counter() - started)
        rows.append({"case": name, "ms": round(1000 * best, 1)})
        print(f"{name:<55} {1000 * best:9.1f} ms", flush=True)
    out = Path("docs/results/scheduler_bad_input.json")
    out.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
