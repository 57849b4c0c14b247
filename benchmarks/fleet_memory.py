"""Memory of the watch-fed index per 10,000 TransferJobs (what the operator holds in place of a
LIST per cycle), and the time of the cycle's read stage over it.

    python benchmarks/fleet_memory.py --jobs 10000 50000

Each TransferJob body is what the API server returns for an admitted job (metadata with uid,
resourceVersion, generation, a managedFields entry; spec as the benchmark submits it; status with
placement and conditions). The bodies go through the index's own `JobStore.replace` (slimmed and
parsed once, as the informer does on a list); tracemalloc measures what the store keeps after the
input list is dropped.

The read stage is `handlers/fleet.read_fleet` (the cycle's view copied from the store's job view)
plus the deleted-job check, best of 5, beside the pass over every job it replaced (the code of
`read_fleet` and `finalize_deleted` before 7 December 2026), on the same store in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.engine.node_health import attempt_of
from transfer_operator.handlers.clusters import finalize_deleted
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.fleet import read_fleet
from transfer_operator.handlers.informer import JobStore

READS = 5


def api_body(i: int) -> dict[str, Any]:
    body = transferjob_manifest(
        f"tj-{i}",
        namespace=f"team-{i % 20}",
        dataset={"uri": "builtin:rotten-tomatoes", "format": "builtin"},
        resources={"workers": 1 + i % 4, "gpusPerWorker": 1, "estimatedHours": 0.5},
        placement={"spot": i % 2 == 0},
    )
    body["metadata"].update(
        uid=f"5f0c6a1e-{i:08d}-4c1b-9a7e-2d4f1b0c9e11",
        resourceVersion=str(100000 + i),
        generation=1,
        creationTimestamp="2026-12-02T08:00:00Z",
        managedFields=[
            {
                "manager": "python-kubernetes",
                "operation": "Update",
                "apiVersion": "transfer.dev/v1alpha1",
                "time": "2026-12-02T08:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:dataset": {".": {}, "f:uri": {}, "f:format": {}}, "f:resources": {}}},
            }
        ],
    )
    body["status"] = {
        "phase": "Admitted",
        "message": "placed on eu-west-a100-0 (onDemand, $3.40/GPU-h)",
        "attempts": 1,
        "rayJobName": f"tj-{i}-a1",
        "admittedAt": "2026-12-02T08:00:02Z",
        "costAccruedAt": "2026-12-02T08:00:02Z",
        "lastCheckpoint": f"/tmp/transfer-checkpoints/team-{i % 20}/tj-{i}",
        "placement": {
            "pool": "eu-west-a100-0",
            "region": "eu-west",
            "zone": "",
            "gpuType": "A100",
            "priceClass": "onDemand",
            "usdPerGpuHour": 3.4,
            "usdPerHour": 3.4,
            "gpus": 1,
        },
        "conditions": [
            {"type": t, "status": "True", "reason": "Admitted", "message": "placed", "lastTransitionTime": "2026-12-02T08:00:02Z"}
            for t in ("Ready", "Admitted")
        ],
    }
    return body


def measure(count: int) -> dict[str, float]:
    wire = [json.dumps(api_body(i)) for i in range(count)]
    wire_bytes = sum(len(text) for text in wire)
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    bodies = [json.loads(text) for text in wire]  # as the list or watch decodes them
    del wire
    store = JobStore()
    store.replace(bodies)
    del bodies
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(store) == count
    held = after - before
    return {
        "jobs": count,
        "index_mb": round(held / 2**20, 1),
        "mb_per_10k": round(held / 2**20 * 10000 / count, 1),
        "json_mb": round(wire_bytes / 2**20, 1),
        "read_ms": round(best_of(lambda: read_stage(store)) * 1000, 2),
        "full_pass_ms": round(best_of(lambda: full_pass(store)) * 1000, 2),
    }


def read_stage(store: JobStore) -> None:
    ctx = Ctx(kube=None, config=OperatorConfig(), identity="bench", lease_namespace="bench")  # type: ignore[arg-type]
    ctx.index.transferjobs = store
    fleet = read_fleet(ctx)
    finalize_deleted(ctx, fleet.jobs, fleet.deleting)
    assert len(fleet.jobs) == len(store)


def full_pass(store: JobStore) -> None:
    """What the read stage did before: a pass over every job of the store."""
    parsed = store.values()
    jobs = {job.key: (body, job) for body, job, _ in parsed if job}
    invalid = [(body, problems) for body, _, problems in parsed if problems]
    holding = {attempt_of(job) for _, job in jobs.values() if job.status.phase.holds_capacity}
    deleting = [key for key, (body, _) in jobs.items() if body["metadata"].get("deletionTimestamp")]
    assert len(jobs) == len(store) and not invalid and holding and not deleting


def best_of(read: Callable[[], None]) -> float:
    times = []
    for _ in range(READS):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--out", type=Path, default=Path("docs/results/fleet_memory.json"))
    args = parser.parse_args()
    rows = [measure(count) for count in args.jobs]
    print(f"{'jobs':>8}{'index MB':>10}{'MB/10k':>8}{'as JSON MB':>12}{'read ms':>9}{'full pass ms':>14}")
    for row in rows:
        print(
            f"{row['jobs']:>8}{row['index_mb']:>10}{row['mb_per_10k']:>8}{row['json_mb']:>12}"
            f"{row['read_ms']:>9}{row['full_pass_ms']:>14}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/fleet_memory.py --jobs " + " ".join(map(str, args.jobs)), "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
