"""Record the decisions of `schedule` on seeded fleets, or check them against a recording.

    python benchmarks/scheduler_equivalence.py record /tmp/decisions.pkl
    python benchmarks/scheduler_equivalence.py check /tmp/decisions.pkl

For refactors that must not change behaviour: every decision (action, fit, reason, message,
placement, victims, runner-ups) of every scenario is compared field by field.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import FleetConfig, WorkloadConfig, generate_fleet, generate_jobs  # noqa: E402

from transfer_operator.api.enums import Preference, UtilizationPolicy  # noqa: E402
from transfer_operator.scheduler import (  # noqa: E402
    Allocation,
    ClusterSnapshot,
    Decision,
    JobRequest,
    PoolState,
    QueueQuota,
    schedule,
)
from transfer_operator.scheduler.capacity import PoolCapacity  # noqa: E402


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int
    pools: int
    seed: int = 0
    held_share: float = 0.0  # share of pools with running jobs on them
    quotas: bool = False
    cordoned_share: float = 0.0
    zero_gpu_share: float = 0.0
    policy: UtilizationPolicy = UtilizationPolicy.BINPACK


SCENARIOS = (
    Scenario("200x50-improve", 200, 50, seed=3, held_share=0.3, quotas=True),
    Scenario("300x40-spread", 300, 40, seed=4, held_share=0.5, policy=UtilizationPolicy.SPREAD),
    Scenario("2kx500", 2_000, 500),
    Scenario("2kx500-held-quotas", 2_000, 500, seed=5, held_share=0.4, quotas=True, cordoned_share=0.05),
    Scenario(
        "3kx300-spread-held",
        3_000,
        300,
        seed=6,
        held_share=0.6,
        quotas=True,
        zero_gpu_share=0.02,
        policy=UtilizationPolicy.SPREAD,
    ),
    Scenario("10kx5k", 10_000, 5_000),
    Scenario("10kx500-held", 10_000, 500, seed=7, held_share=0.3, quotas=True, cordoned_share=0.02),
    Scenario("100kx5k", 100_000, 5_000),
)


def _held(pools: tuple[PoolState, ...], share: float, rng: random.Random) -> tuple[Allocation, ...]:
    """Running jobs of random priorities that really fit their pools."""
    allocations = []
    for pool in pools:
        if rng.random() >= share:
            continue
        capacity = PoolCapacity.empty(pool)
        for i in range(rng.randint(1, 6)):
            gpus = rng.choice([g for g in (1, 2, 4, 8) if g <= pool.gpus_per_node])
            workers = rng.choice([1, 1, 2, 4])
            if not capacity.fits(workers, gpus):
                continue
            capacity.take(workers, gpus, UtilizationPolicy.BINPACK)
            team = rng.randrange(50)
            allocations.append(
                Allocation(
                    f"team-{team}/run-{pool.name}-{i}",
                    pool.name,
                    workers,
                    gpus,
                    rng.choice([0, 0, 10, 50]),
                    f"team-{team}",
                    float(rng.randint(0, 1000)),
                )
            )
    return tuple(allocations)


def _quotas(rng: random.Random) -> tuple[QueueQuota, ...]:
    return tuple(
        QueueQuota(
            f"team-{t}",
            rng.randint(0, 400),
            rng.choice([None, "research", "prod"]),
            rng.choice([None, 0, 32, 128]),
        )
        for t in range(50)
        if rng.random() < 0.7
    )


def build(scenario: Scenario) -> tuple[ClusterSnapshot, list[JobRequest]]:
    rng = random.Random(scenario.seed)
    pools = generate_fleet(FleetConfig(pools=scenario.pools, seed=scenario.seed))
    pools = tuple(replace(p, cordoned=rng.random() < scenario.cordoned_share) for p in pools)
    jobs = generate_jobs(WorkloadConfig(jobs=scenario.jobs, seed=scenario.seed + 1))
    jobs = [replace(j, gpus_per_worker=0) if rng.random() < scenario.zero_gpu_share else j for j in jobs]
    allocations = _held(pools, scenario.held_share, rng)
    quotas = _quotas(rng) if scenario.quotas else ()
    return ClusterSnapshot(pools, allocations, quotas, scenario.policy), jobs


def tiny(seed: int) -> tuple[ClusterSnapshot, list[JobRequest]]:
    """A small random instance in the style of the property tests, with price ties on purpose."""
    rng = random.Random(seed)
    regions, gpus, queues = (
        ["eu-west", "us-east", "ap-south"],
        ["A100", "H100", "L4"],
        ["default", "nlp", "vision"],
    )
    pools = []
    for i in range(rng.randint(1, 6)):
        on_demand = rng.choice([1.0, 2.0, 3.0, round(rng.uniform(0.3, 8.0), 3)])
        spot = rng.choice([None, round(on_demand * rng.choice([0.3, 0.5]), 3)])
        pools.append(
            PoolState(
                f"pool-{i}",
                rng.choice(regions),
                rng.choice(gpus),
                rng.randint(0, 4),
                rng.choice([1, 2, 4, 8]),
                on_demand,
                spot,
                rng.choice([0.0, 0.1, 0.4]),
                cordoned=rng.random() < 0.15,
            )
        )
    quotas = tuple(
        QueueQuota(q, rng.randint(0, 32), rng.choice([None, "research"]), rng.choice([None, 0, 8, 16]))
        for q in queues[1:]
        if rng.random() < 0.5
    )
    allocations = []
    capacity = {p.name: PoolCapacity.empty(p) for p in pools}
    for i in range(rng.randint(0, 4)):
        pool = rng.choice(pools)
        gpus_per_worker = rng.choice([g for g in (1, 2, 4, 8) if g <= pool.gpus_per_node])
        if capacity[pool.name].fits(1, gpus_per_worker):
            capacity[pool.name].take(1, gpus_per_worker, UtilizationPolicy.BINPACK)
            allocations.append(
                Allocation(
                    f"ns/run-{i}",
                    pool.name,
                    1,
                    gpus_per_worker,
                    rng.randint(0, 3),
                    rng.choice(queues),
                    float(i),
                )
            )
    jobs = [
        JobRequest(
            f"ns/job-{i}",
            rng.randint(1, 4),
            rng.choice([0, 1, 2, 4, 8]),
            rng.choice([None, *gpus]),
            frozenset(rng.sample(regions, rng.randint(0, 2))),
            rng.random() < 0.5,
            rng.choice([None, round(rng.uniform(0.2, 9.0), 2)]),
            rng.choice([None, round(rng.uniform(1.0, 500.0), 2)]),
            rng.choice([1.0, round(rng.uniform(0.1, 10.0), 3)]),
            rng.randint(0, 3),
            rng.choice(queues),
            float(rng.randint(0, 5)),
            rng.choice(list(Preference)),
        )
        for i in range(rng.randint(0, 12))
    ]
    policy = rng.choice(list(UtilizationPolicy))
    return ClusterSnapshot(tuple(pools), tuple(allocations), quotas, policy), jobs


TINY_INSTANCES = 3_000


def run_all(names: set[str] | None) -> dict[str, list[Decision]]:
    out = {}
    if not names or "tiny" in names:
        started = time.perf_counter()
        out["tiny"] = [d for seed in range(TINY_INSTANCES) for d in schedule(*tiny(seed))]
        print(f"{'tiny':>22}: {time.perf_counter() - started:7.3f} s", flush=True)
    for scenario in SCENARIOS:
        if names and scenario.name not in names:
            continue
        snapshot, pending = build(scenario)
        started = time.perf_counter()
        out[scenario.name] = schedule(snapshot, pending)
        print(f"{scenario.name:>22}: {time.perf_counter() - started:7.3f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--only", nargs="*", help="scenario names")
    args = parser.parse_args()
    names = set(args.only) if args.only else None
    results = run_all(names)
    if args.mode == "record":
        args.path.write_bytes(pickle.dumps(results))
        return
    recorded: dict[str, list[Decision]] = pickle.loads(args.path.read_bytes())
    failed = False
    for name, decisions in results.items():
        want = recorded[name]
        if decisions == want:
            print(f"{name}: same {len(decisions)} decisions")
            continue
        failed = True
        diffs = [(a, b) for a, b in zip(want, decisions, strict=False) if a != b]
        print(f"{name}: {len(diffs)} of {len(want)} differ (lengths {len(want)} vs {len(decisions)})")
        for a, b in diffs[:3]:
            print("  was:", a, "\n  now:", b)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
