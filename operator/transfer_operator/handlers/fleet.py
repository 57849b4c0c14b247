"""One cycle's view of the cluster, read from the watch-fed index: every GPUPool and TransferJob,
parsed, and the lost nodes. Jobs whose admission is still being written (handlers/inflight.py)
are apart: they hold GPUs, but no pass of the cycle touches them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from transfer_operator.api.models import GPUPool, TransferJob, TransferJobStatus
from transfer_operator.engine.node_health import (
    JobAttempt,
    NodeLoss,
    attempt_of,
    losses_by_job,
    lost_nodes_by_pool,
    nodes_taken_by_leftovers,
)
from transfer_operator.engine.rayjob import PoolPin
from transfer_operator.handlers.context import Ctx


@dataclass
class Fleet:
    pools: dict[str, tuple[dict[str, Any], GPUPool]]
    jobs: dict[str, tuple[dict[str, Any], TransferJob]]
    lost_nodes: dict[str, list[NodeLoss]] = field(default_factory=dict)  # pool -> its lost nodes
    job_losses: dict[JobAttempt, NodeLoss] = field(default_factory=dict)  # job attempts on lost nodes
    # pool -> its nodes still taken by GPU pods of attempts that hold nothing (engine/node_health.py)
    taken_nodes: dict[str, int] = field(default_factory=dict)
    # Elastic pools (handlers/elastic.py): whether the provisioner can buy, and status to write.
    scaling_ready: dict[str, bool] = field(default_factory=dict)
    elastic_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Jobs whose spec the checks refuse (handlers/specs.py): the body and the problems.
    invalid: list[tuple[dict[str, Any], tuple[str, ...]]] = field(default_factory=list)
    # Admitted jobs whose writes are in flight, as admitted: GPUs held, not in `jobs`.
    in_flight: dict[str, tuple[dict[str, Any], TransferJob]] = field(default_factory=dict)
    deleting: set[str] = field(default_factory=set)  # keys of jobs with a deletionTimestamp

    def all_jobs(self) -> Iterator[TransferJob]:
        """Every job, those being admitted too: what counts the GPUs held."""
        for _, job in self.jobs.values():
            yield job
        for _, job in self.in_flight.values():
            yield job

    def held_by_pool(self) -> dict[str, tuple[int, int]]:
        """Per pool, the GPUs jobs hold there and how many jobs hold them (as the jobs are now:
        the cycle's own admissions count once it made them)."""
        held: dict[str, tuple[int, int]] = {}
        for job in self.all_jobs():
            placement = job.status.placement
            if placement is not None and job.status.phase.holds_capacity:
                gpus, count = held.get(placement.pool, (0, 0))
                held[placement.pool] = (gpus + placement.gpus, count + 1)
        return held


def read_fleet(ctx: Ctx) -> Fleet:
    """The fleet from the watch-fed index: no API call."""
    in_flight = ctx.in_flight.held()  # first: an admission done in between is in the index then
    pools = {body["metadata"]["name"]: (body, pool) for body, pool in ctx.index.gpupools.values() if pool}
    view = ctx.index.transferjobs.view()
    for key in in_flight:
        view.jobs.pop(key, None)
        view.invalid.pop(key, None)
        view.deleting.discard(key)
    fleet = Fleet(pools, view.jobs, invalid=list(view.invalid.values()), in_flight=in_flight, deleting=view.deleting)
    if ctx.config.node_failover:
        holding = {*view.holding.values(), *(attempt_of(job) for _, job in in_flight.values())}
        read_node_health(ctx, fleet, holding)
    return fleet


def read_node_health(ctx: Ctx, fleet: Fleet, holding: set[JobAttempt]) -> None:
    """Which pools lost nodes, which job attempts have pods on them, and which nodes pods of
    attempts not `holding` GPUs still take, in each cluster from its own watch-fed index (pods
    of a worker cluster are keyed by their origin namespace)."""
    by_cluster: dict[str | None, dict[str, dict[str, str]]] = {}
    for name, (_, pool) in fleet.pools.items():
        by_cluster.setdefault(pool.spec.cluster or None, {})[name] = PoolPin.of(name, pool.spec).node_selector
    for cluster, selectors in by_cluster.items():
        if cluster is None:
            # Pods first: a node that joins between the two reads is then in the node list, so a
            # pod bound to it is never mistaken for one on a vanished node.
            deleted, pods, nodes = ctx.index.pods.take_deleted(), ctx.index.pods.values(), ctx.index.nodes.values()
        else:
            remote = ctx.clusters.get(cluster)
            if remote is None or remote.kube is None:
                continue
            deleted = remote.in_origin_namespaces(remote.index.pods.take_deleted())
            pods = remote.in_origin_namespaces(remote.index.pods.values())
            nodes = remote.index.nodes.values()
        lost_nodes = lost_nodes_by_pool(nodes, selectors, ctx.config.interruption_taints)
        fleet.lost_nodes.update(lost_nodes)
        lost = {loss.node: loss for losses in lost_nodes.values() for loss in losses}
        # A pod deleted since the last cycle counts as one still bound: its attempt is hit when
        # its node is lost or gone now (drained and removed in between), not when the node lives.
        existing = {n["metadata"]["name"] for n in nodes}
        fleet.job_losses.update(losses_by_job([*pods, *deleted], existing, lost))
        fleet.taken_nodes.update(nodes_taken_by_leftovers(pods, nodes, selectors, holding, lost))


def with_status(job: TransferJob, status: dict[str, Any]) -> TransferJob:
    """`job` as the rest of the cycle must see it after the merge patch `status` was written
    (phase, placement, attempts, the requeue time: a job back in the queue must not be placed
    again before it)."""
    merged = job.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key, value in status.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return job.model_copy(update={"status": TransferJobStatus.model_validate(merged)})
