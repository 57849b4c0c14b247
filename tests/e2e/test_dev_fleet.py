"""`dev-cluster up --clusters 2`: a management cluster, two worker clusters and one S3 store."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from transfer_operator.devcluster import fleet as fleet_mod
from transfer_operator.devcluster import objectstore
from transfer_operator.devcluster.nodes import load_pools

from .conftest import ROOT, get_json

MULTICLUSTER_POOLS = ROOT / "manifests" / "multicluster" / "pools.yaml"


def test_fleet_registers_its_workers_and_shares_storage(tmp_path: Path) -> None:
    pools = load_pools(MULTICLUSTER_POOLS)
    fleet = fleet_mod.up(tmp_path, pools, clusters=2, max_nodes_per_pool=1)
    try:
        assert sorted(fleet.workers) == ["eu-west", "us-east"]
        assert fleet.management.nodes == ["ap-south-l4-0"]
        assert fleet.workers["us-east"].nodes == ["us-east-h100-0", "us-east-a100-0"]
        registered = get_json(fleet.management, "transferclusters")["items"]
        assert {c["metadata"]["name"]: c["spec"]["region"] for c in registered} == {
            "eu-west": "eu-west",
            "us-east": "us-east",
        }
        for name, worker in fleet.workers.items():
            secret = get_json(fleet.management, "secret", f"{name}-kubeconfig", "-n", "transfer-system")
            kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
            assert kubeconfig["clusters"][0]["cluster"]["server"] == worker.server
            assert get_json(worker, "crd", "rayjobs.ray.io")["metadata"]["name"] == "rayjobs.ray.io"
        assert fleet.store is not None
        for member in [fleet.management, *fleet.workers.values()]:
            stored = get_json(member, "secret", "transfer-storage", "-n", "default")["data"]
            env = {key: base64.b64decode(value).decode() for key, value in stored.items()}
            assert env == fleet.store.credentials.env()
        filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(fleet.store.credentials))
        assert filesystem.get_file_info(fleet_mod.STORAGE_BUCKET).type == pafs.FileType.Directory
        status = fleet_mod.status(tmp_path)
        assert status["running"] and set(status["workers"]) == {"eu-west", "us-east"}
        assert json.dumps(status)  # what `dev-cluster status --json` prints
    finally:
        assert fleet_mod.down(tmp_path)
    assert not fleet_mod.status(tmp_path)["running"]


def test_more_named_clusters_than_asked_for_is_refused(tmp_path: Path) -> None:
    pools = load_pools(MULTICLUSTER_POOLS)
    with pytest.raises(fleet_mod.ClusterError, match="--clusters 2 or more"):
        fleet_mod.up(tmp_path, pools, clusters=1)
