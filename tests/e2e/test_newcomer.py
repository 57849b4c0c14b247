"""The README's cluster section, run as a newcomer would: `dev-cluster up --with-operator`, then
`kubectl apply -f manifests/examples/`, and every placed example goes Admitted -> Running ->
Succeeded with cost accrued, through the real KubeRay driving a simulated Ray job
(devcluster/raysim.py); an injected failure ends Failed. `down` stops the operator too. On the
way, `transferctl get|describe|cost|suspend|resume|cancel|logs` as the kubeconfig's user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from transfer_operator import devcluster
from transfer_operator.devcluster.processes import is_alive
from transfer_operator.devcluster.raysim import FAIL_AFTER_ANNOTATION

from .conftest import EXAMPLES, get_json, wait_for


def transferctl(*args: str, kubeconfig: Path | None = None, timeout_s: float = 600) -> str:
    env = {**os.environ, **({"KUBECONFIG": str(kubeconfig)} if kubeconfig else {})}
    result = subprocess.run(
        [sys.executable, "-m", "transfer_operator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )
    assert result.returncode == 0, f"transferctl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def phases(cluster: devcluster.Cluster) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j.get("status") or {} for j in get_json(cluster, "transferjobs")["items"]}


def record_phases(cluster: devcluster.Cluster, seen: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Append each job's phase to its history when it changed; returns the statuses."""
    statuses = phases(cluster)
    for name, status in statuses.items():
        history = seen.setdefault(name, [])
        phase = status.get("phase") or "Pending"
        if not history or history[-1] != phase:
            history.append(phase)
    return statuses


def watch_phases(cluster: devcluster.Cluster, seen: dict[str, list[str]], stop: threading.Event) -> None:
    """Every phase each job shows, in order (polled twice a second)."""
    while not stop.is_set():
        record_phases(cluster, seen)
        stop.wait(0.5)


def test_examples_run_to_succeeded_on_a_fresh_dev_cluster(tmp_path: Path) -> None:
    state_dir = tmp_path / "dev"
    transferctl(
        "dev-cluster", "up", "--pools", str(EXAMPLES / "pools.yaml"), "--no-s3", "--with-operator",
        "--state-dir", str(state_dir),
    )  # fmt: skip
    cluster = devcluster.load(state_dir)
    assert cluster is not None
    try:
        operator = cluster.processes["transfer-operator"]
        assert is_alive(operator)
        cluster.kubectl("apply", "-f", str(EXAMPLES))  # the CRDs are there: no manual step
        failing = yaml.safe_load((EXAMPLES / "digits-feature-extraction.yaml").read_text())
        failing["metadata"].update(name="digits-fails", annotations={FAIL_AFTER_ANNOTATION: "3"})
        cluster.kubectl("apply", "-f", "-", input=json.dumps(failing))

        seen: dict[str, list[str]] = {}
        watching = threading.Event()
        watcher = threading.Thread(target=watch_phases, args=(cluster, seen, watching), daemon=True)
        watcher.start()
        kubeconfig = cluster.kubeconfig
        ctl = lambda *args: transferctl(*args, kubeconfig=kubeconfig)  # noqa: E731
        wait_for(
            lambda: phases(cluster)["reviews-topk"].get("phase") == "Running", 120, "reviews-topk Running"
        )
        listing = ctl("get", "-o", "wide")
        topk_line = next(line for line in listing.splitlines() if line.startswith("reviews-topk "))
        assert "Running" in topk_line and "us-east-h100" in topk_line and "8x H100" in topk_line, listing
        described = ctl("describe", "reviews-topk")
        for part in (
            "Placement: us-east-h100",
            "(current)",
            "Conditions",
            "CreatedRayJobSubmitter",
            "budget",
        ):
            assert part in described, described
        assert "BudgetTooLow" in ctl("describe", "reviews-distill")
        ctl("suspend", "reviews-topk")
        wait_for(
            lambda: phases(cluster)["reviews-topk"].get("phase") == "Suspended", 60, "reviews-topk Suspended"
        )
        ctl("resume", "reviews-topk")
        wait_for(
            lambda: (
                (s := phases(cluster)["reviews-topk"]).get("attempts") == 2 and s.get("phase") == "Running"
            ),
            90,
            "reviews-topk running its second attempt",
        )
        assert "cancelled" in ctl("cancel", "reviews-topk")
        wait_for(lambda: "reviews-topk" not in phases(cluster), 60, "reviews-topk deleted")
        logs = subprocess.run(
            [sys.executable, "-m", "transfer_operator.cli", "logs", "reviews-lora"],
            capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        )  # fmt: skip
        assert logs.returncode == 1 and "kwok node" in logs.stderr, logs.stderr  # no container runs on kwok

        placed = ("digits-features", "digits-progressive", "reviews-lora", "reviews-smollm2-lora", "digits-fails")

        def finished() -> bool:  # reviews-distill waits for budget: see distill-big-gang.yaml
            now = phases(cluster)
            return all(now.get(name, {}).get("phase") in ("Succeeded", "Failed") for name in placed)

        wait_for(finished, 300, "the placed examples to finish")
        watching.set()
        watcher.join()
        final = record_phases(cluster, seen)
        for name in placed[:-1]:
            assert seen[name][-1] == "Succeeded", (name, seen[name], final[name])
            assert seen[name].index("Running") < seen[name].index("Succeeded"), seen[name]
            assert final[name]["costSoFar"] > 0
        assert seen["digits-fails"][-1] == "Failed"
        assert "simulated failure" in final["digits-fails"]["message"]
        assert final["reviews-distill"]["phase"] == "Pending"
        by_pool = ctl("cost", "--by", "pool")
        total = sum(s["costSoFar"] for s in final.values())
        assert f"${total:.4f}" in by_pool or f"${total:,.2f}" in by_pool, (total, by_pool)
        # KubeRay's own state machine reached its end, not only our mirror of it.
        rayjob = final["reviews-lora"]["rayJobName"]
        wait_for(
            lambda: get_json(cluster, "rayjob", rayjob)["status"].get("jobDeploymentStatus") == "Complete",
            60,
            f"RayJob {rayjob} Complete",
        )
    finally:
        transferctl("dev-cluster", "down", "--state-dir", str(state_dir))
    assert not is_alive(operator)
