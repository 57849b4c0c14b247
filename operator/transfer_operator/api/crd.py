"""Generate the CustomResourceDefinitions from the pydantic models.

Pydantic emits JSON Schema with `$ref`s and `anyOf: [X, null]`; Kubernetes wants a structural
OpenAPI v3 schema with everything inlined, so this module rewrites one into the other.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from transfer_operator.api.clusters import TransferClusterSpec, TransferClusterStatus
from transfer_operator.api.enums import GROUP, VERSION
from transfer_operator.api.models import GPUPoolSpec, GPUPoolStatus, TransferJobSpec, TransferJobStatus
from transfer_operator.api.queues import TransferPriorityClassSpec, TransferQueueSpec

# Keys of JSON Schema that Kubernetes' structural schema accepts as they are.
_KEPT_KEYS = {
    "type",
    "description",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "pattern",
    "default",
    "format",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return node


def to_structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON-Schema node into a Kubernetes structural schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        # Optional[X] -> X (optionality is expressed by not being in `required`).
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types in a CRD: {node}")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        inner = to_structural(options[0], defs)
        if outer.get("default") is None:
            outer.pop("default", None)
        return {**inner, **{k: v for k, v in to_structural_keys(outer).items() if k != "type"}}
    if "allOf" in node and len(node["allOf"]) == 1:
        outer = {k: v for k, v in node.items() if k != "allOf"}
        return {**to_structural(node["allOf"][0], defs), **to_structural_keys(outer)}

    out = to_structural_keys(node)
    if "enum" in node and "type" not in out:
        out["type"] = "string"
    kind = out.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        if properties:
            out["properties"] = {name: to_structural(sub, defs) for name, sub in properties.items()}
            required = [name for name in node.get("required", [])]
            if required:
                out["required"] = required
        additional = node.get("additionalProperties")
        if isinstance(additional, dict) and additional:
            out["additionalProperties"] = to_structural(additional, defs)
        elif not properties and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = to_structural(node.get("items", {}), defs)
    return out


def to_structural_keys(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in node.items() if k in _KEPT_KEYS}
    # Defaults of objects are filled per field by the API server; keep only scalar defaults.
    if isinstance(out.get("default"), dict | list) and out.get("default"):
        out.pop("default")
    if out.get("type") == "integer" and "format" not in out:
        out["format"] = "int64"
    # JSON Schema 2020 writes exclusive bounds as numbers; OpenAPI v3.0 as booleans.
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), int | float) and not isinstance(out[exclusive], bool):
            out[bound] = out[exclusive]
            out[exclusive] = True
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return to_structural(raw, defs)


def _status_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = schema_of(model)
    # kopf keeps its own bookkeeping under status; let it.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    schema.pop("required", None)
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    scope: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    categories: list[str],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": categories,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": schema_of(spec),
                                "status": _status_schema(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def transferjob_crd() -> dict[str, Any]:
    return _crd(
        kind="TransferJob",
        plural="transferjobs",
        singular="transferjob",
        short_names=["tj"],
        scope="Namespaced",
        spec=TransferJobSpec,
        status=TransferJobStatus,
        categories=["transfer"],
        columns=[
            _column("Phase", ".status.phase"),
            _column("Strategy", ".spec.strategy.type", priority=1),
            _column("Pool", ".status.placement.pool"),
            _column("Region", ".status.placement.region"),
            _column("Cluster", ".status.placement.cluster"),
            _column("Price", ".status.placement.usdPerHour", "number", priority=1),
            _column("Cost", ".status.costSoFar", "number"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def gpupool_crd() -> dict[str, Any]:
    return _crd(
        kind="GPUPool",
        plural="gpupools",
        singular="gpupool",
        short_names=["gp"],
        scope="Cluster",
        spec=GPUPoolSpec,
        status=GPUPoolStatus,
        categories=["transfer"],
        columns=[
            _column("Region", ".spec.region"),
            _column("Cluster", ".spec.cluster"),
            _column("GPU", ".spec.gpuType"),
            _column("Nodes", ".spec.nodes", "integer"),
            _column("Free", ".status.freeGpus", "integer"),
            _column("Utilization", ".status.utilization", "number"),
            _column("OnDemand", ".spec.pricing.onDemandPerGpuHour", "number", priority=1),
            _column("Spot", ".spec.pricing.spotPerGpuHour", "number", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def transfercluster_crd() -> dict[str, Any]:
    return _crd(
        kind="TransferCluster",
        plural="transferclusters",
        singular="transfercluster",
        short_names=["tc"],
        scope="Cluster",
        spec=TransferClusterSpec,
        status=TransferClusterStatus,
        categories=["transfer"],
        columns=[
            _column("Region", ".spec.region"),
            _column("Reachable", ".status.reachable", "boolean"),
            _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            _column("Version", ".status.serverVersion", priority=1),
            _column("LastContact", ".status.lastContact", "date", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )



def transferqueue_crd() -> dict[str, Any]:
    crd = _crd(
        kind="TransferQueue",
        plural="transferqueues",
        singular="transferqueue",
        short_names=["tq"],
        scope="Cluster",
        spec=TransferQueueSpec,
        status=GPUPoolStatus,
        categories=["transfer"],
        columns=[
            _column("Cohort", ".spec.cohort"),
            _column("MaxPriority", ".spec.maxPriority", "integer"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )
    return _without_status(crd)


def transferpriorityclass_crd() -> dict[str, Any]:
    crd = _crd(
        kind="TransferPriorityClass",
        plural="transferpriorityclasses",
        singular="transferpriorityclass",
        short_names=["tpc"],
        scope="Cluster",
        spec=TransferPriorityClassSpec,
        status=GPUPoolStatus,
        categories=["transfer"],
        columns=[
            _column("Value", ".spec.value", "integer"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    )
    return _without_status(crd)


def _without_status(crd: dict[str, Any]) -> dict[str, Any]:
    """Admin-owned settings: a spec, no status written by anyone."""
    version = crd["spec"]["versions"][0]
    version.pop("subresources")
    version["schema"]["openAPIV3Schema"]["properties"].pop("status")
    return crd


def all_crds() -> list[dict[str, Any]]:
    return [transferjob_crd(), gpupool_crd(), transfercluster_crd(), transferqueue_crd(), transferpriorityclass_crd()]


def render_crds_yaml() -> str:
    header = "# Generated by `transferctl crds` from transfer_operator.api.models. Do not edit.\n"
    return header + yaml.safe_dump_all(all_crds(), sort_keys=False, width=100)
