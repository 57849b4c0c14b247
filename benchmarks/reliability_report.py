"""Runs the fault-injection suite on the real control plane and writes docs/reliability.md.

    python benchmarks/reliability_report.py --runs 100 --report docs/results/reliability.jsonl  # full (~10 min)
    python benchmarks/reliability_report.py --runs 10      # what CI runs

Every row comes from the run: faults injected, jobs lost, duplicated or inconsistent, and the
seconds until the invariants held again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOW = {
    "operator SIGKILL at a random point": "SIGKILL of the operator process 0.3-4 s after each start, then a final start",
    "two operator replicas at once": "two processes with kopf peering (priorities 100, 99) and the scheduler Lease",
    "kube-apiserver SIGKILL and restart mid-run": "SIGKILL of kube-apiserver, restarted 2 s later; a new job created after",
    "watch expiry (410 Gone: etcd compacted, API server restarted)": "operator SIGSTOPped; a job created, one deleted, etcd compacted to its revision, kube-apiserver restarted; SIGCONT: every watch resumes from a gone resourceVersion",
    "node NotReady under a running job": "kwok stops heartbeating the job's nodes (annotation removed), Ready=False",
    "spot interruption taint on a job's node": "taint transfer.dev/spot-interruption on the job's nodes",
    "node deleted under a running job": "kubectl delete node on the job's nodes",
    "interrupted training resumes at its checkpoint": "real training of attempt 1 on a local Ray, spot taint, attempt 2's RayJob run",
    "worker cluster loss during real training (resumed from S3)": "real training of attempt 1 (the RayJob in one worker, run on a local Ray) checkpointing to SeaweedFS under the operator's checkpointRoot; that worker's kube-apiserver SIGKILLed for 30 s; attempt 2's RayJob in the other worker resumes at the last S3 step and writes the final model to S3; recovery = kill to re-placed",
    "S3 outage during training": "SeaweedFS stopped under a training attempt that checkpoints to it; the attempt exits 1 naming the storage (recovery = outage to exit); the store restarted: every earlier checkpoint intact, attempt 2 resumes from the last complete one and finishes",
    "a NodeClaim that never becomes ready": "elastic pool (Karpenter kwok provider) whose KWOKNodeClass registers nodes after 1 h; provisioningTimeoutSeconds 20: the job goes back to the queue (ProvisioningTimedOut) and the claim is deleted; recovery = claim seen to job re-queued",
    "Karpenter disrupts the node under a running job": "kubectl delete nodeclaim under a running job's pods: Karpenter taints the node karpenter.sh/disrupted and drains it; the job is re-queued and placed again on a node bought anew; recovery = delete to re-placed",
    "an elastic gang grows into freed GPUs (restart at 2 workers)": "a 1..2-worker gang runs on 1 of 2 H100 nodes beside another job, which ends and is deleted; the gang is restarted at 2 workers from its checkpoint as attempt 2 (maxAttempts 1); recovery = the other job's end to the resize written, on the API server's 1-s timestamps (0: the same cycle)",
    "a higher-priority job shrinks a running elastic gang (restart at 1 worker)": "a 1..2-worker gang runs on both H100 nodes; a priority-9 job of 1 node comes: the gang is restarted at 1 worker (not preempted) and both run; recovery = apply to the new job Running",
    "worker cluster loss (kube-apiserver SIGKILL)": "3 clusters (dev-cluster --clusters 2), two jobs in one worker; its kube-apiserver SIGKILLed for 20 s (clusterLostAfterSeconds 10), started again; the jobs move to the other worker and back on the next loss; recovery = kill to both re-placed",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument(
        "--report", type=Path, help="the tests' JSON lines (kept here; rendered again if present)"
    )
    args = parser.parse_args()
    report = args.report or Path(tempfile.mkstemp(suffix=".jsonl")[1])
    if not (args.report and report.exists()):  # else: a finished run, rendered again
        env = {
            **os.environ,
            "TRANSFER_FAULT_RUNS": str(args.runs),
            "TRANSFER_FAULT_REPORT": str(report),
            "TRANSFER_CLUSTER_LOSSES": str(min(args.runs, 20)),
        }
        tests = [
            "tests/e2e/test_faults.py",
            "tests/e2e/test_failover.py",
            "tests/e2e/test_bad_input.py",
            "tests/e2e/test_multicluster.py",
            "tests/e2e/test_s3_outage.py",
            "tests/e2e/test_elastic.py",  # skips without the Karpenter build
            "tests/e2e/test_growth.py",
        ]
        returncode = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT, env=env
        ).returncode
        with report.open("a") as out:
            out.write(json.dumps({"pytest_exit": returncode}) + "\n")
    records = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    rows = [r for r in records if "fault" in r]
    returncode = next((r["pytest_exit"] for r in records if "pytest_exit" in r), -1)
    corpus = len(list((ROOT / "tests" / "corpus" / "bad").glob("*.yaml")))
    lines = [
        "# Reliability",
        "",
        f"Generated by `python benchmarks/reliability_report.py --runs {args.runs} --report FILE` on the real",
        "control plane (docs/controlplane.md); the rows are kept in FILE (this one: docs/results/reliability.jsonl),",
        "and an existing FILE is only rendered again. CI runs the same tests with 10 kills. Invariants checked",
        "after every fault: each TransferJob still exists; one that holds GPUs (Admitted, Running) has exactly one",
        "live RayJob, the one named in its status; a finished one (Succeeded, Failed) at most its own; a queued one",
        "none. During the kill loop the RayJobs stay live (no kwok-completed submitter), so jobs hold GPUs throughout.",
        "",
        "| fault | how injected | runs | jobs lost | duplicates | inconsistent | recovery (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        later = " (a later run: " + row["run"] + ")" if row.get("run") else ""
        lines.append(
            f"| {row['fault']} | {HOW.get(row['fault'], '')}{later} | {row['runs']} | {row['lost']} | "
            f"{row['duplicated']} | {row['inconsistent']} | {row['recovery_s']} |"
        )
    lines += [
        "",
        f"Test outcome: {'passed' if returncode == 0 else 'FAILED (exit ' + str(returncode) + ')'}.",
        "",
        "## Bad input",
        "",
        f"`tests/corpus/bad/` holds {corpus} invalid TransferJobs and GPUPools (generated by",
        "`tests/corpus/make_corpus.py`): schema and CEL errors are refused by the API server with a message naming",
        "the field (`tests/e2e/test_bad_input.py`), semantic ones (a GPU type, region, gang, price or budget no pool",
        "can satisfy) get `Ready=False` with reason `InvalidSpec` or `BudgetTooLow`, and the operator keeps running.",
        "Hypothesis fuzzes validation (`tests/unit/api/test_fuzz.py`) and the scheduler",
        "(`tests/unit/scheduler/test_properties.py`); `TRANSFER_FUZZ_EXAMPLES=10000` runs the long version.",
        "",
        "## Node faults and resume",
        "",
        "`tests/e2e/test_failover.py` breaks the nodes under a running job's pods on kwok: NotReady (kwok stops",
        "heartbeating the node), a spot interruption taint, a deleted node. Each time the job is preempted at once",
        "(`NodeLost` or `SpotInterrupted`), its RayJob deleted, and attempt 2 placed on capacity that is still",
        "there. The last row follows real training across the interruption: attempt 1's RayJob entrypoint and",
        "environment run on a local Ray until a checkpoint exists, the node gets the spot taint, and attempt 2's",
        "RayJob, run the same way, resumes from the last checkpoint's step and finishes the run (its first new",
        "checkpoint is one interval after the interrupted step).",
        "",
        "## Worker clusters and shared storage",
        "",
        "`tests/e2e/test_multicluster.py` runs three clusters (`dev-cluster up --clusters 2`) and SeaweedFS. The",
        "loss rows SIGKILL a worker's kube-apiserver; the real-training row does it under a job whose attempt 1",
        "checkpoints to S3 (the operator's `storage.checkpointRoot`), and attempt 2, dispatched to the other",
        "worker, resumes at the last S3 step and publishes its model to S3. `tests/e2e/test_s3_outage.py` stops",
        "the store itself under training: the attempt fails with exit code 1 and last lines that name the",
        "storage (what KubeRay puts in the RayJob's message and the operator in the job's `Failed` condition),",
        "and nothing written before the outage is lost.",
        "",
        "## Not covered",
        "",
        "- A pool-level interruption notice (a field in GPUPool status): platforms announce interruptions per",
        "  node, so the operator reads node taints and readiness instead.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    sys.exit(returncode)


if __name__ == "__main__":
    main()
