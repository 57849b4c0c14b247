"""A real Prometheus server (Debian's `prometheus` package) on loopback, for the tests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from transfer_operator.dashboards import MULTICLUSTER_DASHBOARDS, rendered_queries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, workdir: Path, targets: dict[str, str], scrape_interval_s: int = 1) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus (hack/test.sh does)")
        port = free_port()
        config = {
            "global": {
                "scrape_interval": f"{scrape_interval_s}s",
                "evaluation_interval": f"{scrape_interval_s}s",
            },
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": [address]}]}
                for name, address in targets.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = workdir / "prometheus.log"
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = cls(f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + 30
        while not server.ready():
            if time.monotonic() > deadline or process.poll() is not None:
                server.stop()
                raise RuntimeError("prometheus did not start:\n" + log.read_text()[-2000:])
            time.sleep(0.3)
        return server

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        """The `data` of an instant query; raises on a PromQL error."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def targets_up(self) -> dict[str, bool]:
        data = self.query("up")
        return {r["metric"]["job"]: r["value"][1] == "1" for r in data["result"]}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "charts/transfer-operator/dashboards"


def shipped_queries(multicluster: bool = False) -> set[str]:
    """The chart's JSON (which test_cli's `generate --check` keeps equal to dashboards.py): the
    single-cluster dashboards, or those only a fleet with worker clusters has data for."""
    return {
        query
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
        if (path.name in MULTICLUSTER_DASHBOARDS) == multicluster
        for query in rendered_queries(path.read_text())
    }


def assert_every_query_returns_data(
    prometheus: Prometheus, queries: set[str], timeout_s: float = 240
) -> None:
    pending = set(queries)
    invalid = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for expr in sorted(pending):
            try:
                if prometheus.query(expr)["result"]:
                    pending.discard(expr)
            except ValueError as error:
                invalid[expr] = str(error)
                pending.discard(expr)
        time.sleep(2)
    assert not invalid, f"invalid PromQL: {invalid}"
    assert not pending, f"queries with no series after {timeout_s:.0f} s: {sorted(pending)}"
