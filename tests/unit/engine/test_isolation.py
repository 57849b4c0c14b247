"""The per-attempt Ray token Secret, the namespace's or the job's NetworkPolicy, and how the RayJob
uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transfer_operator.api.models import TransferJob
from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.engine.isolation import (
    ANNOTATION_SPEC,
    NAMESPACE_POLICY,
    TOKEN_KEY,
    Peer,
    default_peers,
    render_namespace_network_policy,
    render_network_policy,
    render_ray_token_secret,
)
from transfer_operator.engine.names import MAX_SUBDOMAIN, network_policy_name, ray_token_secret_name
from transfer_operator.engine.rayjob import PoolPin, render_rayjob

EXAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "examples"
TOKEN = "t" * 43


def a_job(name: str = "reviews-lora", namespace: str = "team-a") -> TransferJob:
    document = yaml.safe_load((EXAMPLES / "lora-sentiment.yaml").read_text())
    document["metadata"].update(name=name, namespace=namespace)
    document["spec"]["checkpoint"] = {"uri": "s3://bucket/x", "secretRef": {"name": "s3-creds"}}
    return parse_transferjob(document)


def a_rayjob(job: TransferJob) -> dict:
    pools = [parse_gpupool(d) for d in yaml.safe_load_all((EXAMPLES / "pools.yaml").read_text())]
    return render_rayjob(job, PoolPin.of(pools[0].metadata.name, pools[0].spec), attempt=1, token_auth=True)


def containers(rayjob: dict) -> dict[str, dict]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    templates = [
        cluster["headGroupSpec"]["template"],
        cluster["workerGroupSpecs"][0]["template"],
        rayjob["spec"]["submitterPodTemplate"],
    ]
    return {c["name"]: c for t in templates for c in t["spec"]["containers"]}


def test_every_ray_container_runs_with_the_jobs_token():
    job = a_job()
    rayjob = a_rayjob(job)
    secret = ray_token_secret_name(rayjob["metadata"]["name"])
    assert secret == "reviews-lora-a1-ray-token"  # one per attempt, owned by its RayJob
    assert rayjob["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token", "secretName": secret}
    for container in containers(rayjob).values():
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}
    runtime_env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    assert "RAY_AUTH_MODE" not in runtime_env  # was "disabled"


def test_the_dashboard_listens_on_the_pod_ip_and_there_is_no_client_port():
    rayjob = a_rayjob(a_job())
    head_group = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head_group["rayStartParams"]["dashboard-host"] == "$(TRANSFER_POD_IP)"
    head = head_group["template"]["spec"]["containers"][0]
    pod_ip = next(e for e in head["env"] if e["name"] == "TRANSFER_POD_IP")
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert {p["containerPort"] for p in head["ports"]} == {6379, 8265, 8080}


def test_storage_credentials_reach_only_the_pods_that_write_checkpoints():
    by_name = containers(a_rayjob(a_job()))
    assert by_name["ray-head"]["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert by_name["ray-worker"]["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert "envFrom" not in by_name["ray-job-submitter"]


def test_the_token_secret_is_in_the_jobs_namespace_and_holds_the_token():
    secret = render_ray_token_secret(a_job(), "reviews-lora-a1", TOKEN)
    assert secret["metadata"]["namespace"] == "team-a"
    assert secret["metadata"]["name"] == "reviews-lora-a1-ray-token"
    assert secret["stringData"] == {TOKEN_KEY: TOKEN} and secret["immutable"] is True
    with pytest.raises(ValueError):
        render_ray_token_secret(a_job(), "reviews-lora-a1", "short")


def test_the_network_policy_admits_only_the_jobs_pods_and_the_peers():
    job = a_job()
    policy = render_network_policy(job, default_peers("transfer-system", "kuberay-system", "monitoring"))
    spec = policy["spec"]
    own = {"transfer.dev/job": "reviews-lora", "app.kubernetes.io/managed-by": "transfer-operator"}
    assert policy["metadata"]["namespace"] == "team-a" and spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"] == {"matchLabels": own}
    same_job, operator, kuberay, prometheus = spec["ingress"]
    assert same_job == {"from": [{"podSelector": {"matchLabels": own}}]}  # this namespace only
    assert operator["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "transfer-system"
    }
    assert operator["ports"] == kuberay["ports"] == [{"protocol": "TCP", "port": 8265}]
    assert prometheus["ports"] == [{"protocol": "TCP", "port": 8080}]
    # Every pod the RayJob makes carries the labels the policy selects.
    rayjob = a_rayjob(job)
    cluster = rayjob["spec"]["rayClusterSpec"]
    for template in (
        cluster["headGroupSpec"]["template"],
        cluster["workerGroupSpecs"][0]["template"],
        rayjob["spec"]["submitterPodTemplate"],
    ):
        assert own.items() <= template["metadata"]["labels"].items()


def test_the_namespace_policy_admits_the_namespaces_job_pods_and_the_peers():
    peers = default_peers("transfer-system", "kuberay-system")
    policy = render_namespace_network_policy("team-a", peers)
    spec = policy["spec"]
    managed = {"app.kubernetes.io/managed-by": "transfer-operator"}
    assert policy["metadata"]["name"] == NAMESPACE_POLICY and policy["metadata"]["namespace"] == "team-a"
    assert policy["metadata"]["labels"]["transfer.dev/isolation"] == "namespace"  # what the index watches
    assert spec["podSelector"] == {"matchLabels": managed} and spec["policyTypes"] == ["Ingress"]
    same_namespace, operator, kuberay = spec["ingress"]
    assert same_namespace == {"from": [{"podSelector": {"matchLabels": managed}}]}  # no namespaceSelector
    assert operator == render_network_policy(a_job(), peers)["spec"]["ingress"][1]
    assert kuberay["ports"] == [{"protocol": "TCP", "port": 8265}]
    # Every pod of every job of the namespace carries the label it selects.
    rayjob = a_rayjob(a_job())
    assert managed.items() <= rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]["labels"].items()
    # The digest follows the spec: the same peers give the same one, other peers another.
    digest = policy["metadata"]["annotations"][ANNOTATION_SPEC]
    assert render_namespace_network_policy("team-b", peers)["metadata"]["annotations"][ANNOTATION_SPEC] == digest
    moved = render_namespace_network_policy("team-a", default_peers("elsewhere", "kuberay-system"))
    assert moved["metadata"]["annotations"][ANNOTATION_SPEC] != digest


def test_a_peer_without_ports_may_use_every_port():
    policy = render_network_policy(a_job(), [Peer("ops", {"app": "debug"})])
    assert "ports" not in policy["spec"]["ingress"][1]


@pytest.mark.parametrize("name", ["a", "a" * 240, "a" * 253, "x." * 100 + "y" * 53])
def test_secret_and_policy_names_are_valid_and_distinct(name):
    for named in (ray_token_secret_name, network_policy_name):
        value = named(name)
        assert len(value) <= MAX_SUBDOMAIN and value[0].isalnum() and value[-1].isalnum()
        assert named(name) != named(name[:-1] + "b")
    # A job cannot be named so that its Secret is another job's.
    long_one = ray_token_secret_name("a" * 253)
    assert ray_token_secret_name(long_one.removesuffix("-ray-token")) != long_one


def test_token_auth_is_on_by_default_and_off_names_no_secret():
    pools = [parse_gpupool(d) for d in yaml.safe_load_all((EXAMPLES / "pools.yaml").read_text())]
    pin = PoolPin.of(pools[0].metadata.name, pools[0].spec)
    assert render_rayjob(a_job(), pin, attempt=1) == a_rayjob(a_job())
    rayjob = render_rayjob(a_job(), pin, attempt=1, token_auth=False)
    assert "authOptions" not in rayjob["spec"]["rayClusterSpec"]
    assert all(not c["env"] or "RAY_AUTH_TOKEN" not in str(c["env"]) for c in containers(rayjob).values())
