"""TransferJobs admitted per second through the real API server, with the operator running as
the chart's ServiceAccount.

    python benchmarks/e2e_admission.py --jobs 1000 5000 10000

For each size: a fresh namespace, N TransferJobs created as fast as the client can, then wait
until every one is Admitted (status.admittedAt, written by the operator, and the API server's
creationTimestamp give the latency). GPUPools in three regions hold enough GPUs for all. The
KubeRay CRDs are installed but no KubeRay operator runs: the RayJobs are created and stay idle,
so the figure is the operator's own admission rate. Reports CPU seconds of the operator and of
kube-apiserver.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from transfer_operator import devcluster
from transfer_operator.api.manifests import gpupool_manifest, transferjob_manifest

ROOT = Path(__file__).resolve().parents[1]

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


def job(name: str, i: int) -> dict[str, Any]:
    return transferjob_manifest(
        name,
        dataset={"uri": "builtin:rotten-tomatoes", "format": "builtin"},
        resources={"workers": 1 + i % 4, "gpusPerWorker": 1, "estimatedHours": 0.5},
        placement={"spot": i % 2 == 0},
    )


def all_jobs(custom: Any) -> list[dict[str, Any]]:
    return list(custom.list_cluster_custom_object("transfer.dev", "v1alpha1", "transferjobs")["items"])


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


METRICS_PORT = 18391  # the operator's /metrics, for the cycle's stage timings


def stage_seconds() -> dict[str, tuple[float, float]]:
    """stage -> (seconds, cycles) so far, from the operator's own histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).read().decode()
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "transfer_scheduling_cycle_stage_seconds":
            continue
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


def start_operator(cluster: devcluster.Cluster, workdir: Path) -> subprocess.Popen[bytes]:
    chart = str(ROOT / "charts/transfer-operator")
    cluster.helm(
        "upgrade",
        "--install",
        "transfer-operator",
        chart,
        "-n",
        "transfer-system",
        "--create-namespace",
        "--set",
        "replicas=0",
    )
    kubeconfig = cluster.service_account_kubeconfig(
        "transfer-operator", "transfer-system", workdir / "sa-kubeconfig", duration="4h"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "POD_NAMESPACE": "transfer-system",
        "TRANSFER_METRICS_PORT": str(METRICS_PORT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "transfer_operator.cli", "operator", "--standalone"],
        env=env,
        stdout=(workdir / "operator.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_size(
    cluster: devcluster.Cluster, operator_pid: int, apiserver_pid: int, count: int
) -> dict[str, float]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    custom = client.CustomObjectsApi(api_client)
    namespace = f"bench-{count}-{int(time.time())}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    cpu_before = cpu_seconds(operator_pid), cpu_seconds(apiserver_pid)
    stages_before = stage_seconds()
    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: custom.create_namespaced_custom_object(
                    "transfer.dev", "v1alpha1", namespace, "transferjobs", job(f"tj-{i}", i)
                ),
                range(count),
            )
        )
    created_s = time.time() - started
    while True:
        items = custom.list_namespaced_custom_object("transfer.dev", "v1alpha1", namespace, "transferjobs")[
            "items"
        ]
        admitted = [i for i in items if (i.get("status") or {}).get("admittedAt")]
        if len(admitted) == count or time.time() - started > 3600:
            break
        time.sleep(2)
    cpu_after = cpu_seconds(operator_pid), cpu_seconds(apiserver_pid)
    stages_after = stage_seconds()
    # Mean seconds per cycle of each stage during this size (reconcile runs every 10 s, not every cycle).
    stages = {
        stage: round(
            (total - stages_before.get(stage, (0.0, 0.0))[0])
            / max(1.0, count - stages_before.get(stage, (0.0, 0.0))[1]),
            3,
        )
        for stage, (total, count) in stages_after.items()
    }
    cycles = stages_after.get("read", (0.0, 0.0))[1] - stages_before.get("read", (0.0, 0.0))[1]
    rayjobs = custom.list_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs")["items"]
    latencies = sorted(
        parse_time(i["status"]["admittedAt"]) - parse_time(i["metadata"]["creationTimestamp"])
        for i in admitted
    )
    first = min(parse_time(i["metadata"]["creationTimestamp"]) for i in items)
    last = max(parse_time(i["status"]["admittedAt"]) for i in admitted)
    return {
        "jobs": count,
        "admitted": len(admitted),
        "create_seconds": created_s,
        "admitted_per_second": len(admitted) / max(1.0, last - first),
        "latency_p50_s": statistics.median(latencies),
        "latency_p99_s": latencies[int(0.99 * (len(latencies) - 1))],
        "operator_cpu_s": cpu_after[0] - cpu_before[0],
        "apiserver_cpu_s": cpu_after[1] - cpu_before[1],
        "wall_s": time.time() - started,
        "rayjobs_per_transferjob": len(rayjobs) / count,  # 1.0: no duplicates
        "cycles": cycles,
        "mean_stage_seconds": stages,
        "jobs_in_cluster": len(all_jobs(custom)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--out", type=Path, default=Path("docs/results/e2e_admission.json"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="e2e-admission-"))
    cluster = devcluster.up(workdir / "cluster", pools=[], kuberay=False)
    operator = None
    try:
        crds = cluster.bin_dir / "crds" / "kuberay"
        cluster.kubectl("apply", "--server-side", "-f", str(crds))
        operator = start_operator(cluster, workdir)  # helm installs our CRDs first
        cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(p) for p in POOLS))
        apiserver_pid = cluster.pids["kube-apiserver"]
        wait_for_metrics()
        rows = []
        print(
            f"{'jobs':>7}{'admitted/s':>12}{'p50 s':>8}{'p99 s':>8}{'op CPU s':>10}{'api CPU s':>10}{'wall s':>8}"
        )
        for count in args.jobs:
            row = run_size(cluster, operator.pid, apiserver_pid, count)
            rows.append(row)
            print(
                f"{count:>7}{row['admitted_per_second']:>12.1f}{row['latency_p50_s']:>8.1f}"
                f"{row['latency_p99_s']:>8.1f}{row['operator_cpu_s']:>10.1f}{row['apiserver_cpu_s']:>10.1f}"
                f"{row['wall_s']:>8.0f}  rayjobs/tj={row['rayjobs_per_transferjob']:.3f}"
                f"  cycles={row['cycles']:.0f} mean stage s={row['mean_stage_seconds']}",
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"rows": rows}, indent=2))  # after each size: partial runs count
        print(f"wrote {args.out}")
    finally:
        if operator is not None:
            os.killpg(operator.pid, signal.SIGTERM)
        devcluster.down(workdir / "cluster")


if __name__ == "__main__":
    main()
