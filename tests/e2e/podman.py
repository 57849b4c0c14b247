"""podman for the e2e tests: the images hack/images/build.sh builds, run with its containers.conf;
a test that needs one skips, saying why, where it is not built or podman cannot run it here."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
OPERATOR_IMAGE = f"ghcr.io/transfer-operator/transfer-operator:{VERSION}"
TRAINER_IMAGE = f"ghcr.io/transfer-operator/transfer-trainers:{VERSION}"
CONTAINERS_CONF = ROOT / "hack/images/containers.conf"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"CONTAINERS_CONF": str(CONTAINERS_CONF), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=check, timeout=timeout
    )


def runnable(image: str, target: str, cold_minutes: int) -> str:
    """`image` when podman has it and can run it here; else skip, saying why."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    if podman("image", "exists", image, check=False).returncode != 0:
        pytest.skip(
            f"{image} is not built: run `bash hack/images/build.sh {target}` (about {cold_minutes} min cold)"
        )
    probe = podman("run", "--rm", image, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    return image
