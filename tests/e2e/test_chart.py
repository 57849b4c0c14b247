"""The Helm chart: lint, render, and a server-side dry run of everything it renders."""

from __future__ import annotations

from pathlib import Path

import yaml

from transfer_operator import devcluster
from transfer_operator.api.crd import all_crds

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
    assert sorted(next(iter(d["data"])) for d in dashboards) == ["fleet.json", "job.json"]
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
