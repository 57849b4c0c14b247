"""Properties of the one cost map: the per-job view (OptionCache.estimate) and the batched view
(batch.Estimates) agree, and both keep exactly the (pool, price class) pairs that pass every
static limit as one reads them off a single pool."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_operator.api.enums import Preference, PriceClass
from transfer_operator.scheduler import JobRequest, PoolState
from transfer_operator.scheduler.batch import HEAD, Estimates
from transfer_operator.scheduler.costmap import (
    SPOT_RESTART_HOURS,
    expected_hours,
    gpu_speed,
    pool_matches,
    score,
)
from transfer_operator.scheduler.options import OptionCache

REGIONS = ["eu-west", "us-east", "ap-south"]
GPUS = ["A100", "H100", "L4"]


@st.composite
def fleets(draw) -> tuple[PoolState, ...]:
    result = []
    for i in range(draw(st.integers(1, 8))):
        usd = draw(st.sampled_from([1.0, 2.0, 3.5]) | st.floats(0.1, 9.0))
        result.append(
            PoolState(
                f"pool-{i}",
                draw(st.sampled_from(REGIONS)),
                draw(st.sampled_from(GPUS)),
                draw(st.integers(0, 5)),
                draw(st.sampled_from([1, 2, 4, 8])),
                usd,
                draw(st.none() | st.just(round(usd * 0.4, 3))),
                draw(st.sampled_from([0.0, 0.1, 0.5])),
                cordoned=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return tuple(result)


@st.composite
def job_lists(draw) -> list[JobRequest]:
    return [
        JobRequest(
            f"ns/job-{i}",
            draw(st.integers(1, 5)),
            draw(st.sampled_from([0, 1, 2, 3, 4, 8])),
            draw(st.none() | st.sampled_from([*GPUS, "a100", "T4"])),
            frozenset(draw(st.lists(st.sampled_from([*REGIONS, "mars"]), max_size=2))),
            draw(st.booleans()),
            draw(st.none() | st.floats(0.1, 9.0)),
            draw(st.none() | st.floats(0.0, 300.0)),
            draw(st.sampled_from([1.0, 0.0]) | st.floats(0.05, 10.0)),
            draw(st.integers(0, 3)),
            "default",
            float(draw(st.integers(0, 3))),
            draw(st.sampled_from(list(Preference))),
        )
        for i in range(draw(st.integers(1, 25)))
    ]


def by_hand(job: JobRequest, pool: PoolState, price_class: PriceClass) -> tuple[bool, float, float]:
    """Whether the option passes every static limit, its score and its cost, from the documented
    rules."""
    usd = pool.on_demand_usd_per_gpu_hour if price_class is PriceClass.ON_DEMAND else pool.spot_usd_per_gpu_hour
    if usd is None or (price_class is PriceClass.SPOT and not job.spot) or not pool_matches(job, pool):
        return False, math.nan, math.nan
    hours = job.estimated_hours / gpu_speed(pool.gpu_type)
    if price_class is PriceClass.SPOT:
        hours *= 1 + pool.spot_interruptions_per_hour * SPOT_RESTART_HOURS
    cost = usd * job.gang_gpus * hours
    gang = job.gpus_per_worker == 0 or pool.nodes * (pool.gpus_per_node // job.gpus_per_worker) >= job.workers
    cap = job.max_usd_per_gpu_hour is None or usd <= job.max_usd_per_gpu_hour
    budget = job.budget_usd is None or cost <= job.budget_usd * (1 + 1e-9)
    return gang and cap and budget, score(cost, hours, job.prefer), cost


@settings(max_examples=200, deadline=None)
@given(fleets(), job_lists())
def test_per_job_and_batched_views_agree(pools, jobs):
    cache = OptionCache(pools)
    estimates = Estimates(jobs, cache)
    entries = [cache.estimate(job) for job in jobs]
    for job, entry, head, regret in zip(jobs, entries, estimates.head, estimates.regret, strict=True):
        assert head == entry.keep[:HEAD].tolist(), job
        assert regret == entry.regret or (math.isnan(regret) and math.isnan(entry.regret))
        batched = estimates.score(np.full(len(head), jobs.index(job)), np.array(head, dtype=np.int64))
        assert batched.tolist() == [entry.score_at(k) for k in range(len(head))]
    order = sorted(
        range(len(jobs)), key=lambda i: (-jobs[i].priority, -entries[i].regret, jobs[i].created_at_s, jobs[i].key)
    )
    assert estimates.order().tolist() == order


@settings(max_examples=200, deadline=None)
@given(fleets(), job_lists())
def test_options_are_exactly_the_pairs_within_the_limits(pools, jobs):
    cache = OptionCache(pools)
    for job in jobs:
        entry = cache.estimate(job)
        kept = {(o.placement.pool, o.placement.price_class): o for o in entry.options}
        for pool in pools:
            for price_class in PriceClass:
                passes, want, cost = by_hand(job, pool, price_class)
                option = kept.get((pool.name, price_class))
                if option is None:
                    # The budget's slack is relative 1e-12 in the map and 1e-9 here: only a cost
                    # within that of the budget may differ.
                    assert not passes or math.isclose(cost, job.budget_usd or 0.0, rel_tol=1e-9), (job, pool)
                else:
                    assert passes, (job, pool, price_class)
                    assert option.score == pytest.approx(want, rel=1e-9, abs=1e-12)
        scores = [o.score for o in entry.options]
        assert all(a <= b + 1e-9 * max(1.0, abs(b)) for a, b in zip(scores, scores[1:], strict=False)) or (
            job.prefer is Preference.BALANCED
        )


@settings(max_examples=100, deadline=None)
@given(fleets(), job_lists())
def test_the_scalar_expected_hours_are_the_rankings(pools, jobs):
    """`expected_hours` (what a running gang's budget horizon reads) is the hours every option of
    the map states, spot rework included."""
    cache = OptionCache(pools)
    by_name = {pool.name: pool for pool in pools}
    for job in jobs:
        for option in cache.estimate(job).options:
            placement = option.placement
            pool = by_name[placement.pool]
            hours = expected_hours(
                job.estimated_hours,
                pool.gpu_type,
                placement.price_class is PriceClass.SPOT,
                pool.spot_interruptions_per_hour,
            )
            assert placement.expected_hours == pytest.approx(hours + pool.startup_hours, rel=1e-12)
