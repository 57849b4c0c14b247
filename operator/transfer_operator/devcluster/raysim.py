"""A stand-in for Ray in the dev cluster, where kwok fakes the pods and no Ray ever runs.

KubeRay learns a Ray job's fate from the Ray dashboard's job API (`GET /api/jobs/<id>` on the
head Service) and, in its default K8sJobMode, from its submitter pod (`ray job submit`, which
ends when the Ray job does). On kwok nothing answers the first and the second ends at once, so
every RayJob used to fail within a minute. This process plays both parts:

- it stamps each submitter pod, once Running, with when its simulated Ray job ends and how
  (stages.py: the kwok stages then end the pod at that time, exit code 0 or 1). The run lasts
  the job's `resources.estimatedHours` divided by the speed-up (60: an estimated hour runs a
  minute), read from the TransferJob spec the engine puts in the RayJob's runtime env;
- it answers the job API for the head Services as an HTTP proxy (KubeRay runs with HTTP_PROXY
  pointing here), from the submitter pods: RUNNING while one runs, then SUCCEEDED or FAILED.

Everything else is real: the API server, kube-scheduler binding the gang, the Job controller,
KubeRay's state machine and the operator. Inject a failure with the annotation
`sim.transfer.dev/fail-after-seconds` on the TransferJob (or the RayJob): the Ray job fails that
many seconds after its submitter started; `sim.transfer.dev/run-seconds` sets the run time.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

import yaml

from transfer_operator.devcluster.stages import (
    EXIT_CODE_ANNOTATION,
    FINISH_AT_ANNOTATION,
    SUBMITTER_CONTAINER,
)

log = logging.getLogger("raysim")

DEFAULT_SPEEDUP = 60.0
MIN_RUN_S = 10.0
MAX_RUN_S = 600.0
DEFAULT_RUN_S = 30.0  # a RayJob without a TransferJob spec in its runtime env
RUN_SECONDS_ANNOTATION = "sim.transfer.dev/run-seconds"
FAIL_AFTER_ANNOTATION = "sim.transfer.dev/fail-after-seconds"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
TRANSFER_JOB_LABEL = "transfer.dev/job"
STAMP_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class Stamp:
    finish_at: datetime
    exit_code: int

    def annotations(self) -> dict[str, str]:
        return {
            FINISH_AT_ANNOTATION: self.finish_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            EXIT_CODE_ANNOTATION: str(self.exit_code),
        }


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def estimated_hours(rayjob: dict[str, Any]) -> float | None:
    """`resources.estimatedHours` of the TransferJob spec in the RayJob's runtime env."""
    try:
        runtime_env = yaml.safe_load(rayjob["spec"].get("runtimeEnvYAML") or "") or {}
        spec = json.loads(runtime_env["env_vars"]["TRANSFER_JOB"])
        return float(spec["resources"]["estimatedHours"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def run_seconds(rayjob: dict[str, Any], annotations: dict[str, str], speedup: float) -> float:
    """How long the simulated Ray job runs: the annotation, else the estimate sped up, clamped."""
    override = _seconds(annotations.get(RUN_SECONDS_ANNOTATION))
    if override is not None:
        return max(0.0, override)
    hours = estimated_hours(rayjob)
    if hours is None:
        return DEFAULT_RUN_S
    return min(MAX_RUN_S, max(MIN_RUN_S, hours * 3600.0 / speedup))


def plan(
    started: datetime, rayjob: dict[str, Any], annotations: dict[str, str], retried: bool, speedup: float
) -> Stamp:
    """The fate of a submitter pod that started at `started`. `annotations`: the RayJob's, over
    which the TransferJob's win. A retried submitter finds its Ray job failed and exits 1 (as
    `ray job submit` does when the job it follows has failed)."""
    if retried:
        return Stamp(started, 1)
    fail_after = _seconds(annotations.get(FAIL_AFTER_ANNOTATION))
    run_s = run_seconds(rayjob, annotations, speedup)
    if fail_after is not None and fail_after < run_s:
        return Stamp(started + timedelta(seconds=max(0.0, fail_after)), 1)
    return Stamp(started + timedelta(seconds=run_s), 0)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _millis(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value else 0


def _finished_at(pod: dict[str, Any]) -> datetime | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return _parse_time(terminated.get("finishedAt"))
    return None


def job_info(rayjob: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The job API's answer for the RayJob's Ray job, from its submitter pods (None: not
    submitted yet, which the API says with a 404)."""
    started = [p for p in pods if (p.get("status") or {}).get("startTime")]
    if not started:
        return None
    phases = {(p.get("status") or {}).get("phase") for p in started}
    start = min(_parse_time(p["status"]["startTime"]) or datetime.now(UTC) for p in started)
    ended = [t for p in started if (t := _finished_at(p))]
    if "Failed" in phases:
        status, message = "FAILED", f"simulated failure ({FAIL_AFTER_ANNOTATION})"
    elif "Succeeded" in phases:
        status, message = "SUCCEEDED", "simulated run finished"
    else:
        status, message = "RUNNING", "simulated run in progress"
    job_id = (rayjob.get("status") or {}).get("jobId") or ""
    return {
        "job_id": job_id,
        "submission_id": job_id,
        "status": status,
        "entrypoint": rayjob["spec"].get("entrypoint", ""),
        "message": message,
        "start_time": _millis(start),
        "end_time": _millis(max(ended)) if status != "RUNNING" and ended else 0,
        "metadata": {"simulated": "true"},
    }


def namespace_of_host(host: str) -> str | None:
    """`<service>.<namespace>.svc.<domain>[:port]` -> namespace."""
    labels = host.split(":", 1)[0].split(".")
    return labels[1] if len(labels) >= 3 and labels[2] == "svc" else None


class Simulator:
    def __init__(self, kubeconfig: str, speedup: float) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.speedup = speedup

    # --- cluster reads ----------------------------------------------------------------

    def _rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            found = self.custom.get_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", name)
            return dict(cast(dict[str, Any], found))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _transferjob_annotations(self, namespace: str, rayjob: dict[str, Any]) -> dict[str, str]:
        from kubernetes.client.exceptions import ApiException

        name = (rayjob["metadata"].get("labels") or {}).get(TRANSFER_JOB_LABEL)
        if not name:
            return {}
        try:
            job = self.custom.get_namespaced_custom_object(
                "transfer.dev", "v1alpha1", namespace, "transferjobs", name
            )
        except ApiException as error:
            if error.status == 404:  # a worker cluster has no TransferJobs
                return {}
            raise
        return dict(cast(dict[str, Any], job)["metadata"].get("annotations") or {})

    def _pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}")
        items = self.core.api_client.sanitize_for_serialization(pods)["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    # --- stamping -----------------------------------------------------------------------

    def stamp_once(self) -> int:
        """Stamp (or re-stamp) every running submitter pod; returns how many were patched."""
        running = self.core.list_pod_for_all_namespaces(field_selector="status.phase=Running")
        patched = 0
        for pod in self.core.api_client.sanitize_for_serialization(running)["items"]:
            if SUBMITTER_CONTAINER not in {c["name"] for c in pod["spec"]["containers"]}:
                continue
            job_name = (pod["metadata"].get("labels") or {}).get(JOB_NAME_LABEL)
            started = _parse_time((pod.get("status") or {}).get("startTime"))
            if not job_name or started is None:
                continue
            namespace = pod["metadata"]["namespace"]
            rayjob = self._rayjob(namespace, job_name)
            if rayjob is None:
                continue
            annotations = {
                **(rayjob["metadata"].get("annotations") or {}),
                **self._transferjob_annotations(namespace, rayjob),
            }
            siblings = self._pods(namespace, job_name)
            retried = any((p.get("status") or {}).get("phase") == "Failed" for p in siblings)
            wanted = plan(started, rayjob, annotations, retried, self.speedup).annotations()
            current = pod["metadata"].get("annotations") or {}
            if all(current.get(key) == value for key, value in wanted.items()):
                continue
            self.core.patch_namespaced_pod(
                pod["metadata"]["name"], namespace, {"metadata": {"annotations": wanted}}
            )
            log.info("stamped %s/%s: %s", namespace, pod["metadata"]["name"], wanted)
            patched += 1
        return patched

    def stamp_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.stamp_once()
            except Exception:  # the API server restarting must not end the simulation
                log.exception("stamping failed; trying again")
            stop.wait(STAMP_INTERVAL_S)

    # --- the job API ------------------------------------------------------------------

    def find_rayjob(self, namespace: str, job_id: str) -> dict[str, Any] | None:
        rayjobs = self.custom.list_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs")
        for rayjob in cast(dict[str, Any], rayjobs)["items"]:
            if (rayjob.get("status") or {}).get("jobId") == job_id:
                return dict(rayjob)
        return None

    def job_info(self, namespace: str, job_id: str) -> dict[str, Any] | None:
        rayjob = self.find_rayjob(namespace, job_id)
        if rayjob is None:
            return None
        return job_info(rayjob, self._pods(namespace, rayjob["metadata"]["name"]))


def handler_for(simulator: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _send(self, code: int, body: dict[str, Any] | list[Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _target(self) -> tuple[str | None, list[str]]:
            url = urlsplit(self.path)  # absolute form when proxied: http://svc.ns.svc...:8265/api/...
            host = url.netloc or self.headers.get("Host", "")
            return namespace_of_host(host), [part for part in url.path.split("/") if part]

        def _drain(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            namespace, parts = self._target()
            if parts == ["healthz"]:
                self._send(200, {"ok": True})
                return
            if namespace is None or parts[:2] != ["api", "jobs"]:
                self._send(404, {"error": f"not simulated: {self.path}"})
                return
            try:
                if len(parts) == 2:  # ListJobs: not needed by KubeRay's RayJob controller
                    self._send(200, [])
                    return
                info = simulator.job_info(namespace, parts[2])
            except Exception as error:
                log.exception("job API")
                self._send(500, {"error": str(error)})
                return
            if info is None:
                self._send(404, {"error": f"Job {parts[2]} does not exist"})
            elif parts[3:] == ["logs"]:
                self._send(200, {"logs": f"(simulated Ray job: {info['status']}, no Ray ran)\n"})
            else:
                self._send(200, info)

        def do_POST(self) -> None:  # noqa: N802
            self._drain()
            _, parts = self._target()
            if parts[:2] == ["api", "jobs"] and parts[3:] == ["stop"]:
                self._send(200, {"stopped": True})
            else:  # HTTPMode submission: the engine renders K8sJobMode only
                self._send(501, {"error": "the dev cluster simulates K8sJobMode RayJobs only"})

        def do_DELETE(self) -> None:  # noqa: N802
            self._drain()
            self._send(200, {"deleted": True})

    return Handler


def serve(kubeconfig: str, port: int, speedup: float) -> None:
    simulator = Simulator(kubeconfig, speedup)
    stop = threading.Event()
    stamper = threading.Thread(target=simulator.stamp_forever, args=(stop,), daemon=True)
    stamper.start()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(simulator))
    log.info("Ray stand-in on 127.0.0.1:%d (speed-up %g)", port, speedup)
    try:
        server.serve_forever()
    finally:
        stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--speedup", type=float, default=DEFAULT_SPEEDUP)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(args.kubeconfig, args.port, args.speedup)


if __name__ == "__main__":
    main()
