"""The Helm chart's values as a model: `charts/transfer-operator/values.schema.json` is generated
from it (`transferctl generate`), as the CRDs are from the API models, so `helm install`,
`helm upgrade` and `helm lint --strict` refuse a misspelt key or a wrong type before anything
reaches the cluster. `config:` is the operator's own settings model, so the chart and the
operator can never disagree about them."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.models import NAME_PATTERN, ApiModel

SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
DIGEST_PATTERN = r"^(sha256:[a-f0-9]{64})?$"
K8sObject = dict[str, Any]  # a Kubernetes field passed through as it is (resources, affinity, ...)


class Image(ApiModel):
    repository: Annotated[str, Field(min_length=1)] = "ghcr.io/transfer-operator/transfer-operator"
    tag: Annotated[str, Field(description="Empty: the chart's appVersion.")] = ""
    digest: Annotated[
        str,
        Field(
            pattern=DIGEST_PATTERN,
            description="sha256:<64 hex>: pins the image by content (repository@digest; the tag is ignored).",
        ),
    ] = ""
    pull_policy: Annotated[str, Field(pattern=r"^(Always|IfNotPresent|Never)$")] = "IfNotPresent"


class Peering(ApiModel):
    enabled: bool = True
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "transfer-operator"


class KubeClient(ApiModel):
    qps: Annotated[float, Field(gt=0)] = 300
    burst: Annotated[int, Field(ge=1)] = 600


class ServiceMonitor(ApiModel):
    enabled: bool = False
    interval: Annotated[str, Field(pattern=r"^\d+(ms|s|m|h)$")] = "30s"
    labels: dict[str, str] = Field(default_factory=dict)


class Metrics(ApiModel):
    port: Annotated[int, Field(ge=1, le=65535)] = 9090
    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor)


class Dashboards(ApiModel):
    enabled: bool = True
    label: Annotated[str, Field(min_length=1)] = "grafana_dashboard"


class NetworkPolicy(ApiModel):
    enabled: bool = True
    metrics_from: list[K8sObject] = Field(default_factory=list, description="NetworkPolicy peers.")
    job_namespaces: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list)
    kuberay_namespace: Annotated[str, Field(pattern=NAME_PATTERN)] = "kuberay-system"


class ServiceAccount(ApiModel):
    create: bool = True
    name: str = ""


class ChartTests(ApiModel):
    timeout_seconds: Annotated[
        int, Field(ge=1, le=3600, description="How long `helm test` waits for the endpoints.")
    ] = 60


class ChartValues(ApiModel):
    image: Image = Field(default_factory=Image)
    replicas: Annotated[int, Field(ge=0)] = 1
    peering: Peering = Field(default_factory=Peering)
    log_level: Annotated[str, Field(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    kube_client: KubeClient = Field(default_factory=KubeClient)
    metrics: Metrics = Field(default_factory=Metrics)
    dashboards: Dashboards = Field(default_factory=Dashboards)
    config: OperatorConfig = Field(default_factory=OperatorConfig)
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy)
    resources: K8sObject = Field(default_factory=dict)
    service_account: ServiceAccount = Field(default_factory=ServiceAccount)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[K8sObject] = Field(default_factory=list)
    affinity: K8sObject = Field(default_factory=dict)
    pod_security_context: K8sObject = Field(default_factory=dict)
    security_context: K8sObject = Field(default_factory=dict)
    tests: ChartTests = Field(default_factory=ChartTests)
    global_: Annotated[
        K8sObject, Field(alias="global", description="Set by a parent chart; unused here.")
    ] = Field(default_factory=dict)


def _strip(node: Any) -> Any:
    """Drop pydantic's titles (noise in an editor's hover text) and defaults of objects."""
    if isinstance(node, dict):
        out = {k: _strip(v) for k, v in node.items() if k != "title"}
        if isinstance(out.get("default"), dict | list) and out.get("type") in ("object", "array"):
            out.pop("default")
        return out
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def values_schema() -> dict[str, Any]:
    schema = ChartValues.model_json_schema(
        by_alias=True, mode="validation", ref_template="#/definitions/{model}"
    )
    schema["definitions"] = schema.pop("$defs", {})
    return {"$schema": SCHEMA_DRAFT, **_strip(schema)}


def render_values_schema() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=True) + "\n"
