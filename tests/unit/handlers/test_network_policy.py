"""Which NetworkPolicy an admission writes: its namespace's once (the default scope), or its own."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.enums import NetworkPolicyScope
from transfer_operator.engine.isolation import NAMESPACE_POLICY

from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle


def in_namespace(job: dict, namespace: str) -> dict:
    return {**job, "metadata": {**job["metadata"], "namespace": namespace}}


def test_a_namespace_gets_one_policy_however_many_jobs_it_admits():
    jobs = [a_job(f"j{i}", gpus=1) for i in range(3)] + [in_namespace(a_job("other", gpus=1), "team-b")]
    ctx, kube = ctx_with(a_pool(nodes=2), *jobs)
    run_cycle(ctx, NOW)
    assert len(kube.rayjobs) == 4
    assert sorted(kube.networkpolicies) == [("default", NAMESPACE_POLICY), ("team-b", NAMESPACE_POLICY)]
    assert kube.applies == 2  # the write-through kept the second and third job from writing it again
    assert not [key for key in kube.owned if key[0] == "NetworkPolicy"]
    kube.add(a_job("later", gpus=1))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert ("default", "later-a1") in kube.rayjobs and kube.applies == 2


def test_a_deleted_or_outdated_policy_is_written_again_at_the_next_admission():
    ctx, kube = ctx_with(a_pool(nodes=2), a_job("a", gpus=1))
    run_cycle(ctx, NOW)
    del kube.networkpolicies[("default", NAMESPACE_POLICY)]  # an admin deleted it; the watch says so
    kube.add(a_job("b", gpus=1))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert ("default", NAMESPACE_POLICY) in kube.networkpolicies and kube.applies == 2
    ctx.lease_namespace = "moved"  # the operator reinstalled elsewhere: the peers changed
    kube.add(a_job("c", gpus=1))
    run_cycle(ctx, NOW + timedelta(seconds=4))
    assert kube.applies == 3
    peers = [
        source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in kube.networkpolicies[("default", NAMESPACE_POLICY)]["spec"]["ingress"]
        for source in rule["from"]
        if "namespaceSelector" in source
    ]
    assert peers == ["moved", "kuberay-system"]


def test_the_job_scope_writes_a_policy_per_job_owned_by_it():
    config = OperatorConfig(network_policy_scope=NetworkPolicyScope.JOB)
    ctx, kube = ctx_with(a_pool(nodes=2), a_job("a", gpus=1), a_job("b", gpus=1), config=config)
    run_cycle(ctx, NOW)
    policies = {key: obj["metadata"]["ownerReferences"][0]["uid"] for key, obj in kube.owned.items()}
    assert {k: v for k, v in policies.items() if k[0] == "NetworkPolicy"} == {
        ("NetworkPolicy", "default", "a-ray"): "uid-a",
        ("NetworkPolicy", "default", "b-ray"): "uid-b",
    }
    assert not kube.networkpolicies and kube.applies == 0


@pytest.mark.parametrize("scope", list(NetworkPolicyScope))
def test_a_namespace_being_deleted_gets_no_children_and_no_error(scope, caplog):
    """The API server refuses every create in a namespace being deleted (403, NamespaceTerminating);
    its jobs go with it, so an admission there creates nothing, reports nothing, logs no error."""
    config = OperatorConfig(network_policy_scope=scope)
    ctx, kube = ctx_with(a_pool(nodes=2), in_namespace(a_job("doomed", gpus=1), "going"), config=config)
    kube.terminating.add("going")
    with caplog.at_level(logging.INFO):
        run_cycle(ctx, NOW)
    assert not kube.rayjobs and not kube.networkpolicies and not kube.owned
    assert not [e for e in kube.events if e[2] == "RayJobCreateFailed"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "no RayJob going/doomed-a1: the namespace is being deleted" in caplog.text
