"""The watch-fed index: one LIST per kind, then watches; a relist only after 410 Gone; the cycle's
own writes are written through and a lagging watch never undoes them."""

from __future__ import annotations

import threading
from datetime import timedelta

from transfer_operator import metrics
from transfer_operator.handlers.informer import FleetIndex, Store, prepare_rayjob, slim

from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle, status_of


def rayjob(name: str, version: int, phase: str = "") -> dict:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)},
        "status": {"jobDeploymentStatus": phase} if phase else {},
    }


def test_cycles_list_each_kind_once_and_then_only_watch():
    ctx, kube = ctx_with(a_pool(nodes=2), a_job("a"), a_job("b", gpus=1))
    for i in range(5):
        run_cycle(ctx, NOW + timedelta(seconds=2 * i))
    assert set(kube.lists.values()) == {1}
    assert set(kube.lists) == {
        "transferjobs", "gpupools", "transferclusters", "rayjobs", "pods", "nodes",
        "transferqueues", "transferpriorityclasses", "namespaces", "nodepools", "nodeclaims",
        "networkpolicies",
    }  # fmt: skip
    kube.add(a_job("c", gpus=1))  # a job created later arrives by the watch
    run_cycle(ctx, NOW + timedelta(seconds=12))
    assert status_of(kube, "c")["phase"] == "Admitted" and set(kube.lists.values()) == {1}


def test_an_expired_watch_relists_once_and_loses_nothing():
    ctx, kube = ctx_with(a_pool(), a_job("a"))
    run_cycle(ctx, NOW)
    relists = metrics.WATCH_RELISTS.labels(kind="transferjobs")
    before = relists._value.get()
    kube.expire.add("transferjobs")
    kube.add(a_job("b", gpus=1, priority=1))
    del kube.transferjobs[("default", "a")]
    run_cycle(ctx, NOW + timedelta(seconds=2))
    assert kube.lists["transferjobs"] == 2 and relists._value.get() - before == 1
    assert [parsed.body["metadata"]["name"] for parsed in ctx.index.transferjobs.values()] == ["b"]
    assert status_of(kube, "b")["phase"] == "Admitted"


def test_a_write_through_is_not_undone_by_a_lagging_event():
    store = Store(prepare_rayjob)
    store.apply("ADDED", rayjob("r", 5))
    store.apply("MODIFIED", rayjob("r", 9, "Running"), mark=False)  # what the cycle's write returned
    store.apply("MODIFIED", rayjob("r", 7, "Initializing"))  # the watch, behind
    assert store.get(("ns", "r"))["status"] == {"jobDeploymentStatus": "Running"}
    assert store.take_changed() == {("ns", "r")} and store.take_changed() == set()


def test_a_deleted_object_is_not_brought_back_by_an_older_event_but_a_new_one_is_taken():
    store = Store(prepare_rayjob)
    store.apply("ADDED", rayjob("r", 5))
    store.delete(("ns", "r"))
    store.apply("MODIFIED", rayjob("r", 5, "Running"))
    assert store.get(("ns", "r")) is None
    store.apply("ADDED", rayjob("r", 12))  # created again under the same name
    assert store.get(("ns", "r")) is not None


def test_a_relist_keeps_newer_write_throughs_and_drops_what_is_gone():
    store = Store(prepare_rayjob)
    store.apply("ADDED", rayjob("old", 3))
    store.apply("ADDED", rayjob("r", 9, "Running"), mark=False)
    store.replace([rayjob("r", 8, "Initializing"), rayjob("new", 4)])
    assert store.get(("ns", "old")) is None and store.get(("ns", "new")) is not None
    assert store.get(("ns", "r"))["status"] == {"jobDeploymentStatus": "Running"}


def test_slim_drops_managed_fields_and_the_last_applied_annotation():
    body = {
        "metadata": {
            "name": "a",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "1"},
        },
        "spec": {"x": 1},
    }
    assert slim(body) == {"metadata": {"name": "a", "annotations": {"keep": "1"}}, "spec": {"x": 1}}
    assert "managedFields" in body["metadata"]  # the input is left alone


def a_pod(name: str, namespace: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "transfer-operator"}},
        "spec": {"nodeName": "n1"},
    }  # fmt: skip


def test_pods_are_listed_only_in_the_job_namespaces_when_the_install_names_them():
    from transfer_operator.handlers.informer import FleetIndex

    from .fake_kube import FakeKube

    kube = FakeKube(pods=[a_pod("a", "team-a"), a_pod("b", "team-b"), a_pod("x", "elsewhere")])
    index = FleetIndex()
    index.connect(kube, pod_namespaces=["team-b", "team-a"])
    assert [i.kind.namespace for i in index.informers if i.kind.plural == "pods"] == ["team-a", "team-b"]
    index.step_all()

    def keys() -> list[str]:
        return sorted(p["metadata"]["namespace"] + "/" + p["metadata"]["name"] for p in index.pods.values())

    assert keys() == ["team-a/a", "team-b/b"]
    # One namespace's relist (410 Gone) keeps the other namespace's pods, and sees what changed.
    kube.pods = [p for p in kube.pods if p["metadata"]["name"] != "a"] + [a_pod("a2", "team-a")]
    kube.expire.add("pods")
    index.step_all()
    assert keys() == ["team-a/a2", "team-b/b"]


def test_news_from_the_watch_wakes_the_cycle_but_a_write_through_or_an_older_event_does_not():
    wake = threading.Event()
    store = Store(prepare_rayjob, wake=wake)
    store.apply("MODIFIED", rayjob("r", 9), mark=False)  # what the cycle's own write returned
    store.apply("MODIFIED", rayjob("r", 7, "Initializing"))  # older than that
    store.apply("DELETED", rayjob("r", 8))
    assert not wake.is_set()
    store.apply("MODIFIED", rayjob("r", 10, "Running"))
    assert wake.is_set()
    wake.clear()
    store.apply("DELETED", rayjob("r", 11))
    assert wake.is_set()


def test_the_status_the_cycle_writes_does_not_wake_it_but_a_new_job_or_a_spec_change_does():
    index = FleetIndex()
    job = {**a_job("a"), "metadata": {**a_job("a")["metadata"], "resourceVersion": "1", "generation": 1}}
    index.transferjobs.apply("ADDED", job)
    assert index.work.is_set()
    index.work.clear()
    # The watch's news of the cycle's own status patch, before the write-through.
    index.transferjobs.apply("MODIFIED", {**job, "metadata": {**job["metadata"], "resourceVersion": "2"},
                                          "status": {"phase": "Admitted"}})  # fmt: skip
    assert not index.work.is_set()
    index.transferjobs.apply("MODIFIED", {**job, "metadata": {**job["metadata"], "resourceVersion": "3",
                                                              "generation": 2}})  # fmt: skip
    assert index.work.is_set()
    index.work.clear()
    index.rayjobs.apply("ADDED", rayjob("r", 4))  # the cycle's own, before its write-through
    assert not index.work.is_set()
    index.rayjobs.apply("MODIFIED", rayjob("r", 5))  # nothing the cycle reads changed
    assert not index.work.is_set()
    index.rayjobs.apply("MODIFIED", rayjob("r", 6, "Complete"))
    assert index.work.is_set()
    index.work.clear()
    index.rayjobs.apply("ADDED", rayjob("q", 7, "Running"))  # one with a status already (a relist's news)
    assert index.work.is_set()


def test_the_job_view_follows_every_change_as_a_rebuild_would():
    """The cycle copies the view instead of a pass over the fleet: after events of every kind
    (new, status written, holding GPUs, a bad spec, deletion begun, deleted, a relist) it is what
    a fresh pass over the store would give."""
    import random

    from transfer_operator.handlers.informer import JobStore, JobView, job_key

    def body(name: str, version: int, rng: random.Random) -> dict:
        job = a_job(name, gpus=rng.choice([1, 8]))
        job["metadata"].update(namespace=f"ns-{rng.randrange(2)}", resourceVersion=str(version), uid=f"u-{name}")
        phase = rng.choice(["Pending", "Admitted", "Running", "Succeeded"])
        job["status"] = {"phase": phase, "attempts": 1} if phase != "Pending" else {}
        if phase in ("Admitted", "Running"):
            job["status"]["placement"] = {"pool": "eu-a100", "gpus": 8, "usdPerHour": 1.0, "usdPerGpuHour": 1.0,
                                          "region": "eu-west", "gpuType": "A100", "priceClass": "onDemand"}
        if rng.random() < 0.2:
            job["spec"]["resources"]["workers"] = 0  # refused by the checks
        if rng.random() < 0.2:
            job["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return job

    def rebuilt(store: JobStore) -> JobView:
        view = JobView()
        for parsed in store.values():
            view.put(job_key(parsed.body), parsed)
        return view

    rng = random.Random(7)
    store, names = JobStore(), [f"j{i}" for i in range(12)]
    for step in range(400):
        version = step + 1
        name = rng.choice(names)
        if step % 97 == 96:
            store.replace([body(n, version, rng) for n in rng.sample(names, 6)])
        elif rng.random() < 0.15:
            held = next((b for b, _, _ in store.values() if b["metadata"]["name"] == name), None)
            if held is not None:
                store.apply("DELETED", {"metadata": {**held["metadata"], "resourceVersion": str(version)}})
        else:
            store.apply("MODIFIED", body(name, version, rng), mark=rng.random() < 0.5)
        got, want = store.view(), rebuilt(store)
        assert got.jobs == want.jobs
        assert got.invalid == want.invalid and got.deleting == want.deleting and got.holding == want.holding
    assert want.jobs and want.invalid and want.deleting and want.holding  # every kind was exercised
