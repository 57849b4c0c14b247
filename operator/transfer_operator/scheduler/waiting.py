"""The pool named as "most free" in a waiting job's message: among the job's options within its
limits, the pool with the most free GPUs once this cycle's admissions are placed (on a tie, the
option ranked first). It is the capacity the user finds after the cycle, on every path (walk,
local search, exact), and it needs no replay of the walk: each (job, stream) pair reads its stream
sorted by free GPUs up to the first option within the job's limits, all pairs at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transfer_operator.scheduler.batch import Estimates


def free_after(initial: np.ndarray, admissions: Sequence[tuple[int, int]]) -> np.ndarray:
    """Free GPUs of every pool row once the admissions, (pool row, GPUs), are placed."""
    free = initial.copy()
    if admissions:
        taken = np.array(admissions, dtype=np.int64)
        np.subtract.at(free, taken[:, 0], taken[:, 1])
    return free


def most_free(estimates: Estimates, jobs: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Per job (each with at least one option within its limits): the pool row with the most free
    GPUs among its options."""
    pool = estimates.streams.pool
    pair, stream = estimates.pairs(jobs)
    items, begin, length = estimates.sorted_streams(stream, free)
    found, option = estimates.scan(jobs[pair], begin, length, items, 1)
    job = pair[found]
    # Per job, the best of its streams' firsts: the most free GPUs, then the option ranked first
    # (a job's options are of one signature, so option indices grow with the rank).
    order = np.lexsort((option, -free[pool[option]], job))
    job, option = job[order], option[order]
    first = np.concatenate(([True], job[1:] != job[:-1]))
    rows = np.empty(len(jobs), dtype=np.int64)
    rows[job[first]] = pool[option[first]]
    return rows
