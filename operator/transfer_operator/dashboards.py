"""Grafana dashboards as code (grafanalib): one for the fleet, one per job.

Every expression reads a metric that metrics.py exports (operator) or that the trainers export
through Ray (`ray_transfer_train_*`); tests check both the names and, against a real Prometheus,
that every query returns data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    GridPos,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

DATASOURCE = "${datasource}"
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


def _panel(spec: PanelSpec, x: int, y: int) -> TimeSeries | Stat:
    targets = [
        Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i))
        for i, (expr, legend) in enumerate(spec.exprs)
    ]
    position = GridPos(h=8, w=spec.width, x=x, y=y)
    if spec.kind == "stat":
        return Stat(
            title=spec.title, dataSource=DATASOURCE, targets=targets, gridPos=position, format=spec.unit
        )
    return TimeSeries(
        title=spec.title, dataSource=DATASOURCE, targets=targets, gridPos=position, unit=spec.unit
    )


def _layout(specs: tuple[PanelSpec, ...]) -> list[TimeSeries | Stat]:
    panels, x, y = [], 0, 0
    for spec in specs:
        if x + spec.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(spec, x, y))
        x += spec.width
    return panels


def _datasource_variable() -> Template:
    return Template(name="datasource", query="prometheus", type="datasource", label="Data source", default="")


def fleet_dashboard() -> Dashboard:
    return Dashboard(
        title="transfer-operator / fleet",
        uid="transfer-fleet",
        tags=["transfer-operator"],
        time=Time("now-6h", "now"),
        templating=Templating(list=[_datasource_variable()]),
        panels=_layout(FLEET_PANELS),
    ).auto_panel_ids()


def job_dashboard() -> Dashboard:
    variables = [
        _datasource_variable(),
        Template(
            name="namespace",
            label="Namespace",
            dataSource=DATASOURCE,
            query="label_values(transfer_job_phase, namespace)",
            default="",
        ),
        Template(
            name="transferjob",
            label="TransferJob",
            dataSource=DATASOURCE,
            query='label_values(transfer_job_phase{namespace="$namespace"}, transferjob)',
            default="",
        ),
    ]
    return Dashboard(
        title="transfer-operator / job",
        uid="transfer-job",
        tags=["transfer-operator"],
        time=Time("now-6h", "now"),
        templating=Templating(list=variables),
        panels=_layout(JOB_PANELS),
    ).auto_panel_ids()


def render_dashboard(dashboard: Dashboard) -> str:
    return json.dumps(dashboard.to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


DASHBOARDS = {"fleet.json": fleet_dashboard, "job.json": job_dashboard}


def all_expressions() -> list[str]:
    return [expr for spec in FLEET_PANELS + JOB_PANELS for expr, _ in spec.exprs]
