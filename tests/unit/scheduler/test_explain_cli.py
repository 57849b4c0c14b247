"""`transferctl explain JOB`: the plan's decision for one job, and its best options."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from transfer_operator.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "examples"


def test_explain_an_admitted_job_lists_its_options():
    result = CliRunner().invoke(main, ["explain", "reviews-topk", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "default/reviews-topk: admit (Admitted): admitted to us-east-h100" in result.output
    assert "us-east-a100" in result.output and "fits" in result.output


def test_explain_a_job_no_pool_can_take_names_the_limit():
    result = CliRunner().invoke(main, ["explain", "default/reviews-distill", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "BudgetTooLow" in result.output


def test_explain_an_unknown_job_is_a_usage_error():
    result = CliRunner().invoke(main, ["explain", "nope", str(EXAMPLES)])
    assert result.exit_code == 2
    assert "0 TransferJobs match 'nope'" in result.output
