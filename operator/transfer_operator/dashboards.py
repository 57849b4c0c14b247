"""Grafana dashboards as code (Grafana Foundation SDK): one for the fleet, one per job.

Every expression reads a metric that metrics.py exports (operator) or that the trainers export
through Ray (`ray_transfer_train_*`); tests check both the names and, against a real Prometheus,
that every query returns data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
PANEL_HEIGHT = 8
RATE_WINDOW = "5m"


@dataclass(frozen=True)
class PanelSpec:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = ""
    kind: str = "timeseries"  # or "stat"
    width: int = 12


FLEET_PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("Jobs by phase", (("sum by (phase) (transfer_jobs)", "{{phase}}"),), width=8),
    PanelSpec(
        "Queue depth by wait reason", (("sum by (reason) (transfer_pending_jobs)", "{{reason}}"),), width=8
    ),
    PanelSpec(
        "Admission latency",
        (
            (
                f"histogram_quantile(0.5, sum by (le) (rate(transfer_admission_latency_seconds_bucket[{RATE_WINDOW}])))",
                "p50",
            ),
            (
                f"histogram_quantile(0.99, sum by (le) (rate(transfer_admission_latency_seconds_bucket[{RATE_WINDOW}])))",
                "p99",
            ),
        ),
        unit="s",
        width=8,
    ),
    PanelSpec(
        "GPUs allocated by pool", (('sum by (pool) (transfer_pool_gpus{state="allocated"})', "{{pool}}"),)
    ),
    PanelSpec("GPUs free by pool", (('sum by (pool) (transfer_pool_gpus{state="free"})', "{{pool}}"),)),
    PanelSpec(
        "Utilization by region",
        (("avg by (region) (transfer_pool_utilization_ratio)", "{{region}}"),),
        unit="percentunit",
    ),
    PanelSpec(
        "Utilization by pool",
        (("transfer_pool_utilization_ratio", "{{pool}} ({{region}})"),),
        unit="percentunit",
    ),
    PanelSpec(
        "Spend per hour by region",
        (("sum by (region) (transfer_spend_usd_per_hour)", "{{region}}"),),
        unit="currencyUSD",
    ),
    PanelSpec(
        "Spend per hour by namespace",
        (("sum by (namespace) (transfer_spend_usd_per_hour)", "{{namespace}}"),),
        unit="currencyUSD",
    ),
    PanelSpec(
        "Scheduling attempts by result",
        ((f"sum by (result) (rate(transfer_scheduling_attempts_total[{RATE_WINDOW}]))", "{{result}}"),),
        unit="ops",
    ),
    PanelSpec(
        "Scheduling cycle p99",
        (
            (
                f"histogram_quantile(0.99, sum by (le) (rate(transfer_scheduling_cycle_duration_seconds_bucket"
                f"[{RATE_WINDOW}])))",
                "p99",
            ),
        ),
        unit="s",
    ),
    PanelSpec(
        "Preemptions and failovers",
        (
            ("sum by (reason) (increase(transfer_preemptions_total[1h]))", "preempted: {{reason}}"),
            ("sum by (reason) (increase(transfer_failovers_total[1h]))", "failover: {{reason}}"),
        ),
    ),
    PanelSpec(
        "Errors",
        (
            ("sum(increase(transfer_rayjob_create_errors_total[1h]))", "RayJob create"),
            ("sum by (stage) (increase(transfer_reconcile_errors_total[1h]))", "reconcile: {{stage}}"),
        ),
    ),
)

# `transferjob`, not `job`: Prometheus sets `job` to the scrape job's name.
JOB_SELECTOR = 'namespace="$namespace", transferjob="$transferjob"'
JOB_PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("Loss", (('ray_transfer_train_loss{transferjob="$transferjob"}', "loss"),)),
    PanelSpec(
        "Accuracy",
        (('ray_transfer_train_accuracy{transferjob="$transferjob"}', "accuracy"),),
        unit="percentunit",
    ),
    PanelSpec(
        "Throughput", (('ray_transfer_train_samples_per_second{transferjob="$transferjob"}', "samples/s"),)
    ),
    PanelSpec(
        "Cost so far",
        ((f"transfer_job_spent_dollars{{{JOB_SELECTOR}}}", "USD"),),
        unit="currencyUSD",
        kind="stat",
        width=6,
    ),
    PanelSpec("Phase", ((f"transfer_job_phase{{{JOB_SELECTOR}}} == 1", "{{phase}}"),), kind="stat", width=6),
    PanelSpec(
        "Placement history ($/h by pool)",
        ((f"transfer_job_usd_per_hour{{{JOB_SELECTOR}}}", "{{pool}} {{region}} {{price_class}}"),),
        unit="currencyUSD",
    ),
)


# A fleet with worker clusters (TransferCluster): what each cluster holds, whether it answers,
# how long a dispatch into it takes, and what its losses cost. The operator's own cluster is
# `cluster="local"` in the GPU and job series.
CLUSTER_PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("Worker clusters ready", (("transfer_cluster_ready", "{{cluster}}"),), kind="stat", width=8),
    PanelSpec(
        "GPUs allocated by cluster",
        (('sum by (cluster) (transfer_cluster_gpus{state="allocated"})', "{{cluster}}"),),
        width=8,
    ),
    PanelSpec("Jobs by cluster", (("sum by (cluster) (transfer_cluster_jobs)", "{{cluster}}"),), width=8),
    PanelSpec(
        "RayJob dispatch p99 by cluster",
        (
            (
                f"histogram_quantile(0.99, sum by (le, cluster) (rate(transfer_dispatch_seconds_bucket[{RATE_WINDOW}])))",
                "{{cluster}}",
            ),
        ),
        unit="s",
    ),
    PanelSpec(
        "Cluster losses and cleanup",
        (
            ('sum(increase(transfer_failovers_total{reason="ClusterLost"}[1h]))', "jobs moved (ClusterLost)"),
            (
                "sum by (cluster) (increase(transfer_remote_rayjobs_deleted_total[1h]))",
                "RayJobs deleted: {{cluster}}",
            ),
        ),
    ),
)


def _target(expr: str, legend: str, ref_id: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(DATASOURCE)


def _panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel | stat.Panel:
    panel = timeseries.Panel() if spec.kind == "timeseries" else stat.Panel()
    panel.id(panel_id).title(spec.title).datasource(DATASOURCE).height(PANEL_HEIGHT).span(spec.width)
    if spec.unit:
        panel.unit(spec.unit)
    for i, (expr, legend) in enumerate(spec.exprs):
        panel.with_target(_target(expr, legend, chr(ord("A") + i)))
    return panel


def _dashboard(title: str, uid: str, specs: tuple[PanelSpec, ...]) -> dashboard.Dashboard:
    # The builder places each panel on the grid after the previous one, wrapping at 24 columns.
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["transfer-operator"])
        .time("now-6h", "now")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for panel_id, spec in enumerate(specs, start=1):
        board.with_panel(_panel(spec, panel_id))
    return board


def _job_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
    )


def fleet_dashboard() -> models.Dashboard:
    return _dashboard("transfer-operator / fleet", "transfer-fleet", FLEET_PANELS).build()


def job_dashboard() -> models.Dashboard:
    board = _dashboard("transfer-operator / job", "transfer-job", JOB_PANELS)
    board.with_variable(
        _job_variable("namespace", "Namespace", "label_values(transfer_job_phase, namespace)")
    )
    board.with_variable(
        _job_variable(
            "transferjob",
            "TransferJob",
            'label_values(transfer_job_phase{namespace="$namespace"}, transferjob)',
        )
    )
    return board.build()


def clusters_dashboard() -> models.Dashboard:
    return _dashboard("transfer-operator / clusters", "transfer-clusters", CLUSTER_PANELS).build()


def render_dashboard(board: models.Dashboard) -> str:
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def rendered_queries(rendered: str) -> list[str]:
    """Every query a rendered dashboard runs: its panels' PromQL, then its query variables'
    `label_values(selector, label)` as they are written."""
    data = json.loads(rendered)
    queries = [target["expr"] for panel in data["panels"] for target in panel.get("targets", [])]
    variables = data.get("templating", {}).get("list", [])
    return queries + [v["query"] for v in variables if v["type"] == "query"]


DASHBOARDS = {"fleet.json": fleet_dashboard, "job.json": job_dashboard, "clusters.json": clusters_dashboard}
# Only a fleet with worker clusters has data for this one (tests/e2e/test_multicluster.py runs it).
MULTICLUSTER_DASHBOARDS = frozenset({"clusters.json"})


def all_expressions() -> list[str]:
    return [expr for spec in FLEET_PANELS + JOB_PANELS + CLUSTER_PANELS for expr, _ in spec.exprs]


def cluster_expressions() -> list[str]:
    return [expr for spec in CLUSTER_PANELS for expr, _ in spec.exprs]
