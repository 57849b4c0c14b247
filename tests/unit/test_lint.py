"""ruff and mypy over the operator, as DESIGN.md's conventions ask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    result = run(str(BIN / "ruff"), "check", "operator", "tests/unit", "benchmarks")
    assert result.returncode == 0, result.stdout


def test_mypy_is_clean():
    result = run(str(BIN / "mypy"), "operator/transfer_operator")
    assert result.returncode == 0, result.stdout
