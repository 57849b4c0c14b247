"""Record the decisions of `schedule` on seeded fleets, or check them against a recording.

    python benchmarks/scheduler_equivalence.py record /tmp/decisions.pkl
    python benchmarks/scheduler_equivalence.py check /tmp/decisions.pkl

For refactors that must not change behaviour: every decision of every scenario is compared
field by field. A decision is *the same* when its action, fit, reason, placement and victims are;
messages are compared too and their differences counted apart (a change of wording is not a
change of decision). `--greedy` runs every cycle on the greedy path (no exact solve), to compare
the walk itself with a recording made before the exact path existed.

Recordings are plain tuples (`as_record`), so that they outlive changes to the Decision class.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

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
from transfer_operator.scheduler.schedule import schedule_cycle  # noqa: E402


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


Record = tuple[Any, ...]  # (job, action, fit, reason, placement fields or None, victims, message)


def as_record(decision: Decision) -> Record:
    placement = decision.placement
    return (
        decision.job_key,
        decision.action.value,
        int(decision.fit),
        decision.reason.value,
        None if placement is None else tuple(getattr(placement, f.name) for f in fields(placement)),
        tuple(decision.victims),
        decision.message,
    )


def run_all(names: set[str] | None, greedy: bool) -> dict[str, list[Record]]:
    def decide(snapshot: ClusterSnapshot, pending: list[JobRequest]) -> list[Decision]:
        if greedy:
            return schedule_cycle(snapshot, pending, exact_budget_s=0.0).decisions
        return schedule(snapshot, pending)

    out = {}
    if not names or "tiny" in names:
        started = time.perf_counter()
        out["tiny"] = [as_record(d) for seed in range(TINY_INSTANCES) for d in decide(*tiny(seed))]
        print(f"{'tiny':>22}: {time.perf_counter() - started:7.3f} s", flush=True)
    for scenario in SCENARIOS:
        if names and scenario.name not in names:
            continue
        snapshot, pending = build(scenario)
        started = time.perf_counter()
        decisions = decide(snapshot, pending)
        print(f"{scenario.name:>22}: {time.perf_counter() - started:7.3f} s", flush=True)
        out[scenario.name] = [as_record(d) for d in decisions]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument("--greedy", action="store_true", help="the greedy path only (no exact solve)")
    args = parser.parse_args()
    names = set(args.only) if args.only else None
    results = run_all(names, args.greedy)
    if args.mode == "record":
        args.path.write_bytes(pickle.dumps(results))
        return
    recorded: dict[str, list[Record]] = pickle.loads(args.path.read_bytes())
    failed = False
    for name, decisions in results.items():
        want = recorded[name]
        if len(want) != len(decisions):
            failed = True
            print(f"{name}: {len(decisions)} decisions, recorded {len(want)}")
            continue
        differ = [(a, b) for a, b in zip(want, decisions, strict=True) if a[:6] != b[:6]]
        worded = sum(a[:6] == b[:6] and a[6] != b[6] for a, b in zip(want, decisions, strict=True))
        print(f"{name}: {len(want) - len(differ)} of {len(want)} decisions the same; {worded} messages reworded")
        failed |= bool(differ)
        for a, b in differ[:3]:
            print("  was:", a, "\n  now:", b)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
