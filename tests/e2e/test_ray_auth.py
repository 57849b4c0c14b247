"""Ray token authentication, checked on a real Ray head started with the settings the engine
renders: the head container's env (RAY_AUTH_MODE, the token from the per-job Secret, the pod IP)
and its rayStartParams. kwok pods run no containers, so this is where the settings meet Ray.

Without the token, or with another job's, the job API and the GCS answer nothing; with it, a
job runs; the dashboard does not listen on loopback when bound to the pod's address.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from transfer_operator.api.validation import parse_gpupool, parse_transferjob
from transfer_operator.devcluster.podlet import host_address
from transfer_operator.engine.isolation import render_ray_token_secret
from transfer_operator.engine.rayjob import PoolPin, render_rayjob

from .conftest import EXAMPLES, container_env

RAY = Path(sys.executable).parent / "ray"
TOKEN = "job-a-" + "k" * 40
OTHER_TOKEN = "job-b-" + "z" * 40


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def head_settings(ip: str) -> tuple[dict[str, str], list[str]]:
    """The env and `ray start` flags of the rendered head pod, with the pod's values filled in."""
    job = parse_transferjob(yaml.safe_load((EXAMPLES / "lora-sentiment.yaml").read_text()))
    pool = parse_gpupool(next(yaml.safe_load_all((EXAMPLES / "pools.yaml").read_text())))
    rayjob = render_rayjob(job, PoolPin.of(pool.metadata.name, pool.spec), attempt=1)
    secret = render_ray_token_secret(job, rayjob["metadata"]["name"], TOKEN)
    head_group = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]
    env = container_env(head_group["template"]["spec"]["containers"][0], secret, ip)

    def expand(value: str) -> str:  # as the kubelet expands $(VAR) in a container's args
        return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)

    flags = [f"--{key}={expand(value)}" for key, value in head_group["rayStartParams"].items()]
    return env, flags


@dataclass
class Head:
    ip: str
    gcs_port: int
    dashboard_port: int

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.dashboard_port}"


def status_of(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("x-ray-authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    ip = host_address()  # what a pod IP is to a pod here (the dev cluster's podman node uses it too)
    env, flags = head_settings(ip)
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == TOKEN
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics, node, objects = free_ports(9)
    # Worker ports below the kernel's ephemeral range (32768 up), where free_ports' ports come from:
    # `ray start` exits when one of those falls in the worker range.
    low = 10000 + (os.getpid() % 200) * 100
    # Ports of its own, so no other Ray on this machine gets in the way; everything else as rendered.
    local = [
        f"--port={gcs}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
        f"--node-manager-port={node}", f"--object-manager-port={objects}",
        f"--min-worker-port={low}", f"--max-worker-port={low + 99}", "--num-cpus=1",
        f"--temp-dir={tmp_path_factory.mktemp('ray')}", "--disable-usage-stats",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("ray-start") / "output.log"
    process = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", *flags, *local],
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped below, and nothing else
    )
    started = Head(ip, gcs, dashboard)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if status_of(f"{started.url}/api/version") in (200, 401):
                    break
            except OSError:
                pass
            assert process.poll() is None, f"ray start exited:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        else:
            pytest.fail("the Ray head did not come up in 120 s")
        yield started
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if `ray start` exited
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        time.sleep(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what SIGTERM left of the group
        process.wait()


def client(script: str, *, token: str | None, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh Python, as another pod would run it: with `token`, or without any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token} if token else {"RAY_AUTH_MODE": "disabled"}
    )
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def test_the_job_api_answers_only_the_jobs_token(head: Head) -> None:
    jobs = f"{head.url}/api/jobs/"
    assert status_of(jobs) == 401
    assert status_of(jobs, OTHER_TOKEN) in (401, 403)
    assert status_of(jobs, TOKEN) == 200


SUBMIT = """
import json, sys, time
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1] if len(sys.argv) > 1 else {url!r})
for _ in range(60):  # the job agent may still be starting
    try:
        job = client.submit_job(entrypoint={entrypoint!r})
        break
    except RuntimeError as error:
        if "No available agent" not in str(error):
            raise
        time.sleep(2)
for _ in range(150):
    status = client.get_job_status(job)
    if status.is_terminal():
        break
    time.sleep(1)
print(json.dumps({{"status": str(status), "logs": client.get_job_logs(job)}}))
"""
ENTRYPOINT = f"{sys.executable} -c \"import ray; ray.init(); print('cpus', ray.cluster_resources()['CPU'])\""


def test_a_job_with_the_token_runs_and_reaches_the_gcs(head: Head) -> None:
    result = client(SUBMIT.format(url=head.url, entrypoint=ENTRYPOINT), token=TOKEN)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"].endswith("SUCCEEDED") and "cpus 1.0" in outcome["logs"], outcome


def test_without_the_token_nothing_is_submitted_nor_joined(head: Head) -> None:
    for token in (None, OTHER_TOKEN):
        submitted = client(SUBMIT.format(url=head.url, entrypoint="echo pwned"), token=token)
        assert submitted.returncode != 0 and "uthentication" in submitted.stderr, submitted.stderr[-2000:]
    joined = client(
        f"import ray; ray.init(address='{head.ip}:{head.gcs_port}')", token=OTHER_TOKEN, timeout_s=120
    )
    assert joined.returncode != 0 and "uthentication" in joined.stderr, joined.stderr[-2000:]


def test_the_dashboard_is_not_on_loopback(head: Head) -> None:
    if head.ip == "127.0.0.1":
        pytest.skip("this machine has no address but loopback")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", head.dashboard_port), timeout=5).close()
