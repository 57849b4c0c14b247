"""The dev cluster's simulated Ray job: its kwok stages and the pure parts of the Ray stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.devcluster import raysim
from transfer_operator.devcluster.stages import (
    EXIT_CODE_ANNOTATION,
    FINISH_AT_ANNOTATION,
    SUBMITTER_CONTAINER,
    render_stages,
)
from transfer_operator.engine.rayjob import PoolPin, render_rayjob

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

KWOK_FAST = """
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.status.phase', operator: In, values: [Pending]}
  next: {statusTemplate: "phase: Running"}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-complete}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.ownerReferences.[].kind', operator: In, values: [Job]}
  next: {statusTemplate: "phase: Succeeded"}
"""


def example_rayjob(estimated_hours: float) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / "lora-sentiment.yaml").read_text())
    document["spec"]["resources"]["estimatedHours"] = estimated_hours
    pool = parse_gpupool(next(yaml.safe_load_all((EXAMPLES / "pools.yaml").read_text())))
    job = parse_transferjob(document)
    return render_rayjob(job, PoolPin.of(pool.metadata.name, pool.spec), attempt=1)


def test_submitters_leave_kwoks_pod_complete_stage_for_their_own() -> None:
    stages = {s["metadata"]["name"]: s for s in yaml.safe_load_all(render_stages(KWOK_FAST))}
    assert set(stages) == {"pod-ready", "pod-complete", "ray-submitter-succeed", "ray-submitter-fail"}
    complete = stages["pod-complete"]["spec"]["selector"]["matchExpressions"]
    assert {
        "key": ".spec.containers.[].name",
        "operator": "NotIn",
        "values": [SUBMITTER_CONTAINER],
    } in complete
    for name, code, phase in (
        ("ray-submitter-succeed", "0", "Succeeded"),
        ("ray-submitter-fail", "1", "Failed"),
    ):
        spec = stages[name]["spec"]
        expressions = {e["key"]: e for e in spec["selector"]["matchExpressions"]}
        assert expressions[f'.metadata.annotations["{EXIT_CODE_ANNOTATION}"]']["values"] == [code]
        assert FINISH_AT_ANNOTATION in spec["delay"]["durationFrom"]["jq"]["expression"]
        assert f"phase: {phase}" in spec["next"]["statusTemplate"]
        assert f"exitCode: {code}" in spec["next"]["statusTemplate"]


def test_the_run_lasts_the_estimate_sped_up_and_clamped() -> None:
    assert raysim.estimated_hours(example_rayjob(0.5)) == 0.5
    assert raysim.run_seconds(example_rayjob(0.5), {}, speedup=60) == 30
    assert raysim.run_seconds(example_rayjob(0.01), {}, speedup=60) == raysim.MIN_RUN_S
    assert raysim.run_seconds(example_rayjob(100), {}, speedup=60) == raysim.MAX_RUN_S
    assert raysim.run_seconds(example_rayjob(0.5), {raysim.RUN_SECONDS_ANNOTATION: "3"}, speedup=60) == 3
    foreign = {"metadata": {"name": "x"}, "spec": {"entrypoint": "python my.py"}}
    assert raysim.run_seconds(foreign, {}, speedup=60) == raysim.DEFAULT_RUN_S


def test_plan_succeeds_after_the_run_or_fails_when_told() -> None:
    rayjob = example_rayjob(0.5)
    assert raysim.plan(START, rayjob, {}, retried=False, speedup=60) == raysim.Stamp(
        START + timedelta(seconds=30), 0
    )
    failing = {raysim.FAIL_AFTER_ANNOTATION: "5"}
    assert raysim.plan(START, rayjob, failing, retried=False, speedup=60) == raysim.Stamp(
        START + timedelta(seconds=5), 1
    )
    late = {raysim.FAIL_AFTER_ANNOTATION: "500"}  # after the run ends: it succeeds first
    assert raysim.plan(START, rayjob, late, retried=False, speedup=60).exit_code == 0
    assert raysim.plan(START, rayjob, {}, retried=True, speedup=60) == raysim.Stamp(START, 1)
    stamp = raysim.plan(START, rayjob, {}, retried=False, speedup=60).annotations()
    assert stamp == {FINISH_AT_ANNOTATION: "2026-01-01T12:00:30Z", EXIT_CODE_ANNOTATION: "0"}


def pod(phase: str, started: datetime | None, finished: datetime | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if started:
        status["startTime"] = started.isoformat().replace("+00:00", "Z")
    if finished:
        terminated = {"exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": finished.isoformat()}
        status["containerStatuses"] = [{"name": SUBMITTER_CONTAINER, "state": {"terminated": terminated}}]
    return {"metadata": {"name": "p"}, "status": status}


def test_job_api_answers_from_the_submitter_pods() -> None:
    rayjob = {**example_rayjob(0.5), "status": {"jobId": "reviews-lora-a1-abcde"}}
    assert raysim.job_info(rayjob, []) is None
    assert raysim.job_info(rayjob, [pod("Pending", None)]) is None
    running = raysim.job_info(rayjob, [pod("Running", START)])
    assert running is not None
    assert (running["status"], running["job_id"], running["end_time"]) == (
        "RUNNING",
        "reviews-lora-a1-abcde",
        0,
    )
    assert running["start_time"] == int(START.timestamp() * 1000)
    end = START + timedelta(seconds=30)
    done = raysim.job_info(rayjob, [pod("Succeeded", START, end)])
    assert (
        done is not None and done["status"] == "SUCCEEDED" and done["end_time"] == int(end.timestamp() * 1000)
    )
    retried = [
        pod("Failed", START, START + timedelta(seconds=5)),
        pod("Running", START + timedelta(seconds=15)),
    ]
    failed = raysim.job_info(rayjob, retried)
    assert failed is not None and failed["status"] == "FAILED"
    json.dumps(failed)  # what the HTTP handler sends


def test_the_namespace_comes_from_the_head_service_host() -> None:
    assert raysim.namespace_of_host("lora-a1-x-head-svc.team-a.svc.cluster.local:8265") == "team-a"
    assert raysim.namespace_of_host("127.0.0.1:8265") is None
