"""The pool named as "most free" in a waiting job's message: the pool with the most free GPUs
among the job's options (on a tie, the option ranked first), as capacity was when the job was
considered. The walk admits jobs one by one, so each waiting job saw the capacity after some
number of admissions, its *epoch*; here all waiting jobs are answered after the walk.

Capacity only shrinks during a cycle. Against the final capacity (after the last admission),
sorted once: for a job of epoch e, its first option whose pool took nothing after e beats every
later such option, so besides that one only its options on pools that took capacity after e are
compared. That suits jobs with few admissions after them (most of them; every job after the last
admission has none). The others replay the admissions and compare all their options.
"""

from __future__ import annotations

import numpy as np

from transfer_operator.scheduler.batch import Estimates, ranges

RECENT_ADMISSIONS = 500  # at most this many admissions after a job: compare against the final capacity


class FreeHistory:
    """Free GPUs of every pool after any number of the cycle's admissions."""

    def __init__(self, initial: np.ndarray, admissions: list[tuple[int, int]]):
        self.initial = initial
        self.admissions = admissions
        self.count = len(admissions)
        self.rows = np.array([row for row, _ in admissions], dtype=np.int64)
        gpus = np.array([gpus for _, gpus in admissions], dtype=np.int64)
        key = self.rows * (self.count + 1) + np.arange(self.count)  # by pool, then by time
        order = np.argsort(key)
        self.key = key[order]
        self.taken = np.concatenate(([0], np.cumsum(gpus[order])))

    def at(self, epochs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Free GPUs of pools `rows` after the first `epochs` admissions (element-wise)."""
        base = rows * (self.count + 1)
        taken = (
            self.taken[np.searchsorted(self.key, base + epochs)] - self.taken[np.searchsorted(self.key, base)]
        )
        return self.initial[rows] - taken

    def final(self) -> np.ndarray:
        rows = np.arange(len(self.initial))
        return self.at(np.full(len(rows), self.count), rows)

    def last_admission(self) -> np.ndarray:
        """Per pool: the epoch of its last admission, -1 if none."""
        last = np.full(len(self.initial), -1, dtype=np.int64)
        np.maximum.at(last, self.rows, np.arange(self.count))
        return last


def most_free(estimates: Estimates, jobs: np.ndarray, epochs: np.ndarray, history: FreeHistory) -> np.ndarray:
    """Per job (jobs[k] of epoch epochs[k], ascending): the pool row with the most free GPUs
    among its options."""
    rows = np.empty(len(jobs), dtype=np.int64)
    recent = history.count - epochs <= RECENT_ADMISSIONS
    if recent.any():
        rows[recent] = _against_final(estimates, jobs[recent], epochs[recent], history)
    if not recent.all():
        rows[~recent] = _replayed(estimates, jobs[~recent], epochs[~recent], history)
    return rows


def _against_final(
    estimates: Estimates, jobs: np.ndarray, epochs: np.ndarray, history: FreeHistory
) -> np.ndarray:
    pool = estimates.streams.pool
    last = history.last_admission()
    pair, stream = estimates.pairs(jobs)
    pair_epoch = epochs[pair]
    items, begin, length = estimates.sorted_streams(stream, history.final())

    def untouched(pairs: np.ndarray, options: np.ndarray) -> np.ndarray:
        return last[pool[options]] < pair_epoch[pairs][:, None]

    found, option = estimates.scan(jobs[pair], begin, length, items, 1, untouched)
    first = untouched(found, option[:, None])[:, 0]  # the scan also returns touched options before it
    candidate_job, candidate = pair[found[first]], option[first]
    # Pools that took capacity after epoch e: a prefix of the pools by last admission, latest first.
    by_last = np.argsort(-last, kind="stable")
    touched = np.searchsorted(-last[by_last], -epochs, side="right")
    k = np.repeat(np.arange(len(jobs)), touched)
    on = by_last[ranges(np.zeros(len(jobs), dtype=np.int64), touched)]
    found, option = estimates.options_on(jobs[k], on)
    candidate_job = np.concatenate((candidate_job, k[found]))
    candidate = np.concatenate((candidate, option))
    free = history.at(epochs[candidate_job], pool[candidate])
    return _best(len(jobs), candidate_job, candidate, free, pool)


def _replayed(estimates: Estimates, jobs: np.ndarray, epochs: np.ndarray, history: FreeHistory) -> np.ndarray:
    streams = estimates.streams
    pair, stream = estimates.pairs(jobs)
    length = streams.length[stream]
    option = streams.items[ranges(streams.start[stream], length)]
    job = np.repeat(pair, length)  # index into `jobs`
    passes = estimates.passes(jobs[job], option[:, None])[:, 0]
    job, option = job[passes], option[passes]  # each job's options are contiguous
    pool = streams.pool[option]
    starts = np.searchsorted(job, np.arange(len(jobs) + 1))
    rows = np.empty(len(jobs), dtype=np.int64)
    free = history.initial.copy()
    replayed = 0
    boundaries = np.flatnonzero(np.diff(epochs)) + 1
    for first, last in zip(
        np.concatenate(([0], boundaries)).tolist(), np.append(boundaries, len(jobs)).tolist(), strict=True
    ):
        for row, gpus in history.admissions[replayed : epochs[first]]:
            free[row] -= gpus
        replayed = int(epochs[first])
        begin, end = starts[first], starts[last]
        segment = free[pool[begin:end]]
        segment_starts = starts[first:last] - begin
        best = np.repeat(np.maximum.reduceat(segment, segment_starts), np.diff(starts[first : last + 1]))
        # On a tie the option ranked first wins: option indices grow with the rank.
        ranked = np.where(segment == best, option[begin:end], len(streams.pool))
        rows[first:last] = streams.pool[np.minimum.reduceat(ranked, segment_starts)]
    return rows


def _best(count: int, job: np.ndarray, option: np.ndarray, free: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Per job 0 .. count - 1: the pool of its candidate with the most free GPUs, then ranked first
    (option indices grow with the rank). Every job has a candidate."""
    order = np.lexsort((option, -free, job))
    job, option = job[order], option[order]
    first = np.concatenate(([True], job[1:] != job[:-1]))
    rows = np.empty(count, dtype=np.int64)
    rows[job[first]] = pool[option[first]]
    return rows
