"""TransferJobs admitted per second through the real API server, with the operator running as
the chart's ServiceAccount, beside Kueue admitting the equivalent RayJobs on the same control
plane.

    python benchmarks/e2e_admission.py --jobs 1000 10000            # ours and Kueue, backlog
    python benchmarks/e2e_admission.py --jobs 1000 --mode stream    # admission while creating
    python benchmarks/e2e_admission.py --jobs 10000 --mode stream --rate 40  # at 40 created/s
    python benchmarks/e2e_admission.py --jobs 1000 --no-kueue

For each size and system (ours first, or Kueue first with `--kueue-first`): a fresh namespace,
deleted and waited for before the next run, and N workloads (TransferJobs for ours; for Kueue the
RayJob our operator renders for each, suspended, with the queue-name label: kueue_baseline.py).
`--mode backlog` (default) creates all N with the controller stopped, then starts it: admitted/s
is N over the time from its start to the last admission, and the latencies count from its start
(or the object's creation, if later). `--mode stream` starts the controller first and creates
the N as fast as the client can (16 threads), or at `--rate` per second: latencies count from
creation, and the admitted/s cannot exceed the creation rate. A stream at a rate below both
controllers' capacity measures admission latency under a steady load; a backlog's latencies are
its queue position over the rate. GPUPools in three regions hold enough GPUs for all (Kueue: a
ResourceFlavor per pool with its GPUs as quota). The KubeRay CRDs are installed but no KubeRay
operator runs: the RayJobs stay idle, so the figure is the admission rate itself. Both
controllers get the same client QPS/burst. Reports CPU seconds and resident memory of the
controller and of kube-apiserver.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kueue_baseline  # noqa: E402  (benchmarks/ is on the path when run as a script)
from prometheus_client.parser import text_string_to_metric_families

from transfer_operator import devcluster
from transfer_operator.api.manifests import gpupool_manifest, transferjob_manifest

ROOT = Path(__file__).resolve().parents[1]
PAGE = 5000  # objects per page of the final count's list

POOLS = [
    gpupool_manifest(
        f"{region}-{gpu.lower()}-{i}",
        region=region,
        gpuType=gpu,
        nodes=2000,
        gpusPerNode=8,
        pricing={"onDemandPerGpuHour": price + 0.1 * i, "spotPerGpuHour": round(price * 0.4, 2)},
    )
    for region, gpu, price in (("eu-west", "A100", 3.4), ("us-east", "H100", 6.9), ("ap-south", "L4", 0.8))
    for i in range(4)
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks


def memory_gb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak since the process started (VmRSS, VmHWM), in GB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[name].split()[0]) / 1e6, 2) for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def job(name: str, i: int) -> dict[str, Any]:
    return transferjob_manifest(
        name,
        dataset={"uri": "builtin:rotten-tomatoes", "format": "builtin"},
        resources={"workers": 1 + i % 4, "gpusPerWorker": 1, "estimatedHours": 0.5},
        placement={"spot": i % 2 == 0},
    )


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


METRICS_PORT = 18391  # the operator's /metrics, for the cycle's stage timings


def operator_families() -> dict[str, Any]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def cycles_longer_than() -> dict[str, float]:
    """Bucket bound (s) -> how many cycles took longer, from the operator's cycle histogram: where a
    stream's latency tail comes from (the latencies count whole seconds, cycles do not)."""
    family = operator_families().get("transfer_scheduling_cycle_duration_seconds")
    if family is None:
        return {}
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    total = buckets.get("+Inf", 0.0)
    return {le: total - n for le, n in buckets.items() if le != "+Inf" and float(le) >= 1}


SLOW_CYCLE = re.compile(r"slow cycle, ([\d.]+) s: (.*?) \(")


def slow_cycle_stages(log: Path, offset: int) -> dict[str, float]:
    """Mean seconds of each stage over the cycles the operator logged as slow (handlers/scheduling.py
    SLOW_CYCLE_S) in `log` from byte `offset` on, and how many there were."""
    found: list[dict[str, float]] = []
    with log.open("rb") as text:
        text.seek(offset)
        for line in text.read().decode(errors="replace").splitlines():
            matched = SLOW_CYCLE.search(line)
            if matched is None:
                continue
            stages = dict(part.rsplit(" ", 1) for part in matched.group(2).split(", "))
            found.append({"total": float(matched.group(1)), **{k: float(v) for k, v in stages.items()}})
    if not found:
        return {"cycles": 0}
    names = sorted({name for cycle in found for name in cycle})
    means = {name: round(sum(c.get(name, 0.0) for c in found) / len(found), 3) for name in names}
    return {"cycles": len(found), **means}


def stage_seconds() -> dict[str, tuple[float, float]]:
    """stage -> (seconds, cycles) so far, from the operator's own histogram."""
    found: dict[str, list[float]] = {}
    family = operator_families().get("transfer_scheduling_cycle_stage_seconds")
    if family is not None:
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name.endswith("_sum"):
                found.setdefault(stage, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_count"):
                found.setdefault(stage, [0.0, 0.0])[1] = sample.value
    return {stage: (values[0], values[1]) for stage, values in found.items()}


def wait_for_metrics(timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            stage_seconds()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@dataclass
class Operator:
    """Our operator as the chart's ServiceAccount, outside a pod (stopped and started per size)."""

    cluster: devcluster.Cluster
    workdir: Path
    kubeconfig: Path
    qps: float
    burst: int

    @classmethod
    def install(cls, cluster: devcluster.Cluster, workdir: Path, qps: float, burst: int) -> Operator:
        chart = str(ROOT / "charts/transfer-operator")
        cluster.helm(
            "upgrade", "--install", "transfer-operator", chart, "-n", "transfer-system",
            "--create-namespace", "--set", "replicas=0",
        )  # fmt: skip
        kubeconfig = cluster.service_account_kubeconfig(
            "transfer-operator", "transfer-system", workdir / "sa-kubeconfig", duration="4h"
        )
        return cls(cluster, workdir, kubeconfig, qps, burst)

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "POD_NAMESPACE": "transfer-system",
            "TRANSFER_METRICS_PORT": str(METRICS_PORT),
            "TRANSFER_KUBE_QPS": str(self.qps),
            "TRANSFER_KUBE_BURST": str(self.burst),
        }
        return subprocess.Popen(
            [sys.executable, "-m", "transfer_operator.cli", "operator", "--standalone"],
            env=env,
            stdout=(self.workdir / "operator.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def create_all(create: Callable[[int], Any], count: int, rate: float | None = None) -> tuple[float, list[Any]]:
    """Create the `count` workloads with 16 threads: as fast as they go, or the i-th at i / `rate`
    seconds from the start (an open-loop arrival rate; a creation late for its slot goes at once)."""
    started = time.time()

    def paced(i: int) -> Any:
        if rate is not None:
            time.sleep(max(0.0, started + i / rate - time.time()))
        return create(i)

    with ThreadPoolExecutor(16) as pool:
        created = list(pool.map(paced, range(count)))
    return time.time() - started, created


def summarize(
    times: list[tuple[float, float]], count: int, since: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """times: (created, admitted) of each admitted object; `since`: when the clock starts (the
    controller's start in backlog mode, the first creation in stream mode)."""
    latencies = sorted(admitted - max(created, since) for created, admitted in times)
    last = max(admitted for _, admitted in times)
    return {
        "jobs": count,
        "admitted": len(times),
        "admitted_per_second": len(times) / max(1.0, last - since),
        "latency_p50_s": statistics.median(latencies),
        "latency_p99_s": latencies[int(0.99 * (len(latencies) - 1))],
        **extra,
    }


class AdmissionWatch:
    """Every RayJob of a namespace, from one watch started before the first is created: when each
    workload was admitted, by `admitted(rayjob)` -> (workload name, admission time) or None. A
    watch is served from the API server's watch cache, each event once; the polls it replaced
    listed every RayJob every few seconds, load on the API server being measured (and at 50,000
    a full list broke off)."""

    def __init__(
        self, api_client: Any, namespace: str, admitted: Callable[[dict[str, Any]], tuple[str, str] | None]
    ):
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.admitted = admitted
        self.times: dict[str, float] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="admission-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        version = ""
        while not self.stopped.is_set():
            try:
                for event in watch.Watch().stream(
                    self.custom.list_namespaced_custom_object, "ray.io", "v1", self.namespace, "rayjobs",
                    resource_version=version, allow_watch_bookmarks=True, timeout_seconds=120,
                ):  # fmt: skip
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion") or version
                    found = self.admitted(obj) if event["type"] in ("ADDED", "MODIFIED") else None
                    if found is not None:
                        self.times.setdefault(found[0], parse_time(found[1]))
                    if self.stopped.is_set():
                        return
            except ApiException as error:
                if error.status != 410:
                    raise
                version = ""  # expired: start again from the current state (an event for each)
            except Exception:  # a broken stream resumes from the last version; at the end, stop
                if self.stopped.is_set():
                    return
                time.sleep(1)

    def wait(self, created: list[Any], timeout_s: float = 7200) -> list[tuple[float, float]]:
        """(created, admitted) of each of `created` (the objects the creates returned) admitted,
        once all are (or the time is up)."""
        deadline = time.time() + timeout_s
        while len(self.times) < len(created) and time.time() < deadline and self.thread.is_alive():
            time.sleep(0.5)
        self.stopped.set()
        created_at = {o["metadata"]["name"]: parse_time(o["metadata"]["creationTimestamp"]) for o in created}
        return [(created_at[name], at) for name, at in dict(self.times).items() if name in created_at]


def list_metadata(api_client: Any, group: str, version: str, namespace: str, plural: str) -> list[dict[str, Any]]:
    """The objects' metadata only (PartialObjectMetadataList), a page at a time: a full list of
    50,000 RayJobs is over 100 MB (at 50,000 one broke off)."""
    items: list[dict[str, Any]] = []
    page = ""
    while True:
        query = urllib.parse.urlencode([("limit", PAGE)] + ([("continue", page)] if page else []))
        response = api_client.call_api(
            "GET",
            f"{api_client.configuration.host}/apis/{group}/{version}/namespaces/{namespace}/{plural}?{query}",
            header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
        )
        response.read()
        listed = json.loads(response.data)
        items.extend(listed.get("items") or [])
        page = (listed.get("metadata") or {}).get("continue") or ""
        if not page:
            return items


def remove_namespace(api_client: Any, namespace: str, timeout_s: float = 1800) -> float:
    """Delete a run's namespace and wait until it is gone (seconds taken): the next run starts on a
    control plane that holds no object of this one. Kueue watches every RayJob of the cluster, and
    objects left behind cost the next run's API server and controller (Kueue started on a
    cluster that still held our 10,000 RayJobs, Secrets and TransferJobs)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    started = time.time()
    core.delete_namespace(namespace)
    while time.time() - started < timeout_s:
        try:
            core.read_namespace(namespace)
        except ApiException as error:
            if error.status == 404:
                return time.time() - started
            raise
        time.sleep(2)
    raise TimeoutError(f"namespace {namespace} still there after {timeout_s:.0f} s")


def run_ours(
    cluster: devcluster.Cluster, operator: Operator, apiserver_pid: int, count: int, mode: str, rate: float | None
) -> dict[str, Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    custom = client.CustomObjectsApi(api_client)
    namespace = f"bench-{count}-{int(time.time())}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})

    def create(i: int) -> Any:
        return custom.create_namespaced_custom_object(
            "transfer.dev", "v1alpha1", namespace, "transferjobs", job(f"tj-{i}", i)
        )

    def admitted(rayjob: dict[str, Any]) -> tuple[str, str] | None:
        """Admitted is when its RayJob landed in the API server, not the cycle's
        `status.admittedAt` (the cycle's start: a cycle's writes take longer)."""
        return kueue_baseline.owner_name(rayjob), rayjob["metadata"]["creationTimestamp"]

    admissions = AdmissionWatch(api_client, namespace, admitted)
    log = operator.workdir / "operator.log"
    log_offset = log.stat().st_size if log.exists() else 0
    api_before = cpu_seconds(apiserver_pid)
    if mode == "backlog":
        created_s, created = create_all(create, count)
        started = time.time()
        process = operator.start()
    else:
        process = operator.start()
        wait_for_metrics()
        started = time.time()
        created_s, created = create_all(create, count, rate)
    try:
        times = admissions.wait(created)
        stages = stage_seconds()
        long_cycles = cycles_longer_than()
        operator_cpu = cpu_seconds(process.pid)
        apiserver_cpu = cpu_seconds(apiserver_pid) - api_before
        memory = {"apiserver": memory_gb(apiserver_pid), "controller": memory_gb(process.pid)}
    finally:
        stop(process)
    rayjobs = list_metadata(api_client, "ray.io", "v1", namespace, "rayjobs")
    policies = client.NetworkingV1Api(api_client).list_namespaced_network_policy(namespace).items
    removed_s = remove_namespace(api_client, namespace)
    cycles = stages.get("read", (0.0, 0.0))[1]
    return summarize(
        times,
        count,
        started,
        {
            "system": "transfer-operator",
            "mode": mode,
            "rate": rate,
            "create_seconds": created_s,
            "controller_cpu_s": operator_cpu,
            "apiserver_cpu_s": apiserver_cpu,
            # GB when all were admitted; kube-apiserver's peak counts every run before this one too
            "memory_gb": memory,
            "objects_per_workload": len(rayjobs) / count,  # 1.0: no RayJob missing or doubled
            "networkpolicies_per_job": len(policies) / count,
            "namespace_removed_s": removed_s,
            "cycles": cycles,
            # Mean seconds per cycle of each stage (reconcile runs every 10 s, not every cycle).
            "mean_stage_seconds": {k: round(v[0] / max(1.0, v[1]), 3) for k, v in stages.items()},
            "cycles_longer_than_s": long_cycles,
            # Over the cycles longer than 1 s, from the operator's log: their count, mean total
            # and mean seconds of each stage ("other": the passes between the stages).
            "slow_cycles": slow_cycle_stages(log, log_offset),
        },
    )


def run_kueue(
    cluster: devcluster.Cluster,
    workdir: Path,
    kueue_config: Path,
    apiserver_pid: int,
    count: int,
    mode: str,
    rate: float | None,
) -> dict[str, Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    custom = client.CustomObjectsApi(api_client)
    namespace = f"kueue-{count}-{int(time.time())}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    kueue_baseline.local_queue(cluster, namespace)

    def create(i: int) -> Any:
        transferjob = job(f"tj-{i}", i)
        transferjob["metadata"]["namespace"] = namespace
        rayjob = kueue_baseline.equivalent_rayjob(transferjob, POOLS[0])
        return custom.create_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", rayjob)

    def admitted(rayjob: dict[str, Any]) -> tuple[str, str] | None:
        """Admitted is when Kueue's update that unsuspended the RayJob landed."""
        at = kueue_baseline.unsuspended_at(rayjob)
        return None if at is None else (rayjob["metadata"]["name"], at)

    admissions = AdmissionWatch(api_client, namespace, admitted)
    api_before = cpu_seconds(apiserver_pid)
    if mode == "backlog":
        created_s, created = create_all(create, count)
        started = time.time()
        process = kueue_baseline.start(cluster, workdir, kueue_config)
    else:
        process = kueue_baseline.start(cluster, workdir, kueue_config)
        started = time.time()
        created_s, created = create_all(create, count, rate)
    try:
        times = admissions.wait(created)
        kueue_cpu = cpu_seconds(process.pid)
        apiserver_cpu = cpu_seconds(apiserver_pid) - api_before
        memory = {"apiserver": memory_gb(apiserver_pid), "controller": memory_gb(process.pid)}
        workloads = list_metadata(api_client, kueue_baseline.GROUP, kueue_baseline.API, namespace, "workloads")
        removed_s = remove_namespace(api_client, namespace)  # Kueue takes its finalizers off the Workloads
    finally:
        stop(process)
    return summarize(
        times,
        count,
        started,
        {
            "system": f"kueue {kueue_baseline.VERSION}",
            "mode": mode,
            "rate": rate,
            "create_seconds": created_s,
            "controller_cpu_s": kueue_cpu,
            "apiserver_cpu_s": apiserver_cpu,
            # GB when all were admitted; kube-apiserver's peak counts every run before this one too
            "memory_gb": memory,
            "objects_per_workload": len(workloads) / count,  # Workloads per RayJob: 1.0
            "namespace_removed_s": removed_s,
        },
    )


HEADER = (
    f"{'system':<20}{'mode':>8}{'jobs':>7}{'admitted/s':>12}{'p50 s':>8}{'p99 s':>8}"
    f"{'ctl CPU s':>10}{'api CPU s':>10}{'obj/job':>8}"
)


def line(row: dict[str, Any]) -> str:
    return (
        f"{row['system']:<20}{row['mode']:>8}{row['jobs']:>7}{row['admitted_per_second']:>12.1f}"
        f"{row['latency_p50_s']:>8.1f}{row['latency_p99_s']:>8.1f}{row['controller_cpu_s']:>10.1f}"
        f"{row['apiserver_cpu_s']:>10.1f}{row['objects_per_workload']:>8.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--mode", choices=["backlog", "stream"], default="backlog")
    parser.add_argument("--rate", type=float, help="stream mode: workloads created per second")
    parser.add_argument("--no-kueue", action="store_true", help="only ours")
    parser.add_argument("--kueue-first", action="store_true", help="at each size, Kueue's run before ours")
    parser.add_argument("--qps", type=float, default=600.0, help="both controllers' client QPS")
    parser.add_argument("--burst", type=int, default=1200, help="both controllers' client burst")
    parser.add_argument("--out", type=Path, default=Path("docs/results/e2e_admission.json"))
    args = parser.parse_args()
    if args.rate is not None and args.mode != "stream":
        parser.error("--rate is for --mode stream")
    workdir = Path(tempfile.mkdtemp(prefix="e2e-admission-"))
    kueue_config = None
    if not args.no_kueue:
        kueue_baseline.binary()  # built once from the Go module proxy, before any clock starts
        kueue_config = kueue_baseline.configuration(workdir, args.qps, args.burst)
    cluster = devcluster.up(workdir / "cluster", pools=[], kuberay=False)
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(cluster.bin_dir / "crds" / "kuberay"))
        operator = Operator.install(cluster, workdir, args.qps, args.burst)  # helm installs our CRDs first
        cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(p) for p in POOLS))
        if kueue_config is not None:
            kueue_baseline.install(cluster, POOLS)
        apiserver_pid = cluster.pids["kube-apiserver"]
        rows: list[dict[str, Any]] = []
        print(HEADER, flush=True)
        for count in args.jobs:
            pair: dict[str, dict[str, Any]] = {}
            for system in ("kueue", "ours") if args.kueue_first else ("ours", "kueue"):
                if system == "ours":
                    row = run_ours(cluster, operator, apiserver_pid, count, args.mode, args.rate)
                    print(line(row), f" stages={row['mean_stage_seconds']} cycles>s={row['cycles_longer_than_s']}")
                    print(f"  slow cycles: {row['slow_cycles']}", flush=True)
                elif kueue_config is not None:
                    row = run_kueue(cluster, workdir, kueue_config, apiserver_pid, count, args.mode, args.rate)
                    print(line(row), flush=True)
                else:
                    continue
                pair[system] = row
                rows.append(row)
            if len(pair) == 2:
                ratio = pair["ours"]["admitted_per_second"] / max(1e-9, pair["kueue"]["admitted_per_second"])
                print(f"{'':<20}{'':>8}{count:>7}  ours / Kueue admitted/s = {ratio:.2f}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "machine": machine(),
                "qps": args.qps,
                "burst": args.burst,
                "order": "kueue first" if args.kueue_first else "ours first",
                "rows": rows,
            }
            args.out.write_text(json.dumps(record, indent=2))  # after each size: partial runs count
        print(f"wrote {args.out}")
    finally:
        devcluster.down(workdir / "cluster")


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": os.getloadavg()}


if __name__ == "__main__":
    main()
