"""The bad-input corpus against the real API server and operator: schema and CEL errors are
refused by the API server with a message naming the field; semantic ones get InvalidSpec; the
operator keeps running through all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from transfer_operator import devcluster

from .conftest import EXAMPLES, OperatorProcess, get_json, wait_for

CORPUS = sorted((Path(__file__).resolve().parents[1] / "corpus" / "bad").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_api_server_refuses_schema_and_cel_errors(
    cluster: devcluster.Cluster, chart: None, namespace: str
) -> None:
    refused = 0
    for path in CORPUS:
        document = load(path)
        annotations = document["metadata"]["annotations"]
        if annotations["transfer.dev/expect"] in ("semantic", "operator"):
            continue  # the API server takes these; the operator answers them
        args = ["apply", "-f", "-"] + (["-n", namespace] if document["kind"] == "TransferJob" else [])
        result = cluster.kubectl(*args, input=json.dumps(document), check=False)
        assert result.returncode != 0, f"{path.name} was accepted"
        assert annotations["transfer.dev/says"] in result.stderr, (path.name, result.stderr)
        refused += 1
    assert refused >= 50


def test_operator_answers_semantic_errors_and_survives(
    cluster: devcluster.Cluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    semantic = [
        load(p)
        for p in CORPUS
        if load(p)["metadata"]["annotations"]["transfer.dev/expect"] in ("semantic", "operator")
    ]
    for document in semantic:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
    for document in semantic:
        name, says = document["metadata"]["name"], document["metadata"]["annotations"]["transfer.dev/says"]

        def condition() -> dict[str, Any] | None:
            status = get_json(cluster, "transferjob", name, "-n", namespace).get("status") or {}
            return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

        ready = wait_for(condition, 60, f"{name}'s Ready condition")
        assert ready["status"] == "False"
        assert ready["reason"] in ("InvalidSpec", "BudgetTooLow") and says in ready["message"], ready
    assert operator.process is not None and operator.process.poll() is None, "the operator must not crash"
