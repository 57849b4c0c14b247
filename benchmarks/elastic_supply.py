"""Fixed GPU pools against elastic ones (Karpenter-style), and fixed gangs against elastic ones,
over one simulated day, with the real scheduler (transfer_operator.scheduler) deciding every cycle.

A discrete-event simulation with five-minute cycles. Jobs arrive over 24 h (busier in the working
day), each a gang of 1-4 workers of 8 A100s (one node per worker), with a given amount of work in
node-hours; a fixed gang of w workers runs work/w hours, an elastic gang (minWorkers 1,
maxWorkers w) runs work/held hours at the size it holds. Gangs come in three kinds: fixed,
elastic (sized at admission only), and elastic that grow (the operator's growth step,
scheduler/growth.py, every cycle after the admissions, GROW_AFTER_H after a gang's last
(re)admission, on free ready nodes only; a growth restarts the gang: the work since its last
checkpoint is done again and the restart takes RESIZE_RESTART_S, measured by
benchmarks/resize_cost.py). Fleets:

  static-N  one pool of N on-demand nodes (N in STATIC_NODES), paid around the clock
  elastic   a warm pool of WARM_NODES on-demand nodes, plus two elastic pools a provisioner buys
            nodes for on demand (on-demand, and spot at the spot price for jobs that allow spot),
            up to MAX_NODES each: a bought node is ready NODE_STARTUP_S after the admission (the job
            waits for it), is paid from its purchase until it is empty at a cycle (consolidated
            away), and a spot node is interrupted at SPOT_RATE per hour: its job loses the work
            since its last checkpoint (every CHECKPOINT_H) and goes back to the queue
  elastic-on-demand  the same without the spot pool (what elasticity alone saves)

Printed per fleet and gang kind: dollars (nodes paid, idle or not), GPU utilization (busy GPU-hours
over paid GPU-hours), mean and p95 wait (arrival to running, a bought node's start-up included),
interruptions, and the time the last job ended.

    python benchmarks/elastic_supply.py [--jobs 120] [--seed 7] [--json docs/results/elastic_supply.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from transfer_operator.scheduler import Action, Allocation, ClusterSnapshot, JobRequest, PoolState
from transfer_operator.scheduler.growth import Running, grow
from transfer_operator.scheduler.schedule import schedule_cycle

CYCLE_H = 5 / 60
ARRIVAL_WINDOW_H = 24.0
HORIZON_H = 96.0
GPUS_PER_NODE = 8
ON_DEMAND = 3.40  # $/GPU-hour (the example eu-west A100 pool)
SPOT = 1.35
SPOT_RATE = 0.08  # interruptions per node-hour
CHECKPOINT_H = 0.25
NODE_STARTUP_S = 300
GROW_AFTER_H = 300 / 3600  # the operator's default growAfterSeconds
RESIZE_RESTART_S = 60  # the trainer's restart to its first step (16.5 s, docs/results/resize_cost.md) plus new pods
STATIC_NODES = (16, 24)  # the static fleet sized for about the mean demand, and for more
WARM_NODES = 2
MAX_NODES = 24


@dataclass
class Job:
    key: str
    arrival_h: float
    workers: int  # the most (a fixed gang: exactly)
    work: float  # node-hours
    spot: bool
    elastic: bool
    grows: bool = False
    held: int = 0
    pool: str | None = None
    nodes: list[int] = field(default_factory=list)
    running_from_h: float | None = None  # when its nodes are all ready
    first_run_h: float | None = None
    admitted_h: float = 0.0  # its last (re)admission
    since_checkpoint_h: float = 0.0
    done_h: float | None = None


@dataclass
class Node:
    id: int
    pool: str
    ready_h: float
    bought_h: float
    fixed: bool
    job: str | None = None


def trace(count: int, seed: int, gangs: str) -> list[Job]:
    """`gangs`: fixed, elastic, or growing."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        # busier from 08:00 to 20:00: two thirds of the arrivals in half the day
        arrival = rng.uniform(8, 20) if rng.random() < 2 / 3 else rng.choice([rng.uniform(0, 8), rng.uniform(20, 24)])
        workers = rng.choice([1, 1, 2, 2, 3, 4])
        hours = min(8.0, rng.lognormvariate(math.log(1.5), 0.7))
        spot = rng.random() < 0.6
        jobs.append(Job(f"default/j{i:04d}", arrival, workers, hours * workers, spot, gangs != "fixed", gangs == "growing"))
    return sorted(jobs, key=lambda j: j.arrival_h)


def pools_of(kind: str) -> list[tuple[str, int, float | None, int]]:
    """(name, fixed nodes, spot price or None, most nodes to buy)."""
    if kind.startswith("static-"):
        return [("static-a100", int(kind.removeprefix("static-")), None, 0)]
    elastic = [("warm-a100", WARM_NODES, None, 0), ("od-a100", 0, None, MAX_NODES)]
    return elastic if kind == "elastic-on-demand" else [*elastic, ("spot-a100", 0, SPOT, MAX_NODES)]


def simulate(kind: str, jobs: list[Job], seed: int) -> dict[str, float]:
    """Every node is paid from its purchase to its release (a fixed one from the start of the day
    to the end of the run, at least the whole day), at its pool's price."""
    rng = random.Random(seed + 1)
    pools = pools_of(kind)
    price = {name: (spot or ON_DEMAND) * GPUS_PER_NODE for name, _, spot, _ in pools}
    paid = {"usd": 0.0, "gpu_h": 0.0}

    def release(node: Node, at_h: float) -> None:
        paid["usd"] += (at_h - node.bought_h) * price[node.pool]
        paid["gpu_h"] += (at_h - node.bought_h) * GPUS_PER_NODE

    nodes: dict[int, Node] = {}
    next_id = 0
    for name, fixed, _, _ in pools:
        for _ in range(fixed):
            nodes[next_id] = Node(next_id, name, 0.0, 0.0, True)
            next_id += 1
    by_key = {j.key: j for j in jobs}
    interruptions = resizes = 0
    busy_gpu_h = 0.0
    now = 0.0
    while now < HORIZON_H:
        # 1. running jobs progress; spot nodes may be interrupted; finished jobs free their nodes
        for job in jobs:
            if job.pool is None or job.running_from_h is None or job.running_from_h > now:
                continue
            step = CYCLE_H
            lost = [n for n in job.nodes if nodes[n].pool == "spot-a100" and rng.random() < 1 - math.exp(-SPOT_RATE * step)]
            if lost:
                interruptions += 1
                job.work += job.since_checkpoint_h * job.held  # the work since the last checkpoint, again
                for n in job.nodes:
                    nodes[n].job = None
                for n in lost:
                    release(nodes.pop(n), now)
                job.pool, job.nodes, job.running_from_h, job.since_checkpoint_h = None, [], None, 0.0
                continue
            done = job.work / job.held
            ran = min(step, done)
            busy_gpu_h += ran * job.held * GPUS_PER_NODE
            job.work -= ran * job.held
            job.since_checkpoint_h = (job.since_checkpoint_h + ran) % CHECKPOINT_H
            if job.work <= 1e-9:
                job.done_h = now + ran
                for n in job.nodes:
                    nodes[n].job = None
                job.pool, job.nodes = None, []
        now += CYCLE_H
        # 2. the scheduler: ready and starting nodes are capacity; what may still be bought is provisionable
        queued = [j for j in jobs if j.arrival_h <= now and j.done_h is None and j.pool is None]
        states = []
        for name, _, spot, most in pools:
            up = [n for n in nodes.values() if n.pool == name]
            bought = sum(1 for n in up if not n.fixed)
            states.append(
                PoolState(
                    name=name, region="eu-west", gpu_type="A100", nodes=len(up), gpus_per_node=GPUS_PER_NODE,
                    on_demand_usd_per_gpu_hour=spot or ON_DEMAND, spot_usd_per_gpu_hour=spot,
                    spot_interruptions_per_hour=SPOT_RATE if spot else 0.0,
                    provisionable_nodes=max(0, most - bought), startup_hours=NODE_STARTUP_S / 3600 if most else 0.0,
                )
            )  # fmt: skip
        allocations = tuple(
            Allocation(j.key, j.pool, j.held, GPUS_PER_NODE) for j in jobs if j.pool is not None
        )
        pending = [
            JobRequest(
                key=j.key, workers=j.workers, gpus_per_worker=GPUS_PER_NODE, gpu_type="A100",
                spot=j.spot, estimated_hours=max(j.work / j.workers, 1e-3), created_at_s=j.arrival_h * 3600,
                min_workers=1 if j.elastic and j.workers > 1 else None,
            )
            for j in queued
        ]  # fmt: skip
        if pending:
            snapshot = ClusterSnapshot(tuple(states), allocations)
            for decision in schedule_cycle(snapshot, pending, exact_budget_s=0.0).decisions:
                if decision.action is not Action.ADMIT or decision.placement is None:
                    continue
                job = by_key[decision.job_key]
                job.pool, job.held = decision.placement.pool, decision.placement.gpus // GPUS_PER_NODE
                free = [n for n in nodes.values() if n.pool == job.pool and n.job is None]
                take = free[: job.held]
                ready_h = max([now] + [n.ready_h for n in take])
                for _ in range(job.held - len(take)):  # buy the rest
                    node = Node(next_id, job.pool, now + NODE_STARTUP_S / 3600, now, False)
                    nodes[next_id] = node
                    take.append(node)
                    next_id += 1
                    ready_h = max(ready_h, node.ready_h)
                for node in take:
                    node.job = job.key
                job.nodes = [n.id for n in take]
                job.running_from_h, job.admitted_h = ready_h, now
                if job.first_run_h is None:
                    job.first_run_h = ready_h
            resizes += grow_gangs(jobs, nodes, states, snapshot, pending, now)
        # 3. empty bought nodes are consolidated away
        for node in list(nodes.values()):
            if not node.fixed and node.job is None:
                release(nodes.pop(node.id), now)
        if all(j.done_h is not None for j in jobs):
            break
    end_h = max(ARRIVAL_WINDOW_H, now)
    for node in nodes.values():
        release(node, end_h)
    return {
        "usd": round(paid["usd"], 2),
        "utilization": busy_gpu_h / paid["gpu_h"] if paid["gpu_h"] else 0.0,
        "interruptions": interruptions,
        "resizes": resizes,
        "end_h": round(end_h, 2),
    }


def grow_gangs(
    jobs: list[Job],
    nodes: dict[int, Node],
    states: list[PoolState],
    before: ClusterSnapshot,
    pending: list[JobRequest],
    now: float,
) -> int:
    """The growth step after a cycle's admissions, performed: a grown gang takes free ready nodes
    of its pool, does the work since its last checkpoint again and runs after its restart."""
    running = [
        Running(j.key, j.pool, j.held, j.workers, GPUS_PER_NODE, ON_DEMAND, admitted_at_s=j.admitted_h * 3600)
        for j in jobs
        if j.grows and j.pool is not None and j.running_from_h is not None and j.running_from_h <= now
        and j.held < j.workers and now - j.admitted_h >= GROW_AFTER_H
    ]  # fmt: skip
    if not running:
        return 0
    by_key = {j.key: j for j in jobs}
    held = tuple(Allocation(j.key, j.pool, j.held, GPUS_PER_NODE) for j in jobs if j.pool is not None)
    waiting = [r for r in pending if by_key[r.key].pool is None]  # left waiting by this cycle
    growths = grow(ClusterSnapshot(tuple(states), held, (), before.policy), running, waiting)
    for growth in growths:
        job = by_key[growth.key]
        free = [n for n in nodes.values() if n.pool == job.pool and n.job is None and n.ready_h <= now]
        for node in free[: growth.workers_to - job.held]:
            node.job = job.key
            job.nodes.append(node.id)
        job.work += job.since_checkpoint_h * job.held  # the work since the last checkpoint, again
        job.held, job.since_checkpoint_h = len(job.nodes), 0.0
        job.running_from_h, job.admitted_h = now + RESIZE_RESTART_S / 3600, now
    return len(growths)


def run(kind: str, count: int, seed: int, gangs: str) -> dict[str, float]:
    jobs = trace(count, seed, gangs)
    result = simulate(kind, jobs, seed)
    waits = sorted((j.first_run_h - j.arrival_h) * 60 for j in jobs if j.first_run_h is not None)
    unfinished = sum(1 for j in jobs if j.done_h is None)
    return {
        **result,
        "mean_wait_min": statistics.fmean(waits) if waits else float("nan"),
        "p95_wait_min": waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else float("nan"),
        "unfinished": unfinished,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    for kind in (*(f"static-{n}" for n in STATIC_NODES), "elastic-on-demand", "elastic"):
        for gangs in ("fixed", "elastic", "growing"):
            rows[f"{kind}, {gangs} gangs"] = run(kind, args.jobs, args.seed, gangs)
    print(
        f"{args.jobs} jobs over {ARRIVAL_WINDOW_H:g} h, seed {args.seed}; static-N: N on-demand nodes of 8 A100; "
        f"elastic: {WARM_NODES} warm on-demand + up to {MAX_NODES} on-demand + {MAX_NODES} spot bought on demand, "
        f"start-up {NODE_STARTUP_S} s, spot {SPOT_RATE}/node-hour; growing gangs: growth after "
        f"{GROW_AFTER_H * 3600:.0f} s, restart {RESIZE_RESTART_S} s"
    )
    header = (
        f"{'fleet':<34} {'dollars':>10} {'GPU util':>9} {'mean wait':>10} {'p95 wait':>9} {'interrupts':>10} "
        f"{'resizes':>8} {'last end':>9}"
    )
    print(header)
    for name, row in rows.items():
        print(
            f"{name:<34} {row['usd']:>10,.0f} {row['utilization']:>8.1%} {row['mean_wait_min']:>8.1f} m "
            f"{row['p95_wait_min']:>7.1f} m {row['interruptions']:>10} {row['resizes']:>8} {row['end_h']:>7.1f} h"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
