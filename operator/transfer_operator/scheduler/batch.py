"""The pending jobs of one cycle, estimated together with NumPy instead of one job at a time.

The options of a signature are ranked once (options.py). Here every signature's ranking is cut
into *streams*: one per region, plus one for jobs that accept any region. Each (job, stream) pair
is scanned in chunks, all pairs at once, for the options that pass the job's own limits (gang
size, price cap, budget). Per job that gives its best few options in ranking order, which is all
the walk needs up front; waiting.py runs the same scans over streams sorted by free GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from transfer_operator.scheduler.costmap import (
    JobColumns,
    OptionColumns,
    Ranking,
    gang_table,
    option_scores,
    within_budget,
    within_limits,
    within_price_cap,
)
from transfer_operator.scheduler.options import OptionCache
from transfer_operator.scheduler.types import JobRequest

HEAD = 2  # options per job found up front: its best (where it waits for) and the next (regret)
FIRST_CHUNK = 4  # options per pair in the first round of a scan; each later round is 4x wider
MAX_GANG_TABLES = 32  # distinct GPUs per worker up to which the gang check uses a table per size


@dataclass(frozen=True)
class Streams:
    """The options of every signature of the cycle, concatenated, and cut into streams."""

    rankings: list[Ranking]
    offset: np.ndarray  # per signature: index of its first option
    pool: np.ndarray  # option columns, signature after signature
    usd: np.ndarray
    cost_per_gpu_hour: np.ndarray
    hours_per_hour: np.ndarray
    nodes: np.ndarray
    gpus_per_node: np.ndarray
    items: np.ndarray  # option indices, stream after stream, each stream in ranking order
    start: np.ndarray  # per stream
    length: np.ndarray
    any_region: int  # stream of signature s and region code r: s * (any_region + 1) + r

    @cached_property
    def columns(self) -> OptionColumns:
        return OptionColumns(self.usd, self.cost_per_gpu_hour, self.hours_per_hour, self.nodes, self.gpus_per_node)

    @classmethod
    def of(cls, rankings: list[Ranking], regions: int) -> Streams:
        sizes = np.array([len(r) for r in rankings], dtype=np.int64)
        offset = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        signature = np.repeat(np.arange(len(rankings)), sizes)
        region = _concat([r.region_code for r in rankings])
        # Each option is in the stream of its region and in the stream of "any region".
        stream_of_item = np.concatenate(
            (signature * (regions + 1) + region, signature * (regions + 1) + regions)
        )
        option = np.tile(np.arange(len(signature)), 2)
        order = np.argsort(stream_of_item, kind="stable")
        length = np.bincount(stream_of_item, minlength=len(rankings) * (regions + 1))
        return cls(
            rankings=rankings,
            offset=offset,
            pool=_concat([r.pool for r in rankings]),
            usd=_concat([r.usd for r in rankings], float),
            cost_per_gpu_hour=_concat([r.cost_per_gpu_hour for r in rankings], float),
            hours_per_hour=_concat([r.hours_per_hour for r in rankings], float),
            nodes=_concat([r.nodes for r in rankings]),
            gpus_per_node=_concat([r.gpus_per_node for r in rankings]),
            items=option[order],
            start=np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64),
            length=length,
            any_region=regions,
        )


@dataclass(frozen=True)
class _StreamBounds:
    """Per stream, bounds of its options for the cost map's limits: the least $/GPU-hour (price
    cap), the least cost per GPU-hour (budget) and, per size of the gang table, the most workers
    an empty pool takes (gang). A job whose limit fails at the bound fails at every option of the
    stream, so the scans skip the pair instead of reading the whole stream to find nothing."""

    least_usd: np.ndarray
    least_cost: np.ndarray
    most_workers: np.ndarray | None  # (size, stream); None without a gang table

    @classmethod
    def of(cls, streams: Streams, gang: tuple[np.ndarray, np.ndarray] | None) -> _StreamBounds:
        count = len(streams.length)
        used = np.flatnonzero(streams.length > 0)
        least_usd = np.full(count, np.inf)
        least_cost = np.full(count, np.inf)
        most_workers = None if gang is None else np.zeros((len(gang[1]), count), dtype=np.int64)
        if len(used):
            starts, items = streams.start[used], streams.items
            # Streams are contiguous in `items`, in stream order: each used one ends where the next begins.
            least_usd[used] = np.minimum.reduceat(streams.usd[items], starts)
            least_cost[used] = np.minimum.reduceat(streams.cost_per_gpu_hour[items], starts)
            if gang is not None and most_workers is not None:
                for size, workers in enumerate(gang[1]):
                    most_workers[size, used] = np.maximum.reduceat(workers[items], starts)
        return cls(least_usd, least_cost, most_workers)

    def possible(
        self,
        jobs: JobColumns,
        rows: np.ndarray,
        stream: np.ndarray,
        gang: tuple[np.ndarray, np.ndarray] | None,
    ) -> np.ndarray:
        """Whether job rows[k] may find an option within its limits in stream[k]."""
        ok = ~jobs.has_cap[rows] | within_price_cap(self.least_usd[stream], jobs.cap[rows])
        # Cost grows with cost per GPU-hour only for non-negative GPU-hours: otherwise no bound.
        gang_hours = jobs.gang_hours[rows]
        ok &= (
            ~jobs.has_budget[rows]
            | ~(gang_hours >= 0)
            | within_budget(self.least_cost[stream], gang_hours, jobs.budget_limit[rows])
        )
        if gang is not None and self.most_workers is not None:
            ok &= self.most_workers[gang[0][rows], stream] >= jobs.workers[rows]
        return ok


def _concat(arrays: list[np.ndarray], dtype: type = np.int64) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)


def ranges(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """start[0] .. start[0] + length[0] - 1, then the same for every other range."""
    total = int(length.sum())
    shift = np.repeat(start - np.concatenate(([0], np.cumsum(length)[:-1])), length)
    return np.arange(total, dtype=np.int64) + shift


class Estimates:
    """Every pending job's best options and regret, from one batch of NumPy work."""

    def __init__(self, jobs: Sequence[JobRequest], cache: OptionCache):
        self.columns = columns = JobColumns.of(jobs)
        regions = cache.table.regions
        self.streams = Streams.of([cache.ranking(s) for s in columns.signatures], len(regions))
        # Per region set: the fleet's codes of its regions, or the "any region" column for set 0.
        codes = [tuple(sorted(regions[r] for r in s if r in regions)) for s in columns.region_sets]
        codes[0] = (len(regions),)
        self.region_codes = codes
        self.code_matrix = np.full((len(codes), max(len(c) for c in codes)), -1, dtype=np.int64)
        for index, found in enumerate(codes):
            self.code_matrix[index, : len(found)] = found
        # Per distinct GPUs per worker: the workers each option's pool takes when empty.
        many_sizes = len(np.unique(columns.gpus_per_worker)) > MAX_GANG_TABLES
        self._gang_table = None if many_sizes else gang_table(columns.gpus_per_worker, self.streams.columns)
        self._bounds = _StreamBounds.of(self.streams, self._gang_table)
        head = self._heads()
        self.counts = counts = (head >= 0).sum(axis=1)  # options found per job, at most HEAD
        every = np.arange(len(jobs))
        regret = self.score(every, head[:, 1]) - self.score(every, head[:, 0])
        self.regret = np.where(counts >= 2, regret, np.inf)
        self.best = head[:, 0]  # ranking position of each job's best option, -1 where it has none
        self._head = head

    @cached_property
    def head(self) -> list[list[int]]:
        """Per job: ranking positions of its first options, at most HEAD."""
        return [row[:count] for row, count in zip(self._head.tolist(), self.counts.tolist(), strict=True)]

    def order(self) -> np.ndarray:
        """Job indices by priority, then regret (both descending), then age, then key."""
        columns = self.columns
        keys = [j.key for j in columns.jobs]
        key_rank = np.empty(len(keys), dtype=np.int64)
        key_rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
        return np.lexsort((key_rank, columns.created_at, -self.regret, -columns.priority))

    def score(self, jobs: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Scores of the jobs' options at these ranking positions (-1: NaN)."""
        if not len(self.streams.pool):
            return np.full(len(jobs), np.nan)
        option = np.where(positions >= 0, self.streams.offset[self.columns.signature[jobs]] + positions, 0)
        return option_scores(self.columns, jobs, self.streams.columns, option)

    def sorted_streams(
        self, streams: np.ndarray, free: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """These streams, each sorted by the free GPUs of its pools (descending), then by rank.
        Returns the sorted option indices and, per entry of `streams`, its begin and length in them."""
        used, local = np.unique(streams, return_inverse=True)
        length = self.streams.length[used]
        items = self.streams.items[ranges(self.streams.start[used], length)]
        stream = np.repeat(np.arange(len(used)), length)
        items = items[np.lexsort((items, -free[self.streams.pool[items]], stream))]
        begin = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
        return items, begin[local], length[local]

    def pairs(self, jobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (job, stream) pairs of these jobs whose stream may hold an option within the job's
        limits (`_StreamBounds`: a pair left out has none), in the order of `jobs`: (index into
        `jobs`, stream)."""
        columns, streams = self.columns, self.streams
        job_codes = self.code_matrix[columns.region_set[jobs]]
        row, column = np.nonzero(job_codes >= 0)
        stream = columns.signature[jobs[row]] * (streams.any_region + 1) + job_codes[row, column]
        present = streams.length[stream] > 0
        row, stream = row[present], stream[present]
        possible = self._bounds.possible(columns, jobs[row], stream, self._gang_table)
        return row[possible], stream[possible]

    def _heads(self) -> np.ndarray:
        """Per job: ranking positions of its first HEAD options, -1 where it has fewer."""
        columns, streams = self.columns, self.streams
        count = len(columns.jobs)
        pair_job, pair_stream = self.pairs(np.arange(count))  # row == job here
        pair, option = self.scan(
            pair_job, streams.start[pair_stream], streams.length[pair_stream], streams.items, HEAD
        )
        job = pair_job[pair]
        position = option - streams.offset[columns.signature[job]]
        order = np.argsort(job * (len(streams.pool) + 1) + position)  # by job, then position
        job, position = job[order], position[order]
        rank = np.arange(len(job)) - np.searchsorted(job, job)
        head = np.full((count, HEAD), -1, dtype=np.int64)
        first = rank < HEAD
        head[job[first], rank[first]] = position[first]
        return head

    def scan(
        self,
        pair_job: np.ndarray,
        begin: np.ndarray,
        length: np.ndarray,
        items: np.ndarray,
        want: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """For every pair, the first `want` options of its stream, items[begin : begin + length],
        that pass the job's limits. Returns (pair index, option index), by pair, in stream order."""
        found_pair: list[np.ndarray] = []
        found_option: list[np.ndarray] = []
        count = np.zeros(len(pair_job), dtype=np.int64)
        active = np.flatnonzero(length > 0)
        done_columns, width = 0, FIRST_CHUNK
        while len(active):
            columns = done_columns + np.arange(width)
            active_length = length[active]
            valid = columns < active_length[:, None]
            option = items[begin[active][:, None] + np.minimum(columns, active_length[:, None] - 1)]
            passes = valid & self.passes(pair_job[active], option)
            seen = np.cumsum(passes, axis=1) - passes  # passing options before this one
            take = passes & (seen < (want - count[active])[:, None])
            row, column = np.nonzero(take)
            found_pair.append(active[row])
            found_option.append(option[row, column])
            count[active] += take.sum(axis=1)
            done_columns += width
            active = active[(count[active] < want) & (done_columns < active_length)]
            width *= 4
        if not found_pair:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pair = np.concatenate(found_pair)
        option = np.concatenate(found_option)
        order = np.argsort(pair, kind="stable")
        return pair[order], option[order]

    def passes(self, jobs: np.ndarray, option: np.ndarray) -> np.ndarray:
        """The cost map's limits of each job (a row) against options (its columns)."""
        return within_limits(self.columns, jobs, self.streams.columns, option, self._gang_table)
