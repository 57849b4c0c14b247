"""Metrics as a scrape sees them, and dashboards that only read exported metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from transfer_operator import metrics
from transfer_operator.api.enums import Phase
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.api.validation import parse_transferjob
from transfer_operator.dashboards import DASHBOARDS, all_expressions, render_dashboard, rendered_queries
from transfer_operator.engine.conditions import seconds_since

METRIC_NAME = re.compile(r"\b((?:ray_)?transfer_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_sample_names() -> set[str]:
    names = set()
    for name, kind, _, _ in metrics.operator_metrics():
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def test_every_dashboard_metric_is_exported():
    exported = exported_sample_names()
    rendered = [q for build in DASHBOARDS.values() for q in rendered_queries(render_dashboard(build()))]
    # Every panel expression reaches the JSON, and the variables' queries are checked too.
    assert set(all_expressions()) < set(rendered)
    used = {m for expr in rendered for m in METRIC_NAME.findall(expr)}
    operator_side = {m for m in used if not m.startswith("ray_")}
    assert operator_side <= exported, operator_side - exported
    trainer_side = {m.removeprefix("ray_") for m in used if m.startswith("ray_")}
    # The trainers define their Ray gauges in transfer_trainers.loop (Ray prefixes `ray_`).
    import inspect

    from transfer_trainers import loop

    defined = set(re.findall(r'"(transfer_train_[a-z0-9_]+)"', inspect.getsource(loop)))
    assert trainer_side and trainer_side <= defined, trainer_side - defined


def test_per_job_series_follow_the_jobs_and_a_scrape_parses():
    job = parse_transferjob(
        {
            "kind": "TransferJob",
            "metadata": {"name": "tj", "namespace": "ns"},
            "spec": {"model": {"source": "package:x"}, "dataset": {"uri": "d"}, "strategy": {"type": "lora"}},
            "status": {
                "phase": "Running",
                "costSoFar": 1.5,
                "placement": {
                    "pool": "p",
                    "region": "eu-west",
                    "gpuType": "A100",
                    "priceClass": "spot",
                    "usdPerGpuHour": 1.0,
                    "usdPerHour": 2.0,
                    "gpus": 2,
                },
            },
        }
    )
    metrics.initialize()
    metrics.record_jobs([job])
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    spend = families["transfer_spend_usd_per_hour"].samples
    assert [(s.labels, s.value) for s in spend] == [
        ({"region": "eu-west", "namespace": "ns", "price_class": "spot"}, 2.0)
    ]
    assert families["transfer_job_spent_dollars"].samples[0].value == 1.5
    assert {s.labels["reason"] for s in families["transfer_preemptions"].samples} >= {"Preempted", "PoolLost"}
    metrics.record_jobs([])  # the job is gone: so are its series
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    assert not families["transfer_job_spent_dollars"].samples
    assert not families["transfer_spend_usd_per_hour"].samples


def test_a_finished_jobs_series_are_removed():
    def job(name: str, phase: str):
        body = transferjob_manifest(name, namespace="ns")
        return parse_transferjob({**body, "status": {"phase": phase, "costSoFar": 2.5}})

    metrics.record_jobs([job("done", "Running"), job("other", "Pending")])
    metrics.record_jobs([job("done", "Succeeded"), job("other", "Pending")])
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    for name in ("transfer_job_spent_dollars", "transfer_job_phase"):
        assert {s.labels["transferjob"] for s in families[name].samples} == {"other"}


def test_jobs_by_phase_are_counted_at_the_scrape_with_every_phase_shown():
    def job(name: str, phase: str, queue: str = "default"):
        body = transferjob_manifest(name, namespace="ns", queue=queue)
        return parse_transferjob({**body, "status": {"phase": phase}})

    metrics.record_jobs([job("a", "Running"), job("b", "Running", "team"), job("c", "Succeeded")])
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    counts = {(s.labels["phase"], s.labels["queue"]): s.value for s in families["transfer_jobs"].samples}
    assert counts[("Running", "default")] == 1 and counts[("Running", "team")] == 1
    assert counts[("Succeeded", "default")] == 1 and counts[("Pending", "default")] == 0
    assert set(counts) >= {(phase.value, "default") for phase in Phase}


def test_seconds_since():
    now = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert seconds_since("2026-01-01T00:00:00Z", now) == 60.0
    assert seconds_since(None, now) is None
