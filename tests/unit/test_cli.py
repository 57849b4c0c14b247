from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from transfer_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
POOLS = str(EXAMPLES / "pools.yaml")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_plan_prints_a_placement_and_a_reason_for_each_waiting_job():
    jobs = [str(p) for p in sorted(EXAMPLES.glob("*.yaml")) if p.name != "pools.yaml"]
    result = invoke("plan", *jobs, "--pools", POOLS)
    assert result.exit_code == 0, result.output
    assert "eu-west-a100" in result.output and "spot" in result.output
    assert "default/reviews-distill waits: budget $30.00 <" in result.output


def test_validate_reports_reasons_and_exit_code(tmp_path):
    jobs = [str(p) for p in sorted(EXAMPLES.glob("*.yaml")) if p.name != "pools.yaml"]
    assert invoke("validate", *jobs).exit_code == 0
    # Against the pools, the distillation example's budget is below its cheapest placement.
    with_pools = invoke("validate", *jobs, "--pools", POOLS)
    assert with_pools.exit_code == 1 and "reviews-distill: budget $30.00" in with_pools.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "kind": "TransferJob",
                "metadata": {"name": "bad"},
                "spec": {
                    "model": {"source": "package:x"},
                    "dataset": {"uri": "d"},
                    "strategy": {"type": "lora"},
                    "resources": {"gpuType": "T4"},
                },
            }
        )
    )
    result = invoke("validate", str(bad), "--pools", POOLS)
    assert result.exit_code == 1
    assert "no GPUPool offers GPU type T4" in result.output


def test_render_prints_rayjobs_pinned_to_the_chosen_pool():
    result = invoke("render", str(EXAMPLES / "lora-sentiment.yaml"), "--pools", POOLS)
    assert result.exit_code == 0, result.output
    (rayjob,) = list(yaml.safe_load_all(result.output))
    assert rayjob["kind"] == "RayJob"
    assert rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["nodeSelector"] == {
        "transfer.dev/pool": "eu-west-a100"
    }


def test_crds_and_generate_check():
    assert "transferjobs.transfer.dev" in invoke("crds").output
    assert invoke("generate", "--check").exit_code == 0
