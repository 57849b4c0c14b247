"""Every dashboard query against a real Prometheus that scrapes the operator (running jobs on
the real control plane) and a local Ray running a real trainer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.dashboards import all_expressions, cluster_expressions
from transfer_operator.snapshot import render_fleet_snapshot

from .conftest import EXAMPLES, OperatorProcess, wait_for
from .prometheus import Prometheus, assert_every_query_returns_data, free_port, shipped_queries

# The job dashboard joins operator series (this job holds GPUs in the cluster) and trainer series
# from Ray; the local Ray trains the small digits example under the same name, to keep it quick.
JOB_NAME = "reviews-lora"

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys, yaml, ray
    from pathlib import Path
    from transfer_trainers.local import run_local
    ray.init(address="local", num_cpus=2, include_dashboard=False, _metrics_export_port=int(sys.argv[1]),
             logging_level="ERROR")
    spec = yaml.safe_load(Path(sys.argv[2]).read_text())["spec"]
    spec["training"]["epochs"] = 40  # long enough for several scrapes
    run_local(spec, sys.argv[3], runs_dir=Path(sys.argv[4]), progress=False, resume=False)
    """
)


@pytest.fixture(scope="module")
def ray_training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real trainer run on a local Ray whose metrics endpoint Prometheus scrapes."""
    workdir = tmp_path_factory.mktemp("ray-train")
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            TRAIN_SCRIPT,
            str(port),
            str(EXAMPLES / "digits-feature-extraction.yaml"),
            JOB_NAME,
            str(workdir),
        ],
        env=env,
        stdout=(workdir / "train.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield port
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def prometheus(
    operator: OperatorProcess, ray_training: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    server = Prometheus.start(
        tmp_path_factory.mktemp("prometheus"),
        {"transfer-operator": f"127.0.0.1:{operator.metrics_port}", "ray": f"127.0.0.1:{ray_training}"},
    )
    yield server
    server.stop()


def test_operator_serves_its_metrics(operator: OperatorProcess) -> None:
    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
            ) as response:
                text = response.read().decode()
        except OSError:
            return None
        return text if "transfer_pool_gpus" in text else None

    text = wait_for(scrape, 60, "the operator's /metrics")
    for name in (
        "transfer_jobs",
        "transfer_admission_latency_seconds_bucket",
        "transfer_scheduling_attempts_total",
        "transfer_pool_utilization_ratio",
        "transfer_spend_usd_per_hour",
    ):
        assert name in text


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+), (?P<label>\w+)\)$")


def _promql(query: str, namespace: str) -> str:
    """A dashboard query as Prometheus runs it: variables filled in, and a variable's
    `label_values(selector, label)` as the series that carry the label."""
    query = query.replace("$namespace", namespace).replace("$transferjob", JOB_NAME)
    match = LABEL_VALUES.match(query)
    return f"group by ({match['label']}) ({match['selector']})" if match else query


def test_every_dashboard_query_returns_data(
    cluster: devcluster.Cluster, prometheus: Prometheus, namespace: str
) -> None:
    # The examples, in this test's own namespace: the `default` ones belong to test_operator.py.
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "TransferJob":
                document["metadata"]["namespace"] = namespace
                cluster.kubectl("apply", "-f", "-", input=json.dumps(document))
    wait_for(
        lambda: all(prometheus.targets_up().get(j) for j in ("transfer-operator", "ray")) or None,
        120,
        "both scrape targets up",
    )
    shipped = shipped_queries()
    assert len(shipped) >= len(all_expressions()) - len(cluster_expressions()), (
        "the chart ships fewer queries"
    )
    assert_every_query_returns_data(prometheus, {_promql(query, namespace) for query in shipped})


def test_fleet_snapshot_png(prometheus: Prometheus, tmp_path: Path) -> None:
    # TRANSFER_SNAPSHOT_OUT=docs/images/fleet-dashboard.png refreshes the picture in the docs.
    out = Path(os.environ.get("TRANSFER_SNAPSHOT_OUT") or tmp_path / "fleet.png")
    out = render_fleet_snapshot(prometheus.url, out, window_s=300)
    assert out.stat().st_size > 20_000
    assert re.match(rb"\x89PNG", out.read_bytes()[:4])
