"""podman for the e2e tests: the images hack/images/build.sh builds, run with its containers.conf;
a test that needs one skips, saying why, where it is not built or podman cannot run it here."""

from __future__ import annotations

import json
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
    stale = not_from_this_tree(image, target)
    if stale is not None:
        pytest.skip(stale)
    probe = podman("run", "--rm", image, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    return image


def not_from_this_tree(image: str, target: str) -> str | None:
    """Why podman's `image` is not the one build.sh makes from this tree's sources (an image of
    older code would test that code), or None when it is."""
    build = ["bash", str(ROOT / "hack/images/build.sh"), "--print-layout", target]
    layout = Path(subprocess.run(build, capture_output=True, text=True, check=True).stdout.strip())
    rebuild = f"run `bash hack/images/build.sh {target}`"
    if not (layout / "index.json").is_file():
        return f"{image} was built from other sources than this tree's: {rebuild}"
    manifest_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / manifest_digest.replace(":", "/")).read_text())
    image_id = podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    if manifest["config"]["digest"] != f"sha256:{image_id}":
        return f"{image} in podman's store is not this tree's build ({layout.name}): {rebuild}"
    return None
