"""The README's cluster section, run as a newcomer would: `dev-cluster up --with-operator`, then
`kubectl apply -f manifests/examples/`, and every placed example goes Admitted -> Running ->
Succeeded with cost accrued, through the real KubeRay driving a simulated Ray job
(devcluster/raysim.py); an injected failure ends Failed. `down` stops the operator too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            for name, status in phases(cluster).items():
                history = seen.setdefault(name, [])
                if not history or history[-1] != status.get("phase"):
                    history.append(status.get("phase", "Pending"))
            finished = [n for n, h in seen.items() if h[-1] in ("Succeeded", "Failed")]
            if len(finished) == 5:  # reviews-distill waits for budget: see distill-big-gang.yaml
                break
            time.sleep(0.5)
        final = phases(cluster)
        for name in ("digits-features", "digits-progressive", "reviews-lora", "reviews-topk"):
            assert seen[name][-1] == "Succeeded", (name, seen[name], final[name])
            assert "Running" in seen[name], (name, seen[name])
            assert final[name]["costSoFar"] > 0
        assert seen["digits-fails"][-1] == "Failed"
        assert "simulated failure" in final["digits-fails"]["message"]
        assert final["reviews-distill"]["phase"] == "Pending"
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
