"""The reconcile timer reads RayJob status from the watch-fed cache; a miss falls back to a GET."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kopf

from transfer_operator.handlers.rayjob_cache import RayJobCache
from transfer_operator.handlers.transferjob import reconcile

from .fake_kube import FakeKube
from .test_scheduling import NOW, a_job, a_pool, ctx_with, run_cycle, status_of


class CountingKube(FakeKube):
    gets: int = 0

    def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return super().get_rayjob(namespace, name)


def test_cache_keeps_name_and_status_and_forgets_deleted():
    cache = RayJobCache()
    body = {
        "metadata": {"name": "a-a1", "namespace": "ns", "labels": {"x": "y"}},
        "spec": {"big": 1},
        "status": {"jobDeploymentStatus": "Running"},
    }
    cache.observe(None, body)
    assert cache.get("ns", "a-a1") == {
        "metadata": {"name": "a-a1", "namespace": "ns"},
        "status": {"jobDeploymentStatus": "Running"},
    }
    cache.observe("DELETED", body)
    assert cache.get("ns", "a-a1") is None and len(cache) == 0


def run_reconcile(ctx, kube: FakeKube) -> dict[str, Any]:
    memo = kopf.Memo()
    memo.ctx = ctx
    patch = kopf.Patch()
    reconcile(body=kopf.Body(kube.transferjobs[("default", "a")]), patch=patch, memo=memo)
    return dict(patch.get("status") or {})


def admitted() -> tuple[Any, CountingKube]:
    ctx, _ = ctx_with()
    kube = CountingKube()
    kube.add(a_pool())
    kube.add(a_job("a"))
    ctx.kube = kube
    run_cycle(ctx, NOW - timedelta(seconds=5))
    assert status_of(kube, "a")["phase"] == "Admitted"
    return ctx, kube


def test_reconcile_mirrors_from_the_cache_without_a_get():
    ctx, kube = admitted()
    rayjob = kube.rayjobs[("default", "a-a1")]
    ctx.rayjobs.observe(
        "MODIFIED", {**rayjob, "status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}}
    )
    status = run_reconcile(ctx, kube)
    assert status["phase"] == "Running" and kube.gets == 0


def test_reconcile_falls_back_to_a_get_on_a_miss():
    ctx, kube = admitted()
    kube.rayjobs[("default", "a-a1")]["status"] = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
    status = run_reconcile(ctx, kube)
    assert status["phase"] == "Running" and kube.gets == 1
