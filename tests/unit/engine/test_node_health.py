"""Node-level failover signals, on plain Node and Pod objects."""

from __future__ import annotations

from typing import Any

from transfer_operator.api.config import DEFAULT_INTERRUPTION_TAINTS
from transfer_operator.api.enums import Reason
from transfer_operator.engine.node_health import losses_by_job, lost_nodes_by_pool, node_loss


def a_node(
    name: str, ready: str | None = "True", taints: tuple[str, ...] = (), pool: str = "eu"
) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {
        "metadata": {"name": name, "labels": {"transfer.dev/pool": pool}},
        "spec": {"taints": [{"key": key, "effect": "NoSchedule"} for key in taints]},
        "status": {"conditions": conditions},
    }


def a_pod(job: str, attempt: int, node: str | None, namespace: str = "team") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "labels": {"transfer.dev/job": job, "transfer.dev/attempt": str(attempt)},
        },
        "spec": {"nodeName": node} if node else {},
    }


def test_ready_node_without_taints_is_healthy():
    assert node_loss(a_node("n"), DEFAULT_INTERRUPTION_TAINTS) is None
    assert node_loss(a_node("n", ready=None), DEFAULT_INTERRUPTION_TAINTS) is None  # still registering
    assert node_loss(a_node("n", taints=("nvidia.com/gpu",)), DEFAULT_INTERRUPTION_TAINTS) is None


def test_not_ready_and_unknown_are_lost():
    assert node_loss(a_node("n", ready="False"), DEFAULT_INTERRUPTION_TAINTS).detail == "node n is NotReady"
    unknown = node_loss(a_node("n", ready="Unknown"), DEFAULT_INTERRUPTION_TAINTS)
    assert unknown.reason is Reason.NODE_LOST and "Unknown" in unknown.detail


def test_an_interruption_taint_wins_over_readiness():
    loss = node_loss(
        a_node("n", taints=("aws-node-termination-handler/spot-itn",)), DEFAULT_INTERRUPTION_TAINTS
    )
    assert loss.reason is Reason.SPOT_INTERRUPTED
    assert "aws-node-termination-handler/spot-itn" in loss.detail
    assert node_loss(a_node("n", taints=("custom/bye",)), ["custom/bye"]).reason is Reason.SPOT_INTERRUPTED


def test_lost_nodes_are_grouped_by_the_pools_selecting_them():
    nodes = [a_node("eu-0", ready="False"), a_node("eu-1"), a_node("us-0", ready="False", pool="us")]
    by_pool = lost_nodes_by_pool(
        nodes, {"eu": {"transfer.dev/pool": "eu"}, "us": {"transfer.dev/pool": "us"}, "any": {}}, ()
    )
    assert {pool: [loss.node for loss in losses] for pool, losses in by_pool.items()} == {
        "eu": ["eu-0"],
        "us": ["us-0"],
    }  # an empty selector claims no nodes


def test_jobs_on_lost_or_vanished_nodes_are_found_per_attempt():
    lost = {"eu-0": node_loss(a_node("eu-0", ready="False"), ())}
    pods = [
        a_pod("a", 1, "eu-0"),
        a_pod("a", 1, "eu-1"),
        a_pod("b", 2, "gone-7"),
        a_pod("c", 1, "eu-1"),
        a_pod("d", 1, None),  # not bound yet
    ]
    found = losses_by_job(pods, existing_nodes={"eu-0", "eu-1"}, lost=lost)
    assert set(found) == {("team", "a", "1"), ("team", "b", "2")}
    assert found[("team", "a", "1")].detail == "node eu-0 is NotReady"
    assert found[("team", "b", "2")].detail == "node gone-7 is gone"
