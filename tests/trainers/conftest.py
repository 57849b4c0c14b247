"""Trainer tests: real Ray (one session-wide local instance), real torch, tiny data, fixed seeds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "trainers" / "examples"
for p in (ROOT / "trainers", EXAMPLES):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole session; run_local reuses it instead of starting its own."""
    import ray

    # Ray workers inherit this environment: let them import the package and the example trainer.
    parts = [str(ROOT / "trainers"), str(EXAMPLES), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
