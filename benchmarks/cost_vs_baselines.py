"""Our scheduler against four baselines on the same day-long trace, in one run.

A discrete-event simulation (five-minute scheduling cycles): jobs arrive over 24 h, run for their
work (A100-hours) divided by the GPU's speed, pay their pool's price per GPU-hour, are interrupted
on spot at the region's rate and lose the work since their last checkpoint (at most one
checkpoint interval), then go back to the queue. Policies:

  ours        transfer_operator.scheduler.schedule (gang, cost with spot risk, budget, priority)
  fifo        FIFO first-fit over pools in name order, on-demand, gang-aware
  round-robin regions in rotation, first fitting pool of the region, on-demand, gang-aware
  greedy      cheapest pool per worker, spot when allowed, NOT gang-aware (may split or half-place)
  kueue-like  priority then FIFO; flavors in a fixed order: spot pools, then on-demand pools

    python benchmarks/cost_vs_baselines.py [--jobs 400] [--pools 60] [--seed 7]

Pools here have fixed nodes. Elastic pools (a warm pool plus nodes bought on demand, spot first)
and elastic gangs (sized at admission, grown later) against the static fleet, over a day with
node start-up and spot interruptions priced in: benchmarks/elastic_supply.py.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import FleetConfig, WorkloadConfig, generate_fleet, generate_jobs  # noqa: E402

from transfer_operator.api.enums import PriceClass, UtilizationPolicy  # noqa: E402
from transfer_operator.scheduler import Action, Allocation, ClusterSnapshot, JobRequest, PoolState, schedule  # noqa: E402
from transfer_operator.scheduler.capacity import PoolCapacity  # noqa: E402
from transfer_operator.scheduler.costmap import gpu_speed, pool_matches  # noqa: E402

CYCLE_H = 5 / 60  # one scheduling decision every 5 simulated minutes
CHECKPOINT_EVERY_H = 0.25
ARRIVAL_WINDOW_H = 24.0
HORIZON_H = 72.0


@dataclass
class Piece:
    pool: str
    workers: int
    usd_per_gpu_hour: float
    spot: bool


@dataclass
class JobState:
    request: JobRequest
    arrival_h: float
    work_left: float  # A100-hours of the whole gang's wall time (estimated_hours)
    pieces: list[Piece] = field(default_factory=list)
    first_admit_h: float | None = None
    done_h: float | None = None
    cost: float = 0.0
    since_checkpoint: float = 0.0
    partial_ever: bool = False
    stopped_at_budget: bool = False

    @property
    def placed_workers(self) -> int:
        return sum(p.workers for p in self.pieces)

    @property
    def complete_gang(self) -> bool:
        return self.placed_workers >= self.request.workers


Policy = Callable[
    [list[JobState], dict[str, PoolState], dict[str, PoolCapacity], float, dict[str, JobState]], None
]


def _take(capacity: dict[str, PoolCapacity], pool: str, workers: int, gpus: int) -> None:
    capacity[pool].take(workers, gpus, UtilizationPolicy.BINPACK)


def _place_whole(job: JobState, pool: PoolState, capacity: dict[str, PoolCapacity], spot: bool) -> bool:
    r = job.request
    if not capacity[pool.name].fits(r.workers, r.gpus_per_worker):
        return False
    _take(capacity, pool.name, r.workers, r.gpus_per_worker)
    usd = (
        pool.spot_usd_per_gpu_hour
        if spot and pool.spot_usd_per_gpu_hour is not None
        else pool.on_demand_usd_per_gpu_hour
    )
    job.pieces = [Piece(pool.name, r.workers, usd, spot and pool.spot_usd_per_gpu_hour is not None)]
    return True


def policy_fifo(queue, pools, capacity, now, _running) -> None:
    ordered = sorted(pools.values(), key=lambda p: p.name)
    for job in sorted(queue, key=lambda j: j.arrival_h):
        for pool in ordered:
            if pool_matches(job.request, pool) and _place_whole(job, pool, capacity, spot=False):
                break


_rr_next = [0]


def policy_round_robin(queue, pools, capacity, now, _running) -> None:
    regions = sorted({p.region for p in pools.values()})
    by_region = {
        r: sorted((p for p in pools.values() if p.region == r), key=lambda p: p.name) for r in regions
    }
    for job in sorted(queue, key=lambda j: j.arrival_h):
        for step in range(len(regions)):
            region = regions[(_rr_next[0] + step) % len(regions)]
            if any(
                pool_matches(job.request, p) and _place_whole(job, p, capacity, spot=False)
                for p in by_region[region]
            ):
                _rr_next[0] = (_rr_next[0] + step + 1) % len(regions)
                break


def policy_greedy(queue, pools, capacity, now, _running) -> None:
    def price(p: PoolState, spot: bool) -> float:
        return (
            p.spot_usd_per_gpu_hour
            if spot and p.spot_usd_per_gpu_hour is not None
            else p.on_demand_usd_per_gpu_hour
        )

    for job in sorted(queue, key=lambda j: j.arrival_h):
        r = job.request
        candidates = sorted((p for p in pools.values() if pool_matches(r, p)), key=lambda p: price(p, r.spot))
        while job.placed_workers < r.workers:
            pool = next((p for p in candidates if capacity[p.name].fits(1, r.gpus_per_worker)), None)
            if pool is None:
                break
            _take(capacity, pool.name, 1, r.gpus_per_worker)
            spot = r.spot and pool.spot_usd_per_gpu_hour is not None
            job.pieces.append(Piece(pool.name, 1, price(pool, r.spot), spot))
        if job.pieces and not job.complete_gang:
            job.partial_ever = True


def policy_kueue_like(queue, pools, capacity, now, _running) -> None:
    ordered = sorted(pools.values(), key=lambda p: p.name)
    flavors = [(p, True) for p in ordered if p.spot_usd_per_gpu_hour is not None] + [
        (p, False) for p in ordered
    ]
    for job in sorted(queue, key=lambda j: (-j.request.priority, j.arrival_h)):
        for pool, spot in flavors:
            if spot and not job.request.spot:
                continue
            if pool_matches(job.request, pool) and _place_whole(job, pool, capacity, spot=spot):
                break


def policy_ours(queue, pools, capacity, now, running) -> None:
    allocations = tuple(
        Allocation(
            key,
            piece.pool,
            piece.workers,
            state.request.gpus_per_worker,
            state.request.priority,
            state.request.queue,
            state.first_admit_h or 0.0,
        )
        for key, state in running.items()
        for piece in state.pieces
    )
    pending = []
    for job in queue:
        budget = job.request.budget_usd
        pending.append(
            replace(
                job.request,
                budget_usd=None if budget is None else max(0.0, budget - job.cost),
                estimated_hours=max(job.work_left, 1e-3),
            )
        )
    by_key = {job.request.key: job for job in queue}
    snapshot = ClusterSnapshot(tuple(pools.values()), allocations)
    for decision in schedule(snapshot, pending):
        if decision.action is Action.ADMIT:
            job = by_key[decision.job_key]
            p = decision.placement
            _take(capacity, p.pool, job.request.workers, job.request.gpus_per_worker)
            job.pieces = [
                Piece(p.pool, job.request.workers, p.usd_per_gpu_hour, p.price_class is PriceClass.SPOT)
            ]
        elif decision.action is Action.PREEMPT:
            for victim in decision.victims:
                _evict(running[victim], capacity, pools)


def _evict(job: JobState, capacity: dict[str, PoolCapacity], pools: dict[str, PoolState]) -> None:
    job.work_left += job.since_checkpoint  # lose the work since the last checkpoint
    job.since_checkpoint = 0.0
    job.pieces = []


POLICIES: dict[str, Policy] = {
    "ours": policy_ours,
    "fifo": policy_fifo,
    "round-robin": policy_round_robin,
    "greedy (no gang)": policy_greedy,
    "kueue-like": policy_kueue_like,
}


def simulate(
    policy: Policy,
    fleet: tuple[PoolState, ...],
    trace: list[tuple[float, JobRequest]],
    seed: int,
    enforce_budget: bool,
) -> dict[str, float]:
    rng = random.Random(seed)  # same interruption draws for every policy
    pools = {p.name: p for p in fleet}
    jobs = [JobState(r, arrival, r.estimated_hours) for arrival, r in trace]
    capacity_gpu_hours = 0.0
    used_gpu_hours = 0.0
    now = 0.0
    total_capacity = sum(p.capacity_gpus for p in fleet)
    while now < HORIZON_H:
        arrived = [j for j in jobs if j.arrival_h <= now and j.done_h is None and not j.stopped_at_budget]
        running = {j.request.key: j for j in arrived if j.pieces}
        # Capacity left by what runs (rebuilt each cycle: the simulator owns the truth).
        capacity = {name: PoolCapacity.empty(p) for name, p in pools.items()}
        for job in running.values():
            for piece in job.pieces:
                _take(capacity, piece.pool, piece.workers, job.request.gpus_per_worker)
        queue = [j for j in arrived if not j.complete_gang]
        policy(queue, pools, capacity, now, running)
        for job in arrived:
            if job.pieces and job.first_admit_h is None and job.complete_gang:
                job.first_admit_h = now
        # Advance one cycle.
        for job in arrived:
            if not job.pieces:
                continue
            gpus = job.request.gpus_per_worker
            for piece in job.pieces:
                job.cost += piece.usd_per_gpu_hour * piece.workers * gpus * CYCLE_H
                used_gpu_hours += piece.workers * gpus * CYCLE_H
            if not job.complete_gang:
                continue  # half a gang pays and makes no progress
            speed = min(gpu_speed(pools[p.pool].gpu_type) for p in job.pieces)
            job.work_left -= speed * CYCLE_H
            job.since_checkpoint = (job.since_checkpoint + speed * CYCLE_H) % CHECKPOINT_EVERY_H
            interrupted = any(
                p.spot and rng.random() < pools[p.pool].spot_interruptions_per_hour * CYCLE_H
                for p in job.pieces
            )
            if job.work_left <= 0:
                job.done_h = now + CYCLE_H
                job.pieces = []
            elif interrupted:
                _evict(job, capacity, pools)
            elif enforce_budget and job.request.budget_usd is not None and job.cost >= job.request.budget_usd:
                job.stopped_at_budget = True  # the operator stops it, checkpoint kept
                job.pieces = []
        capacity_gpu_hours += total_capacity * CYCLE_H
        now += CYCLE_H
        if all(j.done_h is not None or j.stopped_at_budget for j in jobs):
            break
    waits = [j.first_admit_h - j.arrival_h for j in jobs if j.first_admit_h is not None] or [0.0]
    finished = [j for j in jobs if j.done_h is not None]
    return {
        "dollars": sum(j.cost for j in jobs),
        "utilization": used_gpu_hours / capacity_gpu_hours,
        "mean_wait_h": statistics.mean(waits),
        "p95_wait_h": sorted(waits)[int(0.95 * (len(waits) - 1))],
        "makespan_h": max((j.done_h for j in finished), default=now),
        "finished": len(finished),
        "never_admitted": sum(j.first_admit_h is None for j in jobs),
        "missed_budget": sum(
            j.request.budget_usd is not None and j.cost > j.request.budget_usd * 1.0001 for j in jobs
        ),
        "stopped_at_budget": sum(j.stopped_at_budget for j in jobs),
        "partial_placements": sum(j.partial_ever for j in jobs),
        "dollars_per_finished_job": sum(j.cost for j in jobs) / max(1, len(finished)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--pools", type=int, default=40)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("docs/results/cost_vs_baselines.json"))
    args = parser.parse_args()
    fleet = generate_fleet(FleetConfig(pools=args.pools, regions=args.regions, seed=args.seed))
    rng = random.Random(args.seed)
    requests = generate_jobs(WorkloadConfig(jobs=args.jobs, seed=args.seed), regions=args.regions)
    trace = sorted((rng.uniform(0, ARRIVAL_WINDOW_H), r) for r in requests)
    trace = [(t, replace(r, created_at_s=t * 3600)) for t, r in trace]
    results = {}
    header = (
        f"{'policy':<18}{'dollars':>10}{'$/done':>8}{'util':>7}{'wait':>7}{'p95':>7}{'makespan':>9}"
        f"{'done':>6}{'never':>6}{'>budget':>8}{'stopped':>8}{'partial':>8}"
    )
    print(
        f"{args.jobs} jobs over {ARRIVAL_WINDOW_H:.0f} h, {args.pools} pools in {args.regions} regions, seed {args.seed}"
    )
    print(header)
    for name, policy in POLICIES.items():
        _rr_next[0] = 0
        r = simulate(policy, fleet, trace, args.seed, enforce_budget=name == "ours")
        results[name] = r
        print(
            f"{name:<18}{r['dollars']:>10.0f}{r['dollars_per_finished_job']:>8.1f}{r['utilization']:>7.2f}"
            f"{r['mean_wait_h']:>7.2f}{r['p95_wait_h']:>7.2f}{r['makespan_h']:>9.1f}{r['finished']:>6}{r['never_admitted']:>6}"
            f"{r['missed_budget']:>8}{r['stopped_at_budget']:>8}{r['partial_placements']:>8}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"config": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
