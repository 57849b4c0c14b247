"""Writes in flight: admissions, and GPUPool status.

The cycle hands each admission's writes (status patch, RayJob, its token Secret) to this pool and
goes on, so a job's admission waits for its own writes, not for the slowest of its cycle's. Until
an admission's writes are done, the next cycles count the job's GPUs as taken (never as a victim)
and leave the job out of every other pass, so no two transitions of one job are ever written at
once. A write that fails leaves the index as it was: the job is still queued there and the next
cycle decides it again.

Writes happen only while this replica holds the scheduler Lease: `abandon` drops the queued ones
when it is lost, and each one checks before it starts (handlers/scheduling.py sets both).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from transfer_operator import metrics
from transfer_operator.api.models import TransferJob

log = logging.getLogger(__name__)
WRITERS = 32  # admissions written at once: hides the API server's latency within the QPS budget

Held = tuple[dict[str, Any], TransferJob]  # the body, and the job as admitted


@dataclass
class Lease:
    """Whether writes may go out: not after the Lease was lost, nor past its expiry (a renewal
    stuck in a slow API server must not let this replica write while another one leads)."""

    lost: threading.Event = field(default_factory=threading.Event)
    expires_at: float = math.inf  # time.monotonic(); inf: no Lease (the handler tests)

    def held(self) -> bool:
        return not self.lost.is_set() and time.monotonic() < self.expires_at


@dataclass
class InFlight:
    writers: int = WRITERS
    entries: dict[str, tuple[Held, Future[None]]] = field(default_factory=dict)  # by job key
    lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None

    def submit(self, key: str, held: Held, lease: Lease, write: Callable[[], None]) -> None:
        """Write one admission in the background; `held` is what the cycles see until it is done."""
        with self.lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="admit")
            self.entries[key] = (held, self._pool.submit(self._run, key, lease, write))

    def _run(self, key: str, lease: Lease, write: Callable[[], None]) -> None:
        try:
            if lease.held():
                write()
        except Exception:  # one job's failure must not stop the others
            log.exception("writing the admission of %s failed", key)
            metrics.RECONCILE_ERRORS.labels(stage="admit").inc()
        finally:
            with self.lock:
                self.entries.pop(key, None)

    def held(self) -> dict[str, Held]:
        with self.lock:
            return {key: held for key, (held, _) in self.entries.items()}

    def abandon(self) -> int:
        """Drop the admissions not started yet (their jobs stay queued in the index); the ones
        being written finish. Returns how many were dropped."""
        with self.lock:
            dropped = [key for key, (_, future) in self.entries.items() if future.cancel()]
            for key in dropped:
                del self.entries[key]
        if dropped:
            log.warning("%d admissions dropped before their writes (Lease lost, or stopping)", len(dropped))
        return len(dropped)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for every admission in flight; True when none is left."""
        with self.lock:
            pending = [future for _, future in self.entries.values()]
        wait(pending, timeout=timeout_s)
        with self.lock:
            return not self.entries

    def __len__(self) -> int:
        with self.lock:
            return len(self.entries)


@dataclass
class Latest:
    """Writes of which only the latest value counts (a GPUPool's status): one background writer,
    a newer value replaces the one of the same key not written yet, and a value equal to the
    last one written goes nowhere."""

    pending: dict[str, tuple[Any, Callable[[], None]]] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None

    def submit(self, key: str, value: Any, lease: Lease, write: Callable[[], None]) -> None:
        with self.lock:
            if self.written.get(key) == value and key not in self.pending:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latest")
            idle = not self.pending
            self.pending[key] = (value, write)
            if idle:
                self._pool.submit(self._drain, lease)

    def _drain(self, lease: Lease) -> None:
        while True:
            with self.lock:
                if not self.pending:
                    return
                key = next(iter(self.pending))
                value, write = self.pending.pop(key)
            try:
                if lease.held():
                    write()
                    with self.lock:
                        self.written[key] = value
            except Exception:  # the next cycle submits it again
                log.exception("writing %s failed", key)
                metrics.RECONCILE_ERRORS.labels(stage="write").inc()
                with self.lock:
                    self.written.pop(key, None)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until nothing is pending (tests, shut-down); True when nothing is. Every pending
        value has a `_drain` queued or running on the one writer, so once a no-op queued after
        them has run, they are written."""
        with self.lock:
            pool = self._pool
        if pool is not None:
            try:
                pool.submit(lambda: None).result(timeout=timeout_s)
            except TimeoutError:
                return False
        with self.lock:
            return not self.pending
