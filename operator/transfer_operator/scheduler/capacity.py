"""Free capacity during one scheduling cycle: GPUs per node in each pool, and queue quotas.

A pool is a histogram `nodes_with_free[k]` = number of nodes with exactly k free GPUs; a worker
needs all its GPUs on one node. Nodes of a pool are interchangeable, so the histogram is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from transfer_operator.api.enums import UtilizationPolicy
from transfer_operator.scheduler.types import ANY_GPU_TYPE, Allocation, PoolState, QueueQuota


@dataclass(slots=True)
class PoolCapacity:
    gpus_per_node: int
    nodes_with_free: list[int]
    free_gpus: int

    @classmethod
    def empty(cls, pool: PoolState) -> PoolCapacity:
        histogram = [0] * (pool.gpus_per_node + 1)
        histogram[pool.gpus_per_node] = pool.nodes
        return cls(pool.gpus_per_node, histogram, pool.capacity_gpus)

    def copy(self) -> PoolCapacity:
        return PoolCapacity(self.gpus_per_node, list(self.nodes_with_free), self.free_gpus)

    def workers_that_fit(self, gpus_per_worker: int) -> int:
        if gpus_per_worker == 0:
            return 1 << 30
        if gpus_per_worker > self.gpus_per_node:
            return 0
        return sum(count * (free // gpus_per_worker) for free, count in enumerate(self.nodes_with_free))

    def fits(self, workers: int, gpus_per_worker: int) -> bool:
        if gpus_per_worker == 0:
            return True
        if workers * gpus_per_worker > self.free_gpus:
            return False
        return self.workers_that_fit(gpus_per_worker) >= workers

    def take(self, workers: int, gpus_per_worker: int, policy: UtilizationPolicy) -> list[int]:
        """Place the workers one by one: best fit (binpack) or emptiest node first (spread).
        The caller checked `fits`. Returns the free GPUs of the node each worker went to, before."""
        if gpus_per_worker == 0:
            return []
        histogram = self.nodes_with_free
        levels = range(gpus_per_worker, self.gpus_per_node + 1)
        if policy is UtilizationPolicy.SPREAD:
            levels = levels[::-1]
        taken = []
        for _ in range(workers):
            for level in levels:
                if histogram[level] > 0:
                    break
            else:
                raise ValueError(f"no node has {gpus_per_worker} free GPUs; check `fits` first")
            histogram[level] -= 1
            histogram[level - gpus_per_worker] += 1
            taken.append(level)
        self.free_gpus -= workers * gpus_per_worker
        return taken

    def whole_free_nodes(self) -> int:
        return self.nodes_with_free[self.gpus_per_node]


def build_capacity(
    pools: Iterable[PoolState], allocations: Iterable[Allocation], policy: UtilizationPolicy
) -> dict[str, PoolCapacity]:
    """Capacity left after the jobs already admitted. An allocation on an unknown pool (the pool
    was deleted) holds nothing; one that no longer fits (the pool shrank) takes what is left."""
    pools = list(pools)
    capacity = {pool.name: PoolCapacity.empty(pool) for pool in pools}
    # An elastic pool's allocations fill its ready nodes first, then the nodes bought for them.
    to_buy = {pool.parent: capacity[pool.name] for pool in pools if pool.parent is not None}
    ordered = sorted(allocations, key=lambda a: (-a.gpus_per_worker, a.admitted_at_s, a.job_key))
    for allocation in ordered:
        pool = capacity.get(allocation.pool)
        if pool is None or allocation.gpus_per_worker == 0:
            continue
        placeable = min(allocation.workers, pool.workers_that_fit(allocation.gpus_per_worker))
        bought = to_buy.get(allocation.pool)
        if bought is not None and placeable < allocation.workers:
            # A gang runs on one row (elastic.py): all of it on the nodes bought if they take it;
            # else (the ready nodes changed since) what is left of it there, so no GPU goes uncounted.
            if bought.workers_that_fit(allocation.gpus_per_worker) >= allocation.workers:
                pool, placeable = bought, allocation.workers
            else:
                rest = min(allocation.workers - placeable, bought.workers_that_fit(allocation.gpus_per_worker))
                bought.take(rest, allocation.gpus_per_worker, policy)
        pool.take(placeable, allocation.gpus_per_worker, policy)
    return capacity


Key = tuple[str, str]  # (queue, quota key: an upper-case GPU type or `*`)


@dataclass(slots=True)
class CohortBook:
    """A cohort's GPUs per type: nominal GPUs of each typed quota key of its members (`typed`),
    of their `*` quotas (`any_type`), and the GPUs its members use per GPU type. A GPU type's
    use is covered by the cohort's typed quota of that type first, the rest (its overflow) by the
    `*` quotas; the cohort has room while the overflows add up to at most `any_type` (a flow:
    typed GPUs serve their type only, `*` GPUs any type, and no GPU is lent twice)."""

    typed: dict[str, int] = field(default_factory=dict)
    any_type: int = 0
    used: dict[str, int] = field(default_factory=dict)  # GPU type -> GPUs the members use
    overflow: int = 0  # Σ over types of max(0, used - typed)

    def copy(self) -> CohortBook:
        return CohortBook(self.typed, self.any_type, dict(self.used), self.overflow)

    def add(self, gpu_type: str, gpus: int) -> None:
        typed = self.typed.get(gpu_type, 0)
        before = self.used.get(gpu_type, 0)
        self.used[gpu_type] = after = before + gpus
        self.overflow += max(0, after - typed) - max(0, before - typed)

    def unused(self, gpu_type: str) -> int:
        """GPUs of this type the cohort can still lend: its typed ones nobody uses, and the `*`
        ones no overflow takes."""
        left_typed = max(0, self.typed.get(gpu_type, 0) - self.used.get(gpu_type, 0))
        return left_typed + max(0, self.any_type - self.overflow)


@dataclass(slots=True)
class QuotaLedger:
    """GPUs used per queue with a quota, per quota key, this cycle (Kueue's usage per ClusterQueue
    and flavor).

    A job on a pool of GPU type T counts against its queue's T quota, else the queue's `*`
    quota, else a T quota of 0 (QueueQuota). Past it, a queue of a cohort borrows T GPUs the
    cohort does not use: its members' unused T quotas, and their unused `*` quotas
    (CohortBook). `pool_types` maps pool rows to their GPU type; an allocation on a pool not in
    it (deleted) counts against nothing, as it holds no capacity (build_capacity)."""

    quotas: dict[str, QueueQuota]
    pool_types: dict[str, str] = field(default_factory=dict)  # pool row name -> upper-case GPU type
    used_gpus: dict[Key, int] = field(default_factory=dict)
    nominal: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> key -> nominal GPUs
    cohorts: dict[str, CohortBook] = field(default_factory=dict)

    @classmethod
    def build(
        cls, quotas: Iterable[QueueQuota], allocations: Iterable[Allocation], pools: Iterable[PoolState] = ()
    ) -> QuotaLedger:
        by_name = {quota.name: quota for quota in quotas}
        ledger = cls(by_name, {pool.name: pool.gpu_type.upper() for pool in pools})
        ledger.nominal = {name: quota.by_type() for name, quota in by_name.items()}
        for name, quota in by_name.items():
            if quota.cohort is not None:
                book = ledger.cohorts.setdefault(quota.cohort, CohortBook())
                for key, count in ledger.nominal[name].items():
                    if key == ANY_GPU_TYPE:
                        book.any_type += count
                    else:
                        book.typed[key] = book.typed.get(key, 0) + count
        for allocation in allocations:
            gpu_type = ledger.pool_types.get(allocation.pool)
            if gpu_type is not None and allocation.gpus:
                ledger.take(allocation.queue, gpu_type, allocation.gpus)
        return ledger

    def copy(self) -> QuotaLedger:
        cohorts = {name: book.copy() for name, book in self.cohorts.items()}
        return QuotaLedger(self.quotas, self.pool_types, dict(self.used_gpus), self.nominal, cohorts)

    def key_of(self, queue: str, gpu_type: str) -> str:
        """The quota key a job of `queue` on a pool of `gpu_type` counts against."""
        gpu_type = gpu_type.upper()
        nominal = self.nominal.get(queue)
        if nominal is None or gpu_type in nominal or ANY_GPU_TYPE not in nominal:
            return gpu_type
        return ANY_GPU_TYPE

    def type_of(self, pool: str) -> str | None:
        return self.pool_types.get(pool)

    def used(self, queue: str, key: str) -> int:
        return self.used_gpus.get((queue, key), 0)

    def why_not(self, queue: str, gpu_type: str, gpus: int) -> str | None:
        """None when the queue may take `gpus` more of `gpu_type`; otherwise a sentence saying why
        not, naming the GPU type."""
        quota = self.quotas.get(queue)
        if quota is None or gpus <= 0:
            return None
        key = self.key_of(queue, gpu_type)
        nominal = self.nominal[queue].get(key, 0)
        used = self.used_gpus.get((queue, key), 0)
        wanted = used + gpus
        if wanted <= nominal:
            return None
        gpu_type = gpu_type.upper()
        typed = key == gpu_type
        in_use = (
            f"{used} {gpu_type} GPUs in use + {gpus} requested"
            if typed
            else f"{used} GPUs in use + {gpus} {gpu_type} requested"
        )
        over = f"nominal quota {nominal} for {gpu_type if typed else 'any GPU type'}"
        if quota.cohort is None:
            return f"queue {queue}: {in_use} > {over}"
        borrow = wanted - max(used, nominal)
        borrowed_already = max(0, used - nominal)
        limit = quota.borrowing_limit_gpus
        if limit is not None and borrowed_already + borrow > limit:
            what = f"{gpu_type} GPUs" if typed else f"GPUs of any type (for {gpu_type})"
            return f"queue {queue}: needs to borrow {borrowed_already + borrow} {what}, over its borrowing limit {limit}"
        # The cohort's unused GPUs of the type (its unused share of the queue's own quota included).
        unused = self.cohorts[quota.cohort].unused(gpu_type)
        if gpus > unused:
            return (
                f"queue {queue}: {in_use} > {over}, and cohort {quota.cohort} has only {unused} unused "
                f"GPUs for {gpu_type} to lend"
            )
        return None

    def take(self, queue: str, gpu_type: str, gpus: int) -> None:
        self._add(queue, gpu_type, gpus)

    def give_back(self, queue: str, gpu_type: str, gpus: int) -> None:
        self._add(queue, gpu_type, -gpus)

    def _add(self, queue: str, gpu_type: str, gpus: int) -> None:
        quota = self.quotas.get(queue)
        if quota is None:  # nothing reads the use of a queue without a quota
            return
        gpu_type = gpu_type.upper()
        key = self.key_of(queue, gpu_type)
        self.used_gpus[queue, key] = self.used_gpus.get((queue, key), 0) + gpus
        if quota.cohort is not None:
            self.cohorts[quota.cohort].add(gpu_type, gpus)

    def move(self, queue: str, gpus: int, from_type: str, to_type: str) -> bool:
        """Move a job's `gpus` from a pool of `from_type` to one of `to_type` if the queue's quota
        takes them there (True); otherwise leave the ledger as it was (False)."""
        if gpus <= 0 or from_type.upper() == to_type.upper():
            return True
        self.give_back(queue, from_type, gpus)
        if self.why_not(queue, to_type, gpus) is None:
            self.take(queue, to_type, gpus)
            return True
        self.take(queue, from_type, gpus)
        return False

    def move_back(self, queue: str, gpus: int, from_type: str, to_type: str) -> None:
        """Undo a `move` from `to_type` to `from_type` (unconditional: it restores a prior state)."""
        if gpus > 0 and from_type.upper() != to_type.upper():
            self.give_back(queue, from_type, gpus)
            self.take(queue, to_type, gpus)

    def borrows(self, queue: str, gpu_type: str) -> bool:
        """Whether the queue uses more than its nominal GPUs of the key `gpu_type` counts against."""
        key = self.key_of(queue, gpu_type)
        nominal = self.nominal.get(queue, {}).get(key, 0)
        return self.used_gpus.get((queue, key), 0) > nominal
