"""Seeded fleet and workload generator shared by the scheduler benchmarks.

Prices are USD per GPU-hour, drawn around public on-demand list prices of 2025-2026 cloud GPU
instances divided by GPUs per instance (see docs/benchmarks.md for the ranges and sources);
spot is 30-70% of on-demand; interruption rates 0-15%/h vary by region.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from transfer_operator.api.enums import Preference
from transfer_operator.scheduler import JobRequest, PoolState

# GPU type -> (on-demand $/GPU-h low, high, GPUs per node choices)
GPU_PRICES: dict[str, tuple[float, float, tuple[int, ...]]] = {
    "H100": (2.5, 7.0, (8,)),
    "A100": (1.2, 4.1, (4, 8)),
    "L40S": (0.9, 2.0, (4, 8)),
    "A10G": (0.7, 1.6, (1, 4)),
    "L4": (0.45, 0.95, (1, 4, 8)),
    "T4": (0.25, 0.55, (1, 4)),
}
REGION_NAMES = [
    "us-east",
    "us-west",
    "us-central",
    "ca-central",
    "sa-east",
    "eu-west",
    "eu-north",
    "eu-central",
    "eu-south",
    "uk-south",
    "me-central",
    "af-south",
    "ap-south",
    "ap-southeast",
    "ap-northeast",
    "ap-east",
    "au-east",
    "jp-east",
    "kr-central",
    "in-west",
]


@dataclass(frozen=True)
class FleetConfig:
    pools: int
    regions: int = 20
    seed: int = 0


@dataclass(frozen=True)
class WorkloadConfig:
    jobs: int
    seed: int = 1
    spot_share: float = 0.5
    region_limited_share: float = 0.6
    budget_share: float = 0.4


def generate_fleet(config: FleetConfig) -> tuple[PoolState, ...]:
    rng = random.Random(config.seed)
    regions = REGION_NAMES[: config.regions]
    interruption = {region: rng.uniform(0.0, 0.15) for region in regions}
    region_factor = {region: rng.uniform(0.9, 1.25) for region in regions}
    pools = []
    for i in range(config.pools):
        region = rng.choice(regions)
        gpu = rng.choice(list(GPU_PRICES))
        low, high, per_node = GPU_PRICES[gpu]
        on_demand = round(rng.uniform(low, high) * region_factor[region], 3)
        spot = round(on_demand * rng.uniform(0.3, 0.7), 3) if rng.random() < 0.6 else None
        pools.append(
            PoolState(
                name=f"{region}-{gpu.lower()}-{i}",
                region=region,
                gpu_type=gpu,
                nodes=rng.randint(1, 16),
                gpus_per_node=rng.choice(per_node),
                on_demand_usd_per_gpu_hour=on_demand,
                spot_usd_per_gpu_hour=spot,
                spot_interruptions_per_hour=interruption[region],
            )
        )
    return tuple(pools)


def generate_jobs(config: WorkloadConfig, regions: int = 20) -> list[JobRequest]:
    rng = random.Random(config.seed)
    names = REGION_NAMES[:regions]
    jobs = []
    for i in range(config.jobs):
        gpus_per_worker = rng.choice([1, 1, 1, 2, 4, 8])
        workers = rng.choice([1, 1, 2, 2, 4, 8])
        hours = round(rng.lognormvariate(0.0, 1.0), 3)
        jobs.append(
            JobRequest(
                key=f"team-{i % 50}/job-{i}",
                workers=workers,
                gpus_per_worker=gpus_per_worker,
                gpu_type=rng.choice([None, None, *GPU_PRICES]),
                regions=frozenset(rng.sample(names, rng.randint(1, 3)))
                if rng.random() < config.region_limited_share
                else frozenset(),
                spot=rng.random() < config.spot_share,
                max_usd_per_gpu_hour=round(rng.uniform(1.0, 6.0), 2) if rng.random() < 0.3 else None,
                budget_usd=round(rng.uniform(5, 500), 2) if rng.random() < config.budget_share else None,
                estimated_hours=max(0.05, hours),
                priority=rng.choice([0, 0, 0, 10, 100]),
                queue=f"team-{i % 50}",
                created_at_s=float(i),
                prefer=rng.choice(
                    [Preference.CHEAPEST, Preference.CHEAPEST, Preference.FASTEST, Preference.BALANCED]
                ),
            )
        )
    return jobs
