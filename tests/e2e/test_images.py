"""The images built by hack/images/build.sh, run by podman with their own entrypoint:

- the operator image, against the dev cluster as the chart's ServiceAccount, admits the examples;
- the trainer image runs a RayJob as KubeRay would: a head container started with the rendered
  head pod's env and rayStartParams, and a submitter container in the head's network namespace
  (a pod's containers share one) that runs `ray job submit` with the rendered entrypoint
  (`python -m transfer_trainers.launch`) and runtime env. No network (`--network none`): the
  packaged code, model and data must be in the image. The job writes its checkpoints and output
  to a mounted directory, which the test reads.

Skipped, with the reason, where the image has not been built (the build is minutes long and not
part of the test run) or where podman cannot run a container on the machine."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from transfer_operator import devcluster
from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.engine.isolation import render_ray_token_secret
from transfer_operator.engine.rayjob import PoolPin, render_rayjob

from .conftest import EXAMPLES, RELEASE_NAMESPACE, SERVICE_ACCOUNT, container_env, get_json, wait_for
from .podman import OPERATOR_IMAGE, TRAINER_IMAGE, podman, runnable
from .prometheus import free_port


@pytest.fixture(scope="module")
def operator_image() -> str:
    return runnable(OPERATOR_IMAGE, "operator", 5)


@pytest.fixture(scope="module")
def trainer_image() -> str:
    return runnable(TRAINER_IMAGE, "trainer", 10)


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


# The digits example (manifests/examples/digits-feature-extraction.yaml) is the small one: its
# pre-trained CNN and its data come with the image. The RayJob is rendered as for the cluster
# (a GPU per worker: the API admits nothing else); this machine has no GPU, so the one change to
# what the engine renders is gpusPerWorker 0 in the runtime env's TRANSFER_JOB.
TRAINER_EXAMPLE = EXAMPLES / "digits-feature-extraction.yaml"
DATA = "/data"  # the mount in the containers: checkpoint storage and output
TOKEN = "trainer-image-" + "t" * 40


HEAD_PROBE = """
import sys, urllib.request
for url in ("http://127.0.0.1:52365/api/local_raylet_healthz", "http://127.0.0.1:8265/api/gcs_healthz"):
    request = urllib.request.Request(url, headers={"x-ray-authorization": f"Bearer {sys.argv[1]}"})
    try:
        body = urllib.request.urlopen(request, timeout=10).read()
    except OSError:
        sys.exit(1)
    if b"success" not in body:
        sys.exit(1)
"""


def env_flags(env: dict[str, str]) -> list[str]:
    return [flag for name, value in sorted(env.items()) for flag in ("-e", f"{name}={value}")]


def trainer_rayjob() -> tuple[dict, dict]:
    document = yaml.safe_load(TRAINER_EXAMPLE.read_text())
    spec = document["spec"]
    spec["checkpoint"] = {"uri": f"{DATA}/checkpoints", "everySteps": 20}
    spec["output"] = {"uri": f"{DATA}/output"}
    job = parse_transferjob(document)
    pool = parse_gpupool(next(yaml.safe_load_all((EXAMPLES / "pools.yaml").read_text())))
    rayjob = render_rayjob(job, PoolPin.of(pool.metadata.name, pool.spec), attempt=1)
    return rayjob, render_ray_token_secret(job, rayjob["metadata"]["name"], TOKEN)


@pytest.fixture()
def trainer_head(trainer_image: str, tmp_path: Path) -> Iterator[tuple[str, dict, dict, Path]]:
    """The RayJob's head container, as rendered, with a host directory at /data."""
    rayjob, secret = trainer_rayjob()
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image runs as uid 10001
    head_group = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]
    ip = "127.0.0.1"  # --network none: the pod's only address is loopback
    env = container_env(head_group["template"]["spec"]["containers"][0], secret, ip)

    def expand(value: str) -> str:  # as the kubelet expands $(VAR) in a container's args
        return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)

    flags = [f"--{key}={expand(value)}" for key, value in head_group["rayStartParams"].items()]
    name = f"transfer-trainer-e2e-{uuid.uuid4().hex[:6]}"
    podman(
        "run", "--detach", "--name", name, "--network", "none", "--shm-size", "1g",
        "-v", f"{data}:{DATA}", *env_flags(env),
        # The raylet waits 15 s for its dashboard agent, too short on 2 loaded shared cores.
        "-e", "RAY_agent_register_timeout_ms=180000",
        trainer_image, "ray", "start", "--head", "--block", *flags,
        # KubeRay's head pod: the pod's CPU limit becomes --num-cpus; here the host's 2 shared cores.
        "--num-cpus=2", "--disable-usage-stats",
    )  # fmt: skip
    try:
        yield name, rayjob, secret, data
    finally:
        print(podman("logs", name, check=False).stdout[-3000:])
        podman("rm", "--force", "--time", "5", name, check=False)


def test_trainer_image_runs_the_rayjob_entrypoint(trainer_head: tuple[str, dict, dict, Path]) -> None:
    head, rayjob, secret, data = trainer_head
    submitter = container_env(rayjob["spec"]["submitterPodTemplate"]["spec"]["containers"][0], secret, "")
    address = "http://127.0.0.1:8265"  # KubeRay: the head Service's dashboard port
    in_pod = ("run", "--rm", "--network", f"container:{head}", *env_flags(submitter), TRAINER_IMAGE)

    def head_ready() -> bool | None:
        # KubeRay's readiness probe of a head pod: the raylet (through the dashboard agent, which
        # also runs the job agent) and the GCS (through the dashboard) say "success".
        probe = podman("exec", head, "python3", "-c", HEAD_PROBE, TOKEN, check=False, timeout=60)
        return probe.returncode == 0 or None

    # Minutes on 2 loaded shared cores (the Ray head starts a dozen Python processes).
    wait_for(head_ready, 600, "the Ray head in the trainer image to be ready")
    runtime_env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    env_vars = runtime_env["env_vars"]
    assert env_vars["TRANSFER_STORAGE_PATH"] == f"{DATA}/checkpoints"
    spec = json.loads(env_vars["TRANSFER_JOB"])
    assert spec["resources"]["gpusPerWorker"] == 1
    spec["resources"]["gpusPerWorker"] = 0  # no GPU here: the trainer runs its workers on CPU
    env_vars["TRANSFER_JOB"] = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    # What KubeRay's submitter runs: `ray job submit` follows the driver's log until the job ends.
    submitted = podman(
        *in_pod, "ray", "job", "submit", "--address", address,
        "--submission-id", rayjob["metadata"]["name"], "--runtime-env-json", json.dumps(runtime_env),
        "--", *rayjob["spec"]["entrypoint"].split(),
        check=False, timeout=900,
    )  # fmt: skip
    log = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, log[-4000:]
    assert re.search(rf"Job '{rayjob['metadata']['name']}' succeeded", log), log[-4000:]
    final = next(
        json.loads(line[line.index("{") :])
        for line in reversed(log.splitlines())
        if '"final_metrics"' in line
    )
    metrics = final["final_metrics"]
    print(f"trainer image: {json.dumps(metrics)}")
    # Digits 5-9 from features learnt on digits 0-4 only: well above the 1-in-5 of guessing.
    assert metrics["val_accuracy"] > 0.6, metrics
    assert metrics["step"] >= 20, metrics
    # The checkpoint is in the job's storage, under the attempt's run, on the mounted directory.
    checkpoint = final["checkpoint"]
    assert checkpoint.startswith(f"{DATA}/checkpoints/") and "digits-features-attempt-1" in checkpoint
    on_host = data / Path(checkpoint).relative_to(DATA)
    assert on_host.is_dir() and any(on_host.iterdir()), checkpoint
    # The output: the model and its manifest (what it is, how it did, which data).
    manifest = json.loads((data / "output" / "manifest.json").read_text())
    assert manifest["base_model"] == "builtin:digits-cnn" and manifest["strategy"] == "featureExtraction"
    assert manifest["metrics"]["val_accuracy"] == pytest.approx(metrics["val_accuracy"])
    assert final["output"]["uri"] == f"{DATA}/output"
    assert [p.name for p in (data / "output").iterdir() if p.name != "manifest.json"], "no model written"
    # Ray's own record of the job agrees with the submitter's log.
    status = podman(*in_pod, "ray", "job", "status", "--address", address, rayjob["metadata"]["name"])
    said = status.stdout + status.stderr
    assert re.search(rf"Job '{rayjob['metadata']['name']}' succeeded", said), said
