"""The batched estimate, the fit tracker and the wait messages against the one-job-at-a-time
definitions they replace (JobOptions, PoolCapacity), on random fleets."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest

from transfer_operator.api.enums import Preference, PriceClass, Reason, UtilizationPolicy
from transfer_operator.scheduler import Action, Decision, Fit, JobRequest, Placement, PoolState
from transfer_operator.scheduler.batch import HEAD, Estimates
from transfer_operator.scheduler.capacity import PoolCapacity
from transfer_operator.scheduler.fitting import FitTracker
from transfer_operator.scheduler.options import OptionCache
from transfer_operator.scheduler.types import new_decision, new_placement
from transfer_operator.scheduler.waiting import free_after, most_free

REGIONS = ["eu-west", "us-east", "ap-south", "eu-north"]
GPUS = ["A100", "H100", "L4"]


def a_fleet(rng: random.Random) -> tuple[PoolState, ...]:
    pools = []
    for i in range(rng.randint(5, 40)):
        usd = rng.choice([1.0, 2.0, round(rng.uniform(0.3, 8.0), 3)])  # ties on purpose
        pools.append(
            PoolState(
                f"pool-{i:02d}",
                rng.choice(REGIONS),
                rng.choice(GPUS),
                rng.randint(0, 6),
                rng.choice([1, 2, 4, 8]),
                usd,
                rng.choice([None, round(usd * 0.4, 3)]),
                rng.choice([0.0, 0.1]),
                cordoned=rng.random() < 0.1,
            )
        )
    return tuple(pools)


def some_jobs(rng: random.Random, count: int) -> list[JobRequest]:
    return [
        JobRequest(
            f"ns/job-{i}",
            rng.randint(1, 4),
            rng.choice([0, 1, 2, 4, 8]),
            rng.choice([None, "a100", *GPUS]),
            frozenset(rng.sample([*REGIONS, "mars"], rng.randint(0, 3))),
            rng.random() < 0.5,
            rng.choice([None, round(rng.uniform(0.2, 9.0), 2)]),
            rng.choice([None, round(rng.uniform(1.0, 300.0), 2)]),
            rng.choice([1.0, round(rng.uniform(0.05, 10.0), 3)]),
            rng.randint(0, 3),
            "default",
            float(rng.randint(0, 5)),
            rng.choice(list(Preference)),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_heads_regret_and_order_match_job_options(seed):
    rng = random.Random(seed)
    pools, jobs = a_fleet(rng), some_jobs(rng, rng.randint(1, 80))
    cache = OptionCache(pools)
    estimates = Estimates(jobs, cache)
    entries = [cache.estimate(job) for job in jobs]
    for job, entry, head, regret in zip(jobs, entries, estimates.head, estimates.regret, strict=True):
        assert head == entry.keep[:HEAD].tolist(), job
        assert regret == entry.regret or (math.isnan(regret) and math.isnan(entry.regret))
    by_order = sorted(
        range(len(jobs)),
        key=lambda i: (-jobs[i].priority, -entries[i].regret, jobs[i].created_at_s, jobs[i].key),
    )
    assert estimates.order().tolist() == by_order


@pytest.mark.parametrize("seed", range(30))
def test_pairs_left_out_hold_no_option_within_the_limits(seed):
    rng = random.Random(seed)
    pools, jobs = a_fleet(rng), some_jobs(rng, rng.randint(1, 80))
    estimates = Estimates(jobs, OptionCache(pools))
    streams, columns = estimates.streams, estimates.columns
    every = np.arange(len(jobs))
    kept = set(zip(*(a.tolist() for a in estimates.pairs(every)), strict=True))
    codes = estimates.code_matrix[columns.region_set]
    left_out = 0
    for job, region in zip(*np.nonzero(codes >= 0), strict=True):
        stream = int(columns.signature[job] * (streams.any_region + 1) + codes[job, region])
        if (int(job), stream) in kept or not streams.length[stream]:
            continue
        left_out += 1
        items = streams.items[streams.start[stream] : streams.start[stream] + streams.length[stream]]
        assert not estimates.passes(np.array([job]), items[None, :]).any(), (jobs[job], stream)
    if seed == 0:
        assert left_out > 0  # the random jobs' caps and budgets do rule out whole streams


def test_a_price_cap_below_a_region_rules_its_stream_out():
    pools = (
        PoolState("cheap", "eu-west", "A100", 2, 8, 1.0, None, 0.0),
        PoolState("dear", "us-east", "A100", 2, 8, 5.0, None, 0.0),
    )
    job = JobRequest("ns/j", 1, 1, "A100", frozenset({"eu-west", "us-east"}), estimated_hours=2.0)
    _, stream = Estimates([job], OptionCache(pools)).pairs(np.array([0]))
    assert len(stream) == 2
    capped = Estimates([dataclasses.replace(job, max_usd_per_gpu_hour=2.0)], OptionCache(pools))
    _, stream = capped.pairs(np.array([0]))
    assert len(stream) == 1 and capped.head == [[0]]


@pytest.mark.parametrize("seed", range(20))
def test_fit_tracker_follows_the_capacity(seed):
    rng = random.Random(seed)
    pools = a_fleet(rng)
    capacities = [PoolCapacity.empty(p) for p in pools]
    shapes = sorted({(rng.randint(1, 4), rng.choice([1, 2, 4, 8])) for _ in range(6)})
    cache = OptionCache(pools)
    tracker = FitTracker(cache.table, capacities, shapes)
    for _ in range(60):
        row = rng.randrange(len(pools))
        workers, gpus = rng.randint(1, 3), rng.choice([1, 2, 4, 8])
        if capacities[row].fits(workers, gpus):
            levels = capacities[row].take(workers, gpus, rng.choice(list(UtilizationPolicy)))
            tracker.taken(row, levels, gpus)
    for index, (workers, gpus) in enumerate(shapes):
        assert tracker.workers_that_fit[gpus] == [c.workers_that_fit(gpus) for c in capacities]
        for gpu in [None, *GPUS]:
            for region in [None, *REGIONS]:
                want = sum(
                    1
                    for p, c in zip(pools, capacities, strict=True)
                    if not p.cordoned
                    and (gpu is None or p.gpu_type == gpu)
                    and (region is None or p.region == region)
                    and c.fits(workers, gpus)
                )
                type_code = tracker.any_type if gpu is None else tracker.type_code.get(gpu)
                if type_code is None:
                    continue
                region_code = tracker.regions if region is None else cache.table.regions.get(region)
                if region_code is None:
                    continue
                assert tracker.alive[index][tracker.group(type_code, region_code)] == want


@pytest.mark.parametrize("seed", range(40))
def test_most_free_is_the_most_free_option_after_the_admissions(seed):
    rng = random.Random(seed)
    pools, jobs = a_fleet(rng), some_jobs(rng, 60)
    cache = OptionCache(pools)
    estimates = Estimates(jobs, cache)
    initial = np.array([p.capacity_gpus for p in pools], dtype=np.int64)
    admissions, free = [], initial.copy()
    for _ in range(rng.randint(0, 30)):
        row = rng.randrange(len(pools))
        gpus = rng.randint(0, int(free[row]))
        admissions.append((row, gpus))
        free[row] -= gpus
    assert free_after(initial, admissions).tolist() == free.tolist()
    candidates = [i for i, head in enumerate(estimates.head) if head]
    chosen = sorted(rng.sample(candidates, min(len(candidates), 25)))
    found = most_free(estimates, np.array(chosen, dtype=np.int64), free)
    for index, row in zip(chosen, found.tolist(), strict=True):
        entry = cache.estimate(jobs[index])
        rows = entry.ranking.pool[entry.keep]  # ranked: argmax takes the first of equals
        assert row == int(rows[np.argmax(free[rows])])


def test_fast_constructors_build_equal_values():
    args = ("p", "eu-west", "A100", PriceClass.SPOT, 1.5, 8, 2.0, 24.0, "eu-west-1a")
    assert new_placement(*args) == Placement(*args)
    placement = Placement(*args)
    made = new_decision("ns/j", Action.ADMIT, Fit.FITS, Reason.ADMITTED, "m", placement)
    assert made == Decision("ns/j", Action.ADMIT, Fit.FITS, Reason.ADMITTED, "m", placement, ())
    assert hash(new_placement(*args)) == hash(placement)
