"""Client-side CPU of each API write an admission makes, one thread, on an idle dev control plane:
what the operator's writer threads cannot go below whatever the cycle does.

    python benchmarks/client_write_cost.py [--writes 400]

For the token Secret create, the RayJob create and the TransferJob status patch (a merge patch
of the status an admission writes): the CPU time of the calling thread and the wall time per
write, through the official client as the operator calls it, and the same request through the
client's own urllib3 pool with the body serialized by `json.dumps` (what a hand-written client
would at best save). The RayJob is the one the operator renders for the e2e benchmark's jobs.
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import e2e_admission  # noqa: E402  (benchmarks/ is on the path when run as a script)
from kubernetes import client, config

from transfer_operator import devcluster
from transfer_operator.api.models import GPUPool
from transfer_operator.api.validation import parse_transferjob
from transfer_operator.engine.rayjob import PoolPin, render_rayjob

NAMESPACE = "write-cost"
ADMITTED_STATUS = {
    "phase": "Admitted",
    "attempts": 1,
    "placements": 1,
    "admittedAt": "2026-12-07T10:00:01Z",
    "rayJobName": "tj-a1",
    "placement": {
        "pool": "eu-west-a100-0",
        "region": "eu-west",
        "gpuType": "A100",
        "priceClass": "onDemand",
        "usdPerGpuHour": 3.4,
        "usdPerHour": 6.8,
        "gpus": 2,
    },
}


def per_write(count: int, write: Callable[[int], Any]) -> tuple[float, float]:
    """(CPU ms, wall ms) per write of this thread over `count` writes."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(count):
        write(i)
    return 1000 * (time.thread_time() - cpu) / count, 1000 * (time.perf_counter() - wall) / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=400, help="writes of each kind and way")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="write-cost-"))
    cluster = devcluster.up(workdir / "cluster", pools=[], kuberay=False)
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(cluster.bin_dir / "crds" / "kuberay"))
        e2e_admission.Operator.install(cluster, workdir, qps=0, burst=0)  # the chart's CRDs; no operator runs
        api = config.new_client_from_config(str(cluster.kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        pool_manager, host = api.rest_client.pool_manager, api.configuration.host
        headers = {"Content-Type": "application/json", "Accept": "application/json"}

        def raw(method: str, path: str, body: dict[str, Any], content_type: str = "application/json") -> Any:
            answer = pool_manager.request(
                method, host + path, body=json.dumps(body).encode(), headers={**headers, "Content-Type": content_type}
            )
            assert answer.status in (200, 201), answer.data
            return json.loads(answer.data)

        def secret(name: str) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "stringData": {"auth_token": secrets.token_urlsafe(32)},
            }

        def client_secret(i: int) -> None:  # as handlers/kube.py create_owned: the answer unread
            answer = core.create_namespaced_secret(NAMESPACE, secret(f"a-{i}"), _preload_content=False)
            answer.drain_conn()
            answer.release_conn()

        transferjob = e2e_admission.job("tj", 1)
        transferjob["metadata"].update(namespace=NAMESPACE, uid="0")
        pool = GPUPool.model_validate(e2e_admission.POOLS[0])
        rendered = render_rayjob(
            parse_transferjob(transferjob), PoolPin.of(pool.metadata.name, pool.spec), 1, token_auth=True
        )

        def rayjob(name: str) -> dict[str, Any]:
            manifest = copy.deepcopy(rendered)
            manifest["metadata"].update(name=name, namespace=NAMESPACE)
            return manifest

        for i in range(args.writes):  # the TransferJobs whose status the patches write
            custom.create_namespaced_custom_object(
                "transfer.dev", "v1alpha1", NAMESPACE, "transferjobs", {**transferjob, "metadata": {"name": f"tj-{i}"}}
            )
        tj_path = f"/apis/transfer.dev/v1alpha1/namespaces/{NAMESPACE}/transferjobs"
        rows = [
            ("token Secret create", "client", per_write(args.writes, client_secret)),
            ("token Secret create", "urllib3 + json", per_write(
                args.writes, lambda i: raw("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", secret(f"b-{i}")))),
            ("RayJob create", "client", per_write(args.writes, lambda i: custom.create_namespaced_custom_object(
                "ray.io", "v1", NAMESPACE, "rayjobs", rayjob(f"a-{i}")))),
            ("RayJob create", "urllib3 + json", per_write(
                args.writes, lambda i: raw("POST", f"/apis/ray.io/v1/namespaces/{NAMESPACE}/rayjobs", rayjob(f"b-{i}")))),
            ("status merge patch", "client", per_write(args.writes, lambda i: custom.patch_namespaced_custom_object_status(
                "transfer.dev", "v1alpha1", NAMESPACE, "transferjobs", f"tj-{i}", {"status": ADMITTED_STATUS}))),
            ("status merge patch", "urllib3 + json", per_write(args.writes, lambda i: raw(
                "PATCH", f"{tj_path}/tj-{i}/status", {"status": {**ADMITTED_STATUS, "attempts": 2}},
                "application/merge-patch+json"))),
        ]  # fmt: skip
        print(f"{'write':<22}{'through':<17}{'CPU ms':>8}{'wall ms':>9}   ({args.writes} each, one thread)")
        for write, way, (cpu_ms, wall_ms) in rows:
            print(f"{write:<22}{way:<17}{cpu_ms:>8.2f}{wall_ms:>9.2f}")
    finally:
        devcluster.down(workdir / "cluster")


if __name__ == "__main__":
    main()
