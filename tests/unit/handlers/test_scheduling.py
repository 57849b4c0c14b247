"""The scheduling cycle's writes: admit, wait, preempt, pool loss, attempts — over a FakeKube."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.manifests import gpupool_manifest, transferjob_manifest
from transfer_operator.handlers import scheduling
from transfer_operator.handlers.context import Ctx

from .fake_kube import FakeKube

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


def a_pool(name: str = "eu-a100", nodes: int = 1, **spec: Any) -> dict[str, Any]:
    defaults = {"region": "eu-west", "gpuType": "A100", "gpusPerNode": 8, "pricing": {"onDemandPerGpuHour": 3.0}}
    return gpupool_manifest(name, **{**defaults, "nodes": nodes, **spec})


def a_job(name: str, gpus: int = 8, priority: int = 0, status: dict[str, Any] | None = None, **spec: Any):
    spec = {"resources": {"workers": 1, "gpusPerWorker": gpus}, "priority": priority, **spec}
    job = transferjob_manifest(name, **spec)
    return {**job, "status": status or {}}


def ctx_with(
    *objects: dict[str, Any], kube: FakeKube | None = None, config: OperatorConfig | None = None
) -> tuple[Ctx, FakeKube]:
    kube = kube or FakeKube()
    for obj in objects:
        kube.add(obj)
    config = config or OperatorConfig()
    ctx = Ctx(kube=kube, config=config, identity="test", lease_namespace="ns")  # type: ignore[arg-type]
    ctx.index.connect(kube)
    return ctx, kube


def run_cycle(ctx: Ctx, now: datetime) -> list[Any]:
    """The watches deliver what changed (in the operator they run in their own threads), then a
    cycle, and its admissions are written (in the operator the next cycle need not wait for them)."""
    ctx.index.step_all()
    decisions = scheduling.run_cycle(ctx, now)
    assert ctx.in_flight.drain(timeout_s=30) and ctx.pool_status.drain(timeout_s=30)
    return decisions


def status_of(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.transferjobs[("default", name)]["status"]


def test_admits_writes_status_before_the_rayjob_and_is_idempotent():
    ctx, kube = ctx_with(a_pool(), a_job("a"))
    run_cycle(ctx, NOW)
    status = status_of(kube, "a")
    assert status["phase"] == "Admitted" and status["attempts"] == 1
    assert status["placement"]["pool"] == "eu-a100" and status["placement"]["usdPerHour"] == 24.0
    assert status["rayJobName"] == "a-a1"
    assert status["lastCheckpoint"] == "/tmp/transfer-checkpoints/default/a"
    rayjob = kube.rayjobs[("default", "a-a1")]
    assert rayjob["metadata"]["ownerReferences"][0]["uid"] == "uid-a"
    assert kube.gpupools["eu-a100"]["status"]["allocatedGpus"] == 8
    isolation = {key: obj["metadata"]["ownerReferences"][0]["uid"] for key, obj in kube.owned.items()}
    assert isolation == {  # the token Secret is its RayJob's (outlives its finalizer)
        ("Secret", "default", "a-a1-ray-token"): "uid-default-a-a1",
    }
    assert list(kube.networkpolicies) == [("default", "transfer-operator-jobs")]  # the namespace's
    assert rayjob["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token", "secretName": "a-a1-ray-token"}
    run_cycle(ctx, NOW + timedelta(seconds=2))  # a second cycle changes nothing
    assert list(kube.rayjobs) == [("default", "a-a1")]
    assert status_of(kube, "a")["attempts"] == 1


def test_waiting_job_gets_its_reason_once():
    ctx, kube = ctx_with(a_pool(), a_job("a"), a_job("b"))
    run_cycle(ctx, NOW)
    run_cycle(ctx, NOW + timedelta(seconds=2))
    waiting = [n for n in ("a", "b") if status_of(kube, n)["phase"] == "Pending"]
    assert len(waiting) == 1
    ready = next(c for c in status_of(kube, waiting[0])["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "NoFittingPool" and "most free: 0 on eu-a100" in ready["message"]
    assert sum(1 for e in kube.events if e[0] == waiting[0] and e[2] == "NoFittingPool") == 1


def test_invalid_against_the_fleet_is_invalid_spec():
    ctx, kube = ctx_with(a_pool(), a_job("t4", resources={"workers": 1, "gpusPerWorker": 1, "gpuType": "T4"}))
    run_cycle(ctx, NOW)
    ready = next(c for c in status_of(kube, "t4")["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "no GPUPool offers GPU type T4" in ready["message"]
    assert any(e[1] == "Warning" and e[2] == "InvalidSpec" for e in kube.events)


def test_higher_priority_preempts_then_takes_the_pool():
    ctx, kube = ctx_with(a_pool(), a_job("low", priority=1))
    run_cycle(ctx, NOW)
    kube.add(a_job("high", priority=9))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    low = status_of(kube, "low")
    assert low["phase"] == "Preempted" and "placement" not in low
    assert low["requeueAfter"] == "2026-01-01T01:00:12Z"  # 10 s backoff after the first attempt
    assert ("default", "low-a1") not in kube.rayjobs
    assert status_of(kube, "high")["conditions"][0]["reason"] == "Preempting"
    run_cycle(ctx, NOW + timedelta(seconds=4))
    assert status_of(kube, "high")["phase"] == "Admitted"
    assert ("default", "high-a1") in kube.rayjobs


def test_pool_deleted_sends_its_jobs_elsewhere():
    ctx, kube = ctx_with(a_pool("eu-a100"), a_job("a"))
    run_cycle(ctx, NOW)
    kube.gpupools.pop("eu-a100")
    kube.add(a_pool("us-a100", region="us-east"))
    run_cycle(ctx, NOW + timedelta(seconds=2))  # fails over in the same cycle: no backoff
    assert ("default", "a-a1") not in kube.rayjobs
    assert any(e[0] == "a" and e[2] == "PoolLost" for e in kube.events)
    status = status_of(kube, "a")
    assert status["phase"] == "Admitted" and status["placement"]["region"] == "us-east"
    assert status["attempts"] == 2 and ("default", "a-a2") in kube.rayjobs


def test_out_of_attempts_fails_with_the_reason():
    ctx, kube = ctx_with(a_pool(), a_job("a", maxAttempts=2, status={"phase": "Preempted", "attempts": 2}))
    run_cycle(ctx, NOW)
    status = status_of(kube, "a")
    assert status["phase"] == "Failed"
    assert "MaxAttemptsReached" in [c["reason"] for c in status["conditions"]]
    assert not kube.rayjobs


def test_only_the_lease_holder_schedules():
    import asyncio

    from transfer_operator.handlers.scheduling import scheduling_loop

    ctx, kube = ctx_with(a_pool(), a_job("a"))
    kube.lease_holder = "another-replica"
    stopped = asyncio.Event()

    async def one_pass() -> None:
        task = asyncio.create_task(scheduling_loop(ctx, stopped))
        await asyncio.sleep(0.2)
        stopped.set()
        await task

    asyncio.run(one_pass())
    assert not kube.rayjobs and "phase" not in status_of(kube, "a")


def test_the_leader_places_a_new_job_on_the_watchs_news_not_at_the_end_of_the_interval():
    import asyncio

    from transfer_operator.handlers.scheduling import scheduling_loop

    ctx, kube = ctx_with(a_pool(nodes=2), a_job("a"))
    ctx.config = OperatorConfig(schedulingIntervalSeconds=600)
    ctx.index.step_all()
    leases = []
    hold = kube.hold_lease
    kube.hold_lease = lambda *args: leases.append(args) or hold(*args)  # type: ignore[method-assign]
    stopped = asyncio.Event()

    async def until(condition: Any, timeout_s: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not condition():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        task = asyncio.create_task(scheduling_loop(ctx, stopped))
        await until(lambda: status_of(kube, "a").get("phase") == "Admitted")
        kube.add(a_job("b"))
        await asyncio.to_thread(ctx.index.step_all)  # the watch delivers it
        await until(lambda: status_of(kube, "b").get("phase") == "Admitted")
        stopped.set()
        await task

    asyncio.run(scenario())
    assert len(leases) == 1  # the Lease, held for 15 s, is not asked for again before a third of it


def a_node(name: str, pool: str, ready: str = "True", taints: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"transfer.dev/pool": pool}},
        "spec": {"taints": [{"key": key, "effect": "NoSchedule"} for key in taints]},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def pod_of(kube: FakeKube, rayjob: str, node: str) -> dict[str, Any]:
    """The head pod KubeRay would create for the RayJob, bound to `node`."""
    labels = kube.rayjobs[("default", rayjob)]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]["labels"]
    return {"metadata": {"namespace": "default", "labels": dict(labels)}, "spec": {"nodeName": node}}


def two_pools_one_job() -> tuple[Ctx, FakeKube]:
    ctx, kube = ctx_with(
        a_pool("eu-a100", pricing={"onDemandPerGpuHour": 2.0}),
        a_pool("us-a100", region="us-east", pricing={"onDemandPerGpuHour": 3.0}),
        a_job("a", placement={"regions": ["eu-west", "us-east"]}),
    )
    kube.nodes = {n["metadata"]["name"]: n for n in (a_node("eu-0", "eu-a100"), a_node("us-0", "us-a100"))}
    run_cycle(ctx, NOW)
    assert status_of(kube, "a")["placement"]["pool"] == "eu-a100"  # the cheaper one
    kube.pods = [pod_of(kube, "a-a1", "eu-0")]
    return ctx, kube


def test_node_not_ready_fails_the_job_over_to_another_pool():
    ctx, kube = two_pools_one_job()
    kube.nodes["eu-0"] = a_node("eu-0", "eu-a100", ready="False")
    run_cycle(ctx, NOW + timedelta(seconds=2))
    status = status_of(kube, "a")
    assert status["phase"] == "Admitted" and status["attempts"] == 2
    assert status["placement"]["pool"] == "us-a100"  # the lost node is not capacity any more
    assert ("default", "a-a1") not in kube.rayjobs and ("default", "a-a2") in kube.rayjobs
    lost = [e for e in kube.events if e[2] == "NodeLost"]
    assert lost and "node eu-0 is NotReady (pool eu-a100)" in lost[0][3]
    pool = kube.gpupools["eu-a100"]["status"]
    assert pool["health"] == "Degraded" and pool["lostNodes"] == 1 and pool["freeGpus"] == 0


def test_spot_interruption_taint_fails_the_job_over():
    ctx, kube = two_pools_one_job()
    kube.nodes["eu-0"] = a_node("eu-0", "eu-a100", taints=("cloud.google.com/impending-node-termination",))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "a")["placement"]["pool"] == "us-a100"
    assert any(e[2] == "SpotInterrupted" for e in kube.events)


def test_vanished_node_fails_the_job_over_but_keeps_the_pools_capacity():
    ctx, kube = two_pools_one_job()
    del kube.nodes["eu-0"]
    run_cycle(ctx, NOW + timedelta(seconds=2))
    status = status_of(kube, "a")
    assert status["attempts"] == 2 and any("node eu-0 is gone" in e[3] for e in kube.events)
    # A deleted node may come back (autoscaling): the declared capacity stays schedulable.
    assert status["placement"]["pool"] == "eu-a100"
    assert kube.gpupools["eu-a100"]["status"]["health"] == "Healthy"


def test_gpu_pods_of_a_finished_job_take_their_node_until_they_go():
    ctx, kube = two_pools_one_job()
    worker = pod_of(kube, "a-a1", "eu-0")
    worker["spec"]["containers"] = [{"name": "ray-worker", "resources": {"limits": {"nvidia.com/gpu": "8"}}}]
    kube.pods = [pod_of(kube, "a-a1", "eu-0"), worker]
    kube.transferjobs[("default", "a")]["status"]["phase"] = "Succeeded"  # KubeRay keeps its cluster for the TTL
    kube.add(a_job("b", placement={"regions": ["eu-west", "us-east"]}))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "b")["placement"]["pool"] == "us-a100"  # eu-0's GPUs are still a's pods'
    assert kube.gpupools["eu-a100"]["status"]["freeGpus"] == 0
    kube.pods = []  # the RayCluster went
    kube.add(a_job("c", placement={"regions": ["eu-west", "us-east"]}))
    run_cycle(ctx, NOW + timedelta(seconds=4))
    assert status_of(kube, "c")["placement"]["pool"] == "eu-a100"


@pytest.mark.parametrize(
    "node, event",
    [
        pytest.param("gone", "node eu-0 is gone", id="node-gone"),
        pytest.param("disrupted", "interruption taint karpenter.sh/disrupted", id="node-draining"),
        pytest.param("lives", None, id="node-lives"),
    ],
)
def test_a_pod_deleted_between_cycles_counts_where_its_node_went_too(node, event):
    """Karpenter taints, drains and removes a node within one cycle: the job's pod is deleted (the
    watch says so) and KubeRay's replacement waits unbound, so no pod is on a lost node at the
    cycle. A pod deleted from a node that lives (KubeRay restarting one) is no loss."""
    ctx, kube = two_pools_one_job()
    run_cycle(ctx, NOW + timedelta(seconds=1))  # the index holds the pod on eu-0
    old = kube.pods[0]
    ctx.index.pods.apply("DELETED", {**old, "metadata": {**old["metadata"], "name": "head-0", "resourceVersion": "99"}})
    kube.pods = [{**old, "spec": {"nodeName": None}}]  # the replacement, not bound yet
    if node == "gone":
        del kube.nodes["eu-0"]
    elif node == "disrupted":
        kube.nodes["eu-0"] = a_node("eu-0", "eu-a100", taints=("karpenter.sh/disrupted",))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    status = status_of(kube, "a")
    assert status["attempts"] == (1 if event is None else 2), status
    if event is not None:
        assert any(event in e[3] for e in kube.events), kube.events
    if node == "disrupted":
        assert status["placement"]["pool"] == "us-a100"


def test_a_lost_node_without_pods_of_the_job_leaves_it_alone():
    ctx, kube = two_pools_one_job()
    kube.nodes["eu-1"] = a_node("eu-1", "eu-a100", ready="False")
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "a")["attempts"] == 1 and ("default", "a-a1") in kube.rayjobs


def test_pods_of_an_older_attempt_do_not_trigger_a_failover():
    ctx, kube = two_pools_one_job()
    kube.nodes["eu-0"] = a_node("eu-0", "eu-a100", ready="False")
    run_cycle(ctx, NOW + timedelta(seconds=2))  # now on us-a100 as attempt 2; attempt 1's pod lingers
    run_cycle(ctx, NOW + timedelta(seconds=4))
    assert status_of(kube, "a")["attempts"] == 2


def test_node_failover_can_be_turned_off():
    ctx, kube = two_pools_one_job()
    ctx.config = OperatorConfig(nodeFailover=False)
    kube.nodes["eu-0"] = a_node("eu-0", "eu-a100", ready="False")
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "a")["attempts"] == 1


def test_lease_grows_with_the_measured_cycle_time():
    assert scheduling.lease_seconds(2.0, 0.5) == 15
    assert scheduling.lease_seconds(2.0, 40.0) == 120


def test_a_long_cycle_renews_the_lease_while_it_runs(monkeypatch):
    import asyncio
    import time as clock

    ctx, kube = ctx_with(a_pool(), a_job("a"))
    ctx.index.step_all()
    renewals: list[int] = []
    real_hold = kube.hold_lease

    def hold(namespace: str, name: str, holder: str, duration_s: int) -> bool:
        renewals.append(duration_s)
        return real_hold(namespace, name, holder, duration_s)

    real_run = scheduling.run_cycle

    def slow_cycle(c: Ctx, now: datetime) -> list[Any]:
        clock.sleep(0.35)
        return real_run(c, now)

    monkeypatch.setattr(kube, "hold_lease", hold)
    monkeypatch.setattr(scheduling, "run_cycle", slow_cycle)
    took_s = asyncio.run(scheduling.run_leading_cycle(ctx, 15, renew_every_s=0.1))
    assert ctx.in_flight.drain(timeout_s=30)
    assert took_s >= 0.35 and len(renewals) >= 3
    assert status_of(kube, "a")["phase"] == "Admitted"


def test_losing_the_lease_mid_cycle_stops_its_writes(monkeypatch):
    import asyncio
    import time as clock

    ctx, kube = ctx_with(a_pool(), a_job("a"))
    ctx.index.step_all()
    real_run = scheduling.run_cycle

    def slow_cycle(c: Ctx, now: datetime) -> list[Any]:
        clock.sleep(0.3)  # the Lease is renewed (and lost) meanwhile
        return real_run(c, now)

    monkeypatch.setattr(kube, "hold_lease", lambda *args: False)
    monkeypatch.setattr(scheduling, "run_cycle", slow_cycle)
    asyncio.run(scheduling.run_leading_cycle(ctx, 15, renew_every_s=0.05))
    assert ctx.in_flight.drain(timeout_s=30)
    assert ctx.lease.lost.is_set() and not kube.rayjobs and "phase" not in status_of(kube, "a")


def test_a_slow_cycle_is_logged_with_its_stages(monkeypatch, caplog):
    assert scheduling.StageClock({"write": 0.5}).slow(0.9) is None  # under SLOW_CYCLE_S
    ctx, _ = ctx_with(a_pool(), a_job("a"))
    monkeypatch.setattr(scheduling, "SLOW_CYCLE_S", 0.0)
    with caplog.at_level("INFO", logger=scheduling.__name__):
        run_cycle(ctx, NOW)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("slow cycle")]
    assert all(f"{stage} " in line for stage in ("read", "reconcile", "decide", "write", "other"))
    assert "(1 jobs, 1 decisions)" in line


# --- queue rules: TransferQueues and TransferPriorityClasses, watch-fed -------------------------


def a_queue(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "transfer.dev/v1alpha1", "kind": "TransferQueue", "metadata": {"name": name}, "spec": spec}


def a_namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def ready_of(kube: FakeKube, name: str, namespace: str = "default") -> dict[str, Any]:
    status = kube.transferjobs[(namespace, name)]["status"]
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_a_queue_the_namespace_may_not_use_or_that_does_not_exist_is_refused_naming_its_queues():
    team_a = a_queue("team-a", nominalGpus={"*": 8}, maxPriority=100,
                     namespaceSelector={"matchLabels": {"team": "a"}})  # fmt: skip
    team_b = a_queue("team-b", nominalGpus={"*": 8}, namespaceSelector={"matchLabels": {"team": "b"}})
    ctx, kube = ctx_with(
        a_pool(nodes=2), team_a, team_b, a_namespace("default", team="a"),
        a_job("theirs", queue="team-b"), a_job("nowhere", queue="free-for-all"), a_job("mine", queue="team-a"),
    )  # fmt: skip
    run_cycle(ctx, NOW)
    assert status_of(kube, "mine")["phase"] == "Admitted"
    for name, fragment in (("theirs", "may not use TransferQueue team-b"), ("nowhere", "no TransferQueue free-for-all")):
        ready = ready_of(kube, name)
        assert ready["reason"] == "InvalidSpec"
        assert fragment in ready["message"] and "may use: team-a" in ready["message"]
        assert status_of(kube, name)["phase"] == "Pending" and ("default", f"{name}-a1") not in kube.rayjobs
    run_cycle(ctx, NOW + timedelta(seconds=2))  # refused once: one event each
    assert sum(1 for e in kube.events if e[0] == "theirs" and e[2] == "InvalidSpec") == 1


def test_a_transferqueue_quota_holds_a_16_gpu_job_past_an_8_gpu_team_quota():
    ctx, kube = ctx_with(
        a_pool(nodes=4), a_queue("team-a", nominalGpus={"A100": 8}), a_job("big", gpus=16, queue="team-a",
        resources={"workers": 2, "gpusPerWorker": 8}),
    )  # fmt: skip
    run_cycle(ctx, NOW)
    assert status_of(kube, "big")["phase"] == "Pending"
    ready = ready_of(kube, "big")
    assert "nominal quota 8" in ready["message"], ready


def test_a_transferqueue_quota_is_per_gpu_type():
    """8 H100 and no A100: a job of any type goes to the H100 pool (the A100 one is cheaper); a
    second waits naming both types."""
    ctx, kube = ctx_with(
        a_pool("eu-a100", nodes=2), a_pool("eu-h100", nodes=2, gpuType="H100", pricing={"onDemandPerGpuHour": 9.0}),
        a_queue("team-a", nominalGpus={"H100": 8}), a_job("first", queue="team-a"),
        a_job("second", queue="team-a", resources={"workers": 1, "gpusPerWorker": 4}),
    )  # fmt: skip
    run_cycle(ctx, NOW)
    assert status_of(kube, "first")["placement"]["pool"] == "eu-h100"
    ready = ready_of(kube, "second")
    assert ready["reason"] == "QuotaExceeded", ready
    assert ready["message"] == (
        "queue team-a: 0 A100 GPUs in use + 4 requested > nominal quota 0 for A100; "
        "queue team-a: 8 H100 GPUs in use + 4 requested > nominal quota 8 for H100"
    )


def test_priority_comes_from_the_class_and_a_raw_priority_above_the_ceiling_is_refused():
    classes = {"apiVersion": "transfer.dev/v1alpha1", "kind": "TransferPriorityClass",
               "metadata": {"name": "urgent"}, "spec": {"value": 50}}  # fmt: skip
    queue = a_queue("team-a", nominalGpus={"*": 8}, maxPriority=100)
    ctx, kube = ctx_with(
        a_pool(), queue, classes,
        a_job("greedy", priority=1000000, queue="team-a"),
        a_job("low", priority=1, queue="team-a"),
        a_job("classy", priority=0, queue="team-a", priorityClassName="urgent"),
    )  # fmt: skip
    run_cycle(ctx, NOW)
    assert ready_of(kube, "greedy")["reason"] == "InvalidSpec"
    assert "above 100, the highest TransferQueue team-a allows" in ready_of(kube, "greedy")["message"]
    assert status_of(kube, "classy")["phase"] == "Admitted"  # 50 from the class beats 1
    assert status_of(kube, "low")["phase"] == "Pending"


def test_preemption_across_queues_only_reclaims_what_a_cohort_queue_borrows():
    queues = [
        a_queue("alone", nominalGpus={"*": 8}, maxPriority=1000),
        a_queue("team-a", nominalGpus={"*": 8}, cohort="research", maxPriority=1000),
        a_queue("team-b", nominalGpus={"*": 0}, cohort="research", maxPriority=1000),
    ]
    # One 8-GPU node, held by a low-priority job of `alone` (no cohort): a job of team-a may not take it.
    ctx, kube = ctx_with(a_pool(), *queues, a_job("held", priority=1, queue="alone"))
    run_cycle(ctx, NOW)
    kube.add(a_job("urgent", priority=500, queue="team-a"))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "held")["phase"] == "Admitted"
    assert ready_of(kube, "urgent")["reason"] == "NoFittingPool"
    # Held by team-b, which borrows all 8 GPUs from its cohort: team-a reclaims them.
    ctx, kube = ctx_with(a_pool(), *queues, a_job("borrower", priority=1, queue="team-b"))
    run_cycle(ctx, NOW)
    assert status_of(kube, "borrower")["phase"] == "Admitted"
    kube.add(a_job("urgent", priority=500, queue="team-a"))
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert status_of(kube, "borrower")["phase"] == "Preempted"
    assert ready_of(kube, "urgent")["reason"] == "Preempting"


def test_a_cycle_counts_the_path_that_decided_it():
    def count(path: str) -> float:
        return REGISTRY.get_sample_value("transfer_scheduling_solve_path_total", {"path": path}) or 0.0

    ctx, _ = ctx_with(a_pool(), a_job("a"), a_job("b"))
    before = {path: count(path) for path in ("exact", "localSearch", "none")}
    run_cycle(ctx, NOW)  # two jobs, one pool: HiGHS solves it within the default budget
    assert count("exact") == before["exact"] + 1
    ctx.config = OperatorConfig(exact_budget_seconds=0)  # exact path off: local search on a small cycle
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert count("localSearch") == before["localSearch"] + 1
    assert count("none") == before["none"]
