"""The rolling reconcile pass: each job once per turn, a turn per reconcile interval, a share of
the fleet per cycle."""

from __future__ import annotations

import random

from transfer_operator.handlers.rolling import RollingPass


def test_every_job_comes_once_per_turn_and_a_cycle_takes_its_share():
    rng = random.Random(3)
    keys = [f"team-{i % 7}/job-{i}" for i in range(2000)]
    rolling, now_s, interval_s = RollingPass(), 1000.0, 10.0
    first = rolling.advance(now_s, interval_s)
    assert first.whole and rolling.turns == 1  # the first cycle takes every job
    visits = dict.fromkeys(keys, 0)
    shares = []
    while rolling.turns < 11:  # ten more whole turns, cycles 0.05 to 2 s apart
        now_s += rng.uniform(0.05, 2.0)
        arc = rolling.advance(now_s, interval_s)
        taken = [key for key in keys if key in arc]
        shares.append((len(taken) / len(keys), arc.length))
        for key in taken:
            visits[key] += 1
    # Ten turns and a part of the eleventh: each job 10 or 11 times, never twice in one turn.
    assert set(visits.values()) <= {10, 11}
    # A cycle takes about the share of the fleet its gap is of the interval (the hash spreads the keys).
    assert all(abs(share - length) < 0.05 for share, length in shares)


def test_a_cycle_after_a_whole_interval_or_more_takes_every_job():
    rolling = RollingPass()
    rolling.advance(0.0, 10.0)
    arc = rolling.advance(25.0, 10.0)
    assert arc.whole and all(f"ns/{i}" in arc for i in range(100)) and rolling.turns == 2
    assert not any(f"ns/{i}" in rolling.advance(25.0, 10.0) for i in range(100))  # no time passed: nobody
