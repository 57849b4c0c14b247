"""Node-level failover signals: which nodes of a GPUPool are lost, and which jobs run on them.

A node is lost when its kubelet stops reporting Ready (NotReady or Unknown), or when it carries a
taint that announces its end (a spot interruption notice, a scale-down, out-of-service). A job is
hit when a pod of its current attempt is bound to a lost node or to a node that no longer exists,
or was until it was deleted since the last cycle (a node drained and removed in between).
A node is also taken while GPU pods of an attempt that holds nothing any more still run on it
(KubeRay keeps a finished RayJob's cluster for its TTL; a deleted one's pods take a while to go).
Plain dicts in, plain values out: the operator reads the objects, this decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from transfer_operator.api.enums import Reason
from transfer_operator.api.models import TransferJob
from transfer_operator.engine.rayjob import LABEL_ATTEMPT, LABEL_JOB, label_value


@dataclass(frozen=True)
class NodeLoss:
    node: str
    reason: Reason  # NODE_LOST or SPOT_INTERRUPTED
    detail: str  # "node eu-west-a100-0 is NotReady"


def node_loss(node: Mapping[str, Any], interruption_taints: Iterable[str]) -> NodeLoss | None:
    name = node["metadata"]["name"]
    taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []}
    announced = sorted(taints & set(interruption_taints))
    if announced:
        return NodeLoss(
            name, Reason.SPOT_INTERRUPTED, f"node {name} has the interruption taint {announced[0]}"
        )
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            state = "NotReady" if condition.get("status") == "False" else "not reporting (Ready=Unknown)"
            return NodeLoss(name, Reason.NODE_LOST, f"node {name} is {state}")
    return None


def selects(node_selector: Mapping[str, str], node: Mapping[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in node_selector.items())


def lost_nodes_by_pool(
    nodes: Iterable[Mapping[str, Any]],
    pool_selectors: Mapping[str, Mapping[str, str]],
    interruption_taints: Iterable[str],
) -> dict[str, list[NodeLoss]]:
    """Pool name -> its lost nodes. A pool's nodes are those its (non-empty) selector matches."""
    taints = tuple(interruption_taints)
    losses = [(node, loss) for node in nodes if (loss := node_loss(node, taints)) is not None]
    by_pool: dict[str, list[NodeLoss]] = {}
    for pool, selector in pool_selectors.items():
        hit = [loss for node, loss in losses if selector and selects(selector, node)]
        if hit:
            by_pool[pool] = hit
    return by_pool


JobAttempt = tuple[str, str, str]  # (namespace, transfer.dev/job label, transfer.dev/attempt label)


def attempt_of(job: TransferJob) -> JobAttempt:
    """The job's current attempt, as its pods' namespace and labels name it."""
    return job.metadata.namespace or "default", label_value(job.metadata.name), str(job.status.attempts)


def losses_by_job(
    pods: Iterable[Mapping[str, Any]],
    existing_nodes: set[str],
    lost: Mapping[str, NodeLoss],
) -> dict[JobAttempt, NodeLoss]:
    """The first lost node of each job attempt whose pods are bound to one (or to a vanished node)."""
    found: dict[JobAttempt, NodeLoss] = {}
    for pod in pods:
        metadata = pod["metadata"]
        labels = metadata.get("labels") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or LABEL_JOB not in labels:
            continue
        key = (metadata.get("namespace") or "default", labels[LABEL_JOB], labels.get(LABEL_ATTEMPT, ""))
        if key in found:
            continue
        if node in lost:
            found[key] = lost[node]
        elif node not in existing_nodes:
            found[key] = NodeLoss(node, Reason.NODE_LOST, f"node {node} is gone")
    return found


def nodes_taken_by_leftovers(
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    pool_selectors: Mapping[str, Mapping[str, str]],
    holding: set[JobAttempt],
    lost: Mapping[str, NodeLoss],
) -> dict[str, int]:
    """Per pool, the nodes on which GPU pods of an attempt not in `holding` (the job finished,
    was preempted, or is gone) still run: their GPUs are not free, whatever the jobs' status says.
    A whole node counts, as a lost one does (and a lost one is not counted twice)."""
    busy = set()
    for pod in pods:
        metadata = pod["metadata"]
        labels = metadata.get("labels") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or not pod.get("gpus") or LABEL_JOB not in labels:
            continue
        if (metadata.get("namespace") or "default", labels[LABEL_JOB], labels.get(LABEL_ATTEMPT, "")) not in holding:
            busy.add(node)
    counts: dict[str, int] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        if name not in busy or name in lost:
            continue
        for pool, selector in pool_selectors.items():
            if selector and selects(selector, node):
                counts[pool] = counts.get(pool, 0) + 1
    return counts
