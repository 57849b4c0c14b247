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
                "apiVersion": "transfer.dev/v1alpha1",
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


def write_job(tmp_path: Path, name: str = "j", **extra) -> Path:
    document = yaml.safe_load((EXAMPLES / "lora-sentiment.yaml").read_text())
    document["metadata"]["name"] = name
    document.update(extra)
    path = tmp_path / f"job-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_user_strings_are_never_read_as_markup(tmp_path):
    for name in ("[/]", "[bold red]x[/bold red]", "[link=http://x]y"):
        result = CliRunner().invoke(main, ["validate", str(write_job(tmp_path, name))])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not a traceback
        assert f"TransferJob/{name}: metadata.name" in result.output, result.output
    markup_file = tmp_path / "[red]x.yaml"
    markup_file.write_text("a: b: c")
    result = CliRunner().invoke(main, ["validate", str(markup_file)])
    assert result.exit_code == 1 and "[red]x.yaml: YAML error at line 1, column 5" in result.output


def test_render_plans_a_job_in_any_phase_for_its_next_attempt(tmp_path):
    status = {
        "phase": "Running",
        "attempts": 2,
        "lastCheckpoint": "/ckpt/x",
        "placement": {
            "pool": "gone",
            "region": "r",
            "gpuType": "A100",
            "priceClass": "spot",
            "usdPerGpuHour": 1.0,
            "usdPerHour": 2.0,
            "gpus": 2,
        },
    }
    for phase in ("Running", "Succeeded", "Failed", "Suspended", "Admitted"):
        path = write_job(tmp_path, f"j-{phase.lower()}", status={**status, "phase": phase})
        result = CliRunner().invoke(main, ["render", str(path), "--pools", POOLS])
        assert result.exit_code == 0, result.output
        (rayjob,) = list(yaml.safe_load_all(result.output))
        assert rayjob["metadata"]["name"] == f"j-{phase.lower()}-a3"


def test_run_refuses_a_run_directory_outside_runs(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "j").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = CliRunner().invoke(
        main, ["run", str(write_job(tmp_path / "runs", "j")), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 1 and "its run directory would be outside" in result.output


def test_plan_refuses_a_bad_config_in_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("schedulingIntervalSeconds: '2'\n")
    jobs = str(EXAMPLES / "lora-sentiment.yaml")
    result = CliRunner().invoke(main, ["plan", jobs, "--pools", POOLS, "--config", str(config)])
    assert (
        result.exit_code == 1 and "schedulingIntervalSeconds: Input should be a valid number" in result.output
    )


QUEUES = str(EXAMPLES / "queues" / "queues.yaml")


def a_job_file(tmp_path: Path, name: str, namespace: str, **spec) -> str:
    job = yaml.safe_load((EXAMPLES / "lora-sentiment.yaml").read_text())
    job["metadata"] = {"name": name, "namespace": namespace}
    job["spec"].update(spec)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


def test_validate_and_plan_apply_the_queues_among_the_files(tmp_path):
    assert invoke("validate", QUEUES).exit_code == 0
    mine = a_job_file(tmp_path, "mine", "team-nlp", priority=0, priorityClassName="production")
    theirs = a_job_file(tmp_path, "theirs", "team-vision", queue="team-nlp", priority=0)
    greedy = a_job_file(tmp_path, "greedy", "team-vision", queue="team-vision", priority=1000000)
    result = invoke("validate", QUEUES, mine, theirs, greedy)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("✗")]
    assert len(lines) == 2, result.output
    assert "team-vision/theirs: invalid spec: spec.queue: this namespace may not use TransferQueue team-nlp; " \
           "it may use: team-vision" in result.output  # fmt: skip
    assert "team-vision/greedy: invalid spec: spec.priority: 1000000 is above 10" in result.output
    plan = invoke("plan", QUEUES, mine, theirs, greedy, "--pools", POOLS)
    assert plan.exit_code == 0, plan.output
    assert "team-vision/theirs waits: invalid spec: spec.queue" in plan.output
    assert "team-nlp/mine" in plan.output and "team-nlp/mine waits" not in plan.output
