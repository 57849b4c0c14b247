"""Fixtures for tests against a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok GPU nodes, KubeRay) started once per session; see docs/controlplane.md."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from transfer_operator import devcluster

E2E_DIR = Path(__file__).resolve().parent
POOLS_FILE = E2E_DIR / "pools.yaml"
# Small on purpose: ap-south-l4 declares 16 nodes and gets 2, which tests the cap too.
MAX_NODES_PER_POOL = 2
# Reuse a running dev cluster instead of starting one (e.g. after `transferctl dev-cluster up`).
REUSE_STATE_DIR_ENV = "TRANSFER_E2E_STATE_DIR"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real local control plane (slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item, not only those under tests/e2e.
    for item in items:
        if E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def pools() -> list[dict[str, Any]]:
    return devcluster.load_pools(POOLS_FILE)


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pools: list[dict[str, Any]]
) -> Iterator[devcluster.Cluster]:
    reuse_dir = os.environ.get(REUSE_STATE_DIR_ENV)
    if reuse_dir:
        running = devcluster.load(Path(reuse_dir))
        if running is None:
            pytest.fail(f"${REUSE_STATE_DIR_ENV}={reuse_dir}: no cluster running there")
        yield running
        return
    state_dir = tmp_path_factory.mktemp("dev-cluster")
    start_s = time.monotonic()
    running = devcluster.up(state_dir, pools=pools, max_nodes_per_pool=MAX_NODES_PER_POOL)
    print(f"\ndev cluster up in {time.monotonic() - start_s:.1f}s ({state_dir})")
    try:
        yield running
    finally:
        devcluster.down(state_dir)


@pytest.fixture
def namespace(cluster: devcluster.Cluster) -> Iterator[str]:
    """A fresh namespace, with its `default` ServiceAccount ready (pods need it)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    _wait_until(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout_s=30,
        what=f"default ServiceAccount in {name}",
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
