from __future__ import annotations

from pathlib import Path

import yaml

from transfer_operator.api.crd import all_crds, render_crds_yaml

ROOT = Path(__file__).resolve().parents[3]


def test_committed_crds_match_the_models():
    generated = render_crds_yaml()
    for path in ("manifests/crds/transfer.dev.yaml", "charts/transfer-operator/crds/transfer.dev.yaml"):
        assert (ROOT / path).read_text() == generated, f"{path} drifted: run `transferctl generate`"


def _walk(node, path="$"):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_schemas_are_structural():
    for crd in all_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            if not isinstance(node, dict):
                continue
            assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), path
            if "exclusiveMinimum" in node:
                assert node["exclusiveMinimum"] is True and "minimum" in node, path
            if node.get("type") == "object" and path.endswith("properties") is False:
                assert (
                    "properties" in node
                    or "additionalProperties" in node
                    or node.get("x-kubernetes-preserve-unknown-fields")
                    or path.endswith(".metadata")
                ), path


def test_printer_columns_and_validations():
    transferjob, gpupool, transfercluster, queue, priority_class = all_crds()
    assert queue["spec"]["scope"] == priority_class["spec"]["scope"] == "Cluster"
    assert "status" not in queue["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    columns = {c["name"] for c in transferjob["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Phase", "Pool", "Region", "Cluster", "Cost", "Age"} <= columns
    pool_columns = {c["name"] for c in gpupool["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Region", "Cluster", "GPU", "Free"} <= pool_columns
    spec = transferjob["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["model", "dataset", "strategy"]
    assert spec["properties"]["strategy"]["x-kubernetes-validations"]
    assert spec["properties"]["strategy"]["properties"]["type"]["enum"][0] == "featureExtraction"
    assert spec["properties"]["trainer"]["properties"]["config"]["x-kubernetes-preserve-unknown-fields"]
    assert gpupool["spec"]["scope"] == "Cluster"
    assert transfercluster["spec"]["scope"] == "Cluster"
    cluster_spec = transfercluster["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert cluster_spec["required"] == ["kubeconfigSecretRef"]
    assert cluster_spec["properties"]["clusterLostAfterSeconds"]["default"] == 60
    assert transferjob["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert [d["kind"] for d in yaml.safe_load_all(render_crds_yaml())] == ["CustomResourceDefinition"] * 5
