"""The Helm chart: lint, render, and a server-side dry run of everything it renders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from transfer_operator import devcluster
from transfer_operator.api.crd import all_crds

from .conftest import OperatorProcess

CHART = Path(__file__).resolve().parents[2] / "charts" / "transfer-operator"


def helm(cluster: devcluster.Cluster, *args: str) -> str:
    result = cluster.helm(*args, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_chart_lints_and_renders_what_the_operator_needs(cluster: devcluster.Cluster) -> None:
    helm(cluster, "lint", str(CHART), "--strict")
    rendered = helm(
        cluster,
        "template",
        "transfer-operator",
        str(CHART),
        "-n",
        "transfer-system",
        "--include-crds",
        "--set",
        "replicas=2",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    )
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted({d["kind"] for d in documents})
    assert {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "ServiceMonitor",
        "CustomResourceDefinition",
        "ClusterKopfPeering",
    } <= set(kinds)
    crds = {d["metadata"]["name"]: d for d in documents if d["kind"] == "CustomResourceDefinition"}
    for generated in all_crds():
        assert crds[generated["metadata"]["name"]] == generated
    dashboards = [
        d for d in documents if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    ]
    assert sorted(next(iter(d["data"])) for d in dashboards) == ["clusters.json", "fleet.json", "job.json"]
    statefulset = next(d for d in documents if d["kind"] == "StatefulSet")
    assert statefulset["spec"]["replicas"] == 2
    assert (
        "--priority $((1000 - ${POD_NAME##*-}))"
        in statefulset["spec"]["template"]["spec"]["containers"][0]["args"][0]
    )


def test_everything_rendered_is_accepted_by_the_api_server(cluster: devcluster.Cluster) -> None:
    rendered = helm(cluster, "template", "transfer-operator", str(CHART), "-n", "default", "--include-crds")
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in documents if d["kind"] not in ("CustomResourceDefinition", "ClusterKopfPeering")]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(crds))
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(rest), check=False
    )
    assert result.returncode == 0, result.stderr


def test_pod_listing_is_namespaced_when_the_install_names_the_job_namespaces(
    cluster: devcluster.Cluster,
) -> None:
    from transfer_operator.api.config import OperatorConfig
    from transfer_operator.api.validation import validate_wire

    def rendered(*sets: str) -> list[dict]:
        args = [a for s in sets for a in ("--set", s)]
        out = helm(cluster, "template", "transfer-operator", str(CHART), "-n", "transfer-system", *args)
        return [d for d in yaml.safe_load_all(out) if d]

    def pod_rules(documents: list[dict]) -> dict[tuple[str, str | None], list[str]]:
        return {
            (d["kind"], d["metadata"].get("namespace")): rule["verbs"]
            for d in documents
            if d["kind"] in ("ClusterRole", "Role")
            for rule in d["rules"]
            if "pods" in rule["resources"]
        }

    assert pod_rules(rendered()) == {("ClusterRole", None): ["list", "watch"]}
    documents = rendered("config.jobNamespaces={team-a,team-b}")
    assert pod_rules(documents) == {
        ("Role", "team-a"): ["list", "watch"],
        ("Role", "team-b"): ["list", "watch"],
    }
    bindings = [
        d for d in documents if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-pods")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    config_map = next(d for d in documents if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {}))
    config = validate_wire(OperatorConfig, yaml.safe_load(config_map["data"]["config.yaml"]))
    assert config.job_namespaces == ["team-a", "team-b"]  # the operator lists pods there only


def test_the_values_schema_refuses_bad_values_before_the_cluster_sees_them(
    cluster: devcluster.Cluster,
) -> None:
    for values, error in (
        (("--set", "replicas=-1"), "at '/replicas': minimum"),
        (("--set", "imagee.tag=x"), "additional properties 'imagee' not allowed"),
        (("--set", "config.utilizationPolicy=fastest"), "/config/utilizationPolicy"),
        (("--set", "image.digest=latest"), "/image/digest"),
    ):
        result = cluster.helm("template", "transfer-operator", str(CHART), *values, check=False)
        assert result.returncode != 0 and error in result.stderr, (values, result.stderr)


def test_a_digest_pins_every_image_of_the_chart(cluster: devcluster.Cluster) -> None:
    digest = "sha256:" + "ab" * 32
    rendered = helm(cluster, "template", "transfer-operator", str(CHART), "--set", f"image.digest={digest}")
    images = [
        container["image"]
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] in ("StatefulSet", "Pod")
        for container in (d["spec"].get("template", {}).get("spec") or d["spec"])["containers"]
    ]
    assert len(images) == 2 and all(
        i == f"ghcr.io/transfer-operator/transfer-operator@{digest}" for i in images
    )


def test_notes_say_how_to_check_the_install(cluster: devcluster.Cluster) -> None:
    install = ("install", "transfer-operator", str(CHART), "-n", "ops", "--dry-run=client")
    notes = helm(cluster, *install).split("NOTES:", 1)[1]
    assert "helm test transfer-operator -n ops" in notes and "transferctl get" in notes, notes
    without_pods = helm(cluster, *install, "--set", "replicas=0").split("NOTES:", 1)[1]
    assert "replicas=0: the CRDs, RBAC" in without_pods, without_pods
    assert "writes one (transfer-operator-jobs) in each namespace" in notes, notes
    per_job = helm(cluster, *install, "--set", "config.networkPolicyScope=job").split("NOTES:", 1)[1]
    assert "each job gets its own" in per_job and "networkPolicy.jobNamespaces" in per_job, per_job


def test_the_helm_test_hook_checks_a_real_operators_endpoints(
    cluster: devcluster.Cluster, operator: OperatorProcess
) -> None:
    """The hook's own command, run here against the operator process (kwok nodes run no pod):
    its URLs point at the chart's Service, so only host and port are swapped."""
    hook = yaml.safe_load(
        helm(
            cluster,
            "template",
            "transfer-operator",
            str(CHART),
            "--show-only",
            "templates/tests/test-endpoints.yaml",
        )
    )
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = hook["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "transfer_operator.chartcheck"]
    local = {
        "--health": f"http://127.0.0.1:{operator.health_port}/healthz",
        "--metrics": f"http://127.0.0.1:{operator.metrics_port}/metrics",
    }
    args = [f"{key}={local[key]}" if (key := arg.split("=", 1)[0]) in local else arg for arg in command[3:]]
    assert any(a.startswith("--health=http://transfer-operator-metrics.default.svc:8080/") for a in command)
    ok = subprocess.run(
        [sys.executable, "-m", "transfer_operator.chartcheck", *args], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    wrong = [
        a.replace(str(operator.metrics_port), str(operator.health_port)) if a.startswith("--metrics") else a
        for a in args
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "transfer_operator.chartcheck", *wrong, "--timeout-seconds=1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "/metrics" in bad.stderr, bad.stderr
