"""Elastic pools in the cycle (handlers/elastic.py) over a FakeKube: the generated NodePool, the
pool's Ready condition and status.nodes from Karpenter's NodeClaims and nodes, admission onto
nodes to buy, and the provisioning timeout. The e2e (tests/e2e/test_elastic.py) runs the same
code against the real Karpenter kwok provider."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from transfer_operator.engine.elastic_pool import NODEPOOL_LABEL

from .fake_kube import FakeKube
from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle, status_of

NODE_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


def elastic_pool(name: str = "eu-a100", max_nodes: int = 2, **scaling: Any) -> dict[str, Any]:
    return a_pool(
        name,
        nodes=0,
        zone="eu-west-1a",
        scaling={"maxNodes": max_nodes, "nodeClassRef": NODE_CLASS, "provisioningTimeoutSeconds": 60, **scaling},
    )


def pool_status(kube: FakeKube, name: str = "eu-a100") -> dict[str, Any]:
    return kube.gpupools[name]["status"]


def ready_condition(kube: FakeKube, name: str = "eu-a100") -> dict[str, Any]:
    return next(c for c in pool_status(kube, name)["conditions"] if c["type"] == "Ready")


def karpenter_node(kube: FakeKube, claim: str, node_pool: str = "eu-a100", ready: bool = True) -> None:
    labels = {NODEPOOL_LABEL: node_pool, "transfer.dev/pool": node_pool}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    kube.nodeclaims[claim] = {
        "metadata": {"name": claim, "labels": labels},
        "status": {"nodeName": f"node-{claim}", "conditions": conditions},
    }
    kube.nodes[f"node-{claim}"] = {
        "metadata": {"name": f"node-{claim}", "labels": labels},
        "spec": {},
        "status": {"conditions": conditions},
    }


def test_without_karpenter_the_pool_is_not_ready_and_the_job_waits():
    ctx, kube = ctx_with(elastic_pool(), a_job("a"))
    run_cycle(ctx, NOW)
    condition = ready_condition(kube)
    assert condition["status"] == "False" and condition["reason"] == "ProvisionerNotInstalled"
    assert "install Karpenter" in condition["message"]
    assert status_of(kube, "a")["phase"] == "Pending"
    assert pool_status(kube)["nodes"]["ready"] == 0


def test_a_generated_node_pool_without_a_node_class_is_invalid():
    pool = a_pool("eu-a100", nodes=0, scaling={"maxNodes": 2})
    ctx, kube = ctx_with(pool, a_job("a"), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    condition = ready_condition(kube)
    assert condition["reason"] == "InvalidScaling" and "nodeClassRef" in condition["message"]
    assert kube.nodepools == {}
    assert status_of(kube, "a")["phase"] == "Pending"


def test_a_job_that_does_not_fit_is_admitted_onto_nodes_to_buy_and_they_are_counted_when_they_come():
    ctx, kube = ctx_with(elastic_pool(), a_job("a"), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    node_pool = kube.nodepools["eu-a100"]
    template = node_pool["spec"]["template"]
    assert template["metadata"]["labels"]["transfer.dev/pool"] == "eu-a100"
    assert template["spec"]["nodeClassRef"] == NODE_CLASS
    assert {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["a100-8x"]} in template["spec"][
        "requirements"
    ]
    assert node_pool["spec"]["limits"] == {"nvidia.com/gpu": "16"}
    run_cycle(ctx, NOW + timedelta(seconds=2))  # the NodePool is seen: the pool can buy
    assert ready_condition(kube)["status"] == "True"
    status = status_of(kube, "a")
    assert status["phase"] == "Admitted" and status["placement"]["pool"] == "eu-a100"
    assert "nodes to be bought" in status["message"]
    assert pool_status(kube)["nodes"] == {"ready": 0, "provisioning": 0, "requested": 1, "bought": 0, "released": 0}
    rayjob = kube.rayjobs[("default", "a-a1")]
    worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert worker["nodeSelector"] == {"transfer.dev/pool": "eu-a100"}
    assert rayjob["spec"]["ttlSecondsAfterFinished"] == 30  # its pods go soon: the bought nodes empty

    karpenter_node(kube, "eu-a100-abc", ready=False)  # Karpenter launched a NodeClaim
    run_cycle(ctx, NOW + timedelta(seconds=4))
    assert pool_status(kube)["nodes"] == {"ready": 0, "provisioning": 1, "requested": 1, "bought": 1, "released": 0}
    karpenter_node(kube, "eu-a100-abc")  # ... and its node is Ready
    run_cycle(ctx, NOW + timedelta(seconds=6))
    status = pool_status(kube)
    assert status["nodes"] == {"ready": 1, "provisioning": 0, "requested": 0, "bought": 1, "released": 0}
    assert status["allocatedGpus"] == 8 and status["freeGpus"] == 0

    del kube.nodeclaims["eu-a100-abc"], kube.nodes["node-eu-a100-abc"]  # consolidated away
    run_cycle(ctx, NOW + timedelta(seconds=8))
    assert pool_status(kube)["nodes"]["released"] == 1 and pool_status(kube)["nodes"]["ready"] == 0


def test_the_generated_node_pool_follows_the_pool_and_is_not_rewritten_otherwise():
    ctx, kube = ctx_with(elastic_pool(), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    version = kube.nodepools["eu-a100"]["metadata"]["resourceVersion"]
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert kube.nodepools["eu-a100"]["metadata"]["resourceVersion"] == version
    kube.gpupools["eu-a100"]["spec"]["scaling"]["maxNodes"] = 3
    run_cycle(ctx, NOW + timedelta(seconds=4))
    assert kube.nodepools["eu-a100"]["spec"]["limits"] == {"nvidia.com/gpu": "24"}


def test_min_nodes_is_a_static_floor_node_pool_beside_the_one_that_buys():
    ctx, kube = ctx_with(elastic_pool(max_nodes=3, minNodes=1), a_job("a"), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    floor, buying = kube.nodepools["eu-a100-floor"], kube.nodepools["eu-a100"]
    assert floor["spec"]["replicas"] == 1 and floor["spec"]["limits"] == {"nodes": "1"}
    assert "disruption" not in floor["spec"]  # a static NodePool is never consolidated
    requirements = floor["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]} in requirements
    assert floor["spec"]["template"]["metadata"]["labels"]["transfer.dev/pool"] == "eu-a100"
    assert buying["spec"]["limits"] == {"nvidia.com/gpu": "16"}  # (3 - 1) nodes of 8 GPUs to buy
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert "eu-a100-floor keeps 1 warm" in ready_condition(kube)["message"]
    # The floor's node is the pool's: counted ready, and the job is placed on it (nothing to buy).
    karpenter_node(kube, "floor-abc", node_pool="eu-a100-floor")
    ctx2, kube2 = ctx, kube
    run_cycle(ctx2, NOW + timedelta(seconds=4))
    assert pool_status(kube2)["nodes"]["ready"] == 1
    # minNodes back to 0: the floor NodePool is emptied (Karpenter allows no static -> dynamic).
    kube.gpupools["eu-a100"]["spec"]["scaling"]["minNodes"] = 0
    run_cycle(ctx, NOW + timedelta(seconds=6))
    assert kube.nodepools["eu-a100-floor"]["spec"]["replicas"] == 0
    assert kube.nodepools["eu-a100"]["spec"]["limits"] == {"nvidia.com/gpu": "24"}


def test_the_floor_node_is_where_a_job_goes_before_any_is_bought():
    ctx, kube = ctx_with(elastic_pool(max_nodes=3, minNodes=1), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    karpenter_node(kube, "floor-abc", node_pool="eu-a100-floor")
    run_cycle(ctx, NOW + timedelta(seconds=2))
    kube.add(a_job("a"))
    run_cycle(ctx, NOW + timedelta(seconds=4))
    status = status_of(kube, "a")
    assert status["phase"] == "Admitted" and "nodes to be bought" not in status["message"]


def test_a_referenced_node_pool_that_does_not_exist_keeps_the_pool_not_ready():
    pool = a_pool("eu-a100", nodes=0, scaling={"maxNodes": 2, "nodePoolRef": {"name": "gpu"}})
    ctx, kube = ctx_with(pool, a_job("a"), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    condition = ready_condition(kube)
    assert condition["reason"] == "NodePoolNotFound" and "gpu" in condition["message"]
    assert kube.nodepools == {}  # a referenced NodePool is never created
    kube.nodepools["gpu"] = {"metadata": {"name": "gpu"}, "spec": {}}
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert ready_condition(kube)["status"] == "True"
    assert status_of(kube, "a")["phase"] == "Admitted"


def test_a_job_whose_pods_find_no_node_in_time_goes_back_to_the_queue_with_the_reason():
    ctx, kube = ctx_with(elastic_pool(), a_job("a"), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "a")["phase"] == "Admitted"
    pod = {
        "metadata": {
            "name": "a-a1-worker",
            "namespace": "default",
            "labels": {"transfer.dev/job": "a", "transfer.dev/attempt": "1", "app.kubernetes.io/managed-by": "transfer-operator"},
        },
        "spec": {},
    }
    kube.pods.append(pod)
    karpenter_node(kube, "never-ready", ready=False)
    kube.nodeclaims["never-ready"]["metadata"]["creationTimestamp"] = "2026-01-01T01:00:02Z"
    run_cycle(ctx, NOW + timedelta(seconds=30))  # within the timeout: still waiting for the node
    assert status_of(kube, "a")["phase"] == "Admitted"
    run_cycle(ctx, NOW + timedelta(seconds=70))
    status = status_of(kube, "a")
    assert status["phase"] == "Preempted", status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ProvisioningTimedOut"
    assert "found no node" in status["message"] and "back in the queue" in status["message"]
    assert ("default", "a-a1") not in kube.rayjobs
    assert "never-ready" not in kube.nodeclaims  # the node bought for it is released, not leaked


def test_a_job_whose_pods_are_bound_is_not_timed_out():
    ctx, kube = ctx_with(elastic_pool(), a_job("a"), kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    run_cycle(ctx, NOW + timedelta(seconds=2))
    karpenter_node(kube, "c1")
    kube.pods.append(
        {
            "metadata": {
                "name": "a-a1-worker",
                "namespace": "default",
                "labels": {"transfer.dev/job": "a", "transfer.dev/attempt": "1"},
            },
            "spec": {"nodeName": "node-c1"},
        }
    )
    run_cycle(ctx, NOW + timedelta(seconds=120))
    assert status_of(kube, "a")["phase"] == "Admitted"


def test_without_karpenter_the_cycle_runs_and_the_lists_are_retried_later_not_each_step():
    ctx, kube = ctx_with(a_pool(), a_job("a"))
    run_cycle(ctx, NOW)
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert ctx.index.is_synced() and not ctx.index.karpenter_served()
    assert kube.lists["nodepools"] == 1  # asked again only after informer.ABSENT_RETRY_S
    assert status_of(kube, "a")["phase"] == "Admitted"  # static pools work as before
    assert "nodes" not in pool_status(kube) and "conditions" not in pool_status(kube)


def test_the_generated_node_pool_carries_taints_and_spot_when_the_pool_sells_spot():
    pool = a_pool(
        "eu-a100",
        nodes=0,
        pricing={"onDemandPerGpuHour": 3.0, "spotPerGpuHour": 1.2},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        scaling={"maxNodes": 1, "nodeClassRef": NODE_CLASS},
    )
    ctx, kube = ctx_with(pool, kube=FakeKube(karpenter=True))
    run_cycle(ctx, NOW)
    spec = kube.nodepools["eu-a100"]["spec"]["template"]["spec"]
    assert spec["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    capacity = next(r for r in spec["requirements"] if r["key"] == "karpenter.sh/capacity-type")
    assert capacity["values"] == ["on-demand", "spot"]
