"""The operator image built by hack/images/build.sh, run by podman with its own entrypoint against
the dev cluster as the chart's ServiceAccount, admits the examples.

Skipped, with the reason, where the image has not been built (the build is minutes long and not
part of the test run) or where podman cannot run a container on the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from transfer_operator import devcluster

from .conftest import EXAMPLES, RELEASE_NAMESPACE, SERVICE_ACCOUNT, get_json, wait_for
from .prometheus import free_port

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
OPERATOR_IMAGE = f"ghcr.io/transfer-operator/transfer-operator:{VERSION}"
CONTAINERS_CONF = ROOT / "hack/images/containers.conf"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"CONTAINERS_CONF": str(CONTAINERS_CONF), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=check, timeout=timeout
    )


@pytest.fixture(scope="module")
def operator_image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    if podman("image", "exists", OPERATOR_IMAGE, check=False).returncode != 0:
        pytest.skip(f"{OPERATOR_IMAGE} is not built: run `bash hack/images/build.sh operator` (about 5 min)")
    probe = podman("run", "--rm", OPERATOR_IMAGE, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    return OPERATOR_IMAGE


@pytest.fixture()
def image_operator(
    cluster: devcluster.Cluster, chart: None, operator_image: str, tmp_path: Path
) -> Iterator[str]:
    kubeconfig = cluster.service_account_kubeconfig(
        SERVICE_ACCOUNT, RELEASE_NAMESPACE, tmp_path / "kubeconfig"
    )
    kubeconfig.chmod(0o644)  # the image runs as uid 10001
    mounts = ["-v", f"{kubeconfig}:/kubeconfig:ro"]
    ca = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"].get("certificate-authority")
    if ca:
        mounts += ["-v", f"{ca}:{ca}:ro"]
    name = f"transfer-operator-e2e-{uuid.uuid4().hex[:6]}"
    podman(
        "run", "--detach", "--name", name, "--network", "host", *mounts,
        "-e", "KUBECONFIG=/kubeconfig", "-e", f"POD_NAMESPACE={RELEASE_NAMESPACE}", "-e", f"POD_NAME={name}",
        "-e", f"TRANSFER_METRICS_PORT={free_port()}",
        operator_image, "transferctl", "operator", "--standalone",
    )  # fmt: skip
    try:
        yield name
    finally:
        print(podman("logs", name, check=False).stdout[-5000:])
        podman("rm", "--force", name, check=False)


def test_operator_image_admits_the_examples(
    cluster: devcluster.Cluster, image_operator: str, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", str(EXAMPLES / "pools.yaml"))
    names = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "TransferJob":
                document["metadata"]["namespace"] = namespace
                names.append(document["metadata"]["name"])
                cluster.kubectl("apply", "-f", "-", input=json.dumps(document))
    assert names

    def statuses() -> dict[str, dict] | None:
        found = {n: get_json(cluster, "transferjob", n, "-n", namespace).get("status") or {} for n in names}
        return found if all(s.get("phase") for s in found.values()) else None

    found = wait_for(statuses, 180, "the image's operator to give every example a phase")
    admitted = [n for n, s in found.items() if s.get("rayJobName")]
    assert admitted, f"no example admitted: {found}"
    for name in admitted:
        rayjob = found[name]["rayJobName"]
        wait_for(
            lambda: cluster.kubectl("get", "rayjob", rayjob, "-n", namespace, check=False).returncode == 0,
            60,
            f"RayJob {rayjob}",
        )
