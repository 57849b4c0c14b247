"""Free capacity during one scheduling cycle: GPUs per node in each pool, and queue quotas.

A pool is a histogram `nodes_with_free[k]` = number of nodes with exactly k free GPUs; a worker
needs all its GPUs on one node. Nodes of a pool are interchangeable, so the histogram is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from transfer_operator.api.enums import UtilizationPolicy
from transfer_operator.scheduler.types import Allocation, PoolState, QueueQuota


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


@dataclass(slots=True)
class QuotaLedger:
    quotas: dict[str, QueueQuota]
    used_gpus: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, quotas: Iterable[QueueQuota], allocations: Iterable[Allocation]) -> QuotaLedger:
        ledger = cls({quota.name: quota for quota in quotas})
        for allocation in allocations:
            ledger.used_gpus[allocation.queue] = ledger.used_gpus.get(allocation.queue, 0) + allocation.gpus
        return ledger

    def copy(self) -> QuotaLedger:
        return QuotaLedger(self.quotas, dict(self.used_gpus))

    def _cohort_free(self, cohort: str) -> int:
        """Nominal GPUs of the cohort that no member uses (borrowed GPUs count as used)."""
        members = [q for q in self.quotas.values() if q.cohort == cohort]
        return sum(q.nominal_gpus - self.used_gpus.get(q.name, 0) for q in members)

    def why_not(self, queue: str, gpus: int) -> str | None:
        """None when the queue may take `gpus` more; otherwise a sentence saying why not."""
        quota = self.quotas.get(queue)
        if quota is None:
            return None
        used = self.used_gpus.get(queue, 0)
        wanted = used + gpus
        if wanted <= quota.nominal_gpus:
            return None
        borrow = wanted - max(used, quota.nominal_gpus)
        borrowed_already = max(0, used - quota.nominal_gpus)
        if quota.cohort is None:
            return (
                f"queue {queue}: {used} GPUs in use + {gpus} requested > nominal quota {quota.nominal_gpus}"
            )
        limit = quota.borrowing_limit_gpus
        if limit is not None and borrowed_already + borrow > limit:
            return (
                f"queue {queue}: needs to borrow {borrowed_already + borrow} GPUs, "
                f"over its borrowing limit {limit}"
            )
        unused = max(0, self._cohort_free(quota.cohort))
        if gpus > unused:
            return (
                f"queue {queue}: {used} GPUs in use + {gpus} requested > nominal quota {quota.nominal_gpus}, "
                f"and cohort {quota.cohort} has only {unused} unused GPUs to lend"
            )
        return None

    def take(self, queue: str, gpus: int) -> None:
        self.used_gpus[queue] = self.used_gpus.get(queue, 0) + gpus

    def give_back(self, queue: str, gpus: int) -> None:
        self.used_gpus[queue] = self.used_gpus.get(queue, 0) - gpus
