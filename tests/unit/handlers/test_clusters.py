"""Worker-cluster logic without a cluster: kubeconfig problems (and that their messages never
quote the kubeconfig), which remote RayJobs the orphan sweep keeps, and storage defaults."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from transfer_operator.api.clusters import TransferCluster
from transfer_operator.api.config import StorageConfig
from transfer_operator.api.enums import Reason
from transfer_operator.api.manifests import transferjob_manifest
from transfer_operator.api.models import TransferJob, TransferJobStatus
from transfer_operator.engine.storage import starts_over, with_storage_defaults
from transfer_operator.handlers.clusters import is_current_attempt
from transfer_operator.handlers.remote import ClusterProblem, RemoteCluster, client_of, read_kubeconfig

SECRET_TEXT = "sUpEr-SeCrEt-TokEn"


class Secrets:
    def __init__(self, secrets: dict[str, dict[str, Any]]):
        self.secrets = secrets

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get(f"{namespace}/{name}")


def a_cluster(**ref: Any) -> TransferCluster:
    spec = {"kubeconfigSecretRef": {"name": "w-kubeconfig", **ref}}
    return TransferCluster.model_validate({"metadata": {"name": "w"}, "spec": spec})


def test_a_missing_secret_or_key_says_what_to_create() -> None:
    with pytest.raises(ClusterProblem) as missing:
        read_kubeconfig(Secrets({}), a_cluster(), "transfer-system")
    assert missing.value.reason is Reason.KUBECONFIG_SECRET_MISSING
    assert "transfer-system/w-kubeconfig does not exist" in missing.value.message
    with pytest.raises(ClusterProblem, match="no key 'kubeconfig'"):
        read_kubeconfig(
            Secrets({"transfer-system/w-kubeconfig": {"data": {}}}), a_cluster(), "transfer-system"
        )
    with pytest.raises(ClusterProblem) as outside:
        read_kubeconfig(Secrets({}), a_cluster(namespace="tenant"), "transfer-system")
    assert outside.value.reason is Reason.SECRET_OUTSIDE_NAMESPACE


def test_a_bad_kubeconfig_is_refused_without_quoting_it() -> None:
    secret = {"data": {"kubeconfig": base64.b64encode(f"users: [{{token: {SECRET_TEXT}".encode()).decode()}}
    raw = read_kubeconfig(Secrets({"transfer-system/w-kubeconfig": secret}), a_cluster(), "transfer-system")
    with pytest.raises(ClusterProblem) as bad:
        client_of(raw, "Secret transfer-system/w-kubeconfig")
    assert bad.value.reason is Reason.KUBECONFIG_INVALID
    assert SECRET_TEXT not in bad.value.message and bad.value.__cause__ is None
    no_context = f"apiVersion: v1\nkind: Config\nusers: [{{name: u, user: {{token: {SECRET_TEXT}}}}}]\n"
    with pytest.raises(ClusterProblem) as empty:
        client_of(no_context.encode(), "Secret transfer-system/w-kubeconfig")
    assert SECRET_TEXT not in empty.value.message


def job_with(**status: Any) -> TransferJob:
    job = TransferJob.model_validate(transferjob_manifest("j"))
    return job.model_copy(update={"status": TransferJobStatus.model_validate(status)})


PLACED = {
    "pool": "p",
    "region": "r",
    "gpuType": "A100",
    "priceClass": "onDemand",
    "usdPerGpuHour": 1.0,
    "usdPerHour": 4.0,
    "gpus": 4,
}


@pytest.mark.parametrize(
    ("status", "rayjob", "cluster", "keep"),
    [
        (
            {"phase": "Running", "rayJobName": "j-a2", "placement": {**PLACED, "cluster": "w"}},
            "j-a2",
            "w",
            True,
        ),
        (
            {"phase": "Running", "rayJobName": "j-a2", "placement": {**PLACED, "cluster": "w"}},
            "j-a1",
            "w",
            False,
        ),
        (
            {"phase": "Running", "rayJobName": "j-a2", "placement": {**PLACED, "cluster": "x"}},
            "j-a2",
            "w",
            False,
        ),
        ({"phase": "Preempted", "rayJobName": "j-a1"}, "j-a1", "w", False),
        ({"phase": "Succeeded", "rayJobName": "j-a1"}, "j-a1", "w", True),
    ],
)
def test_the_sweep_keeps_only_the_current_attempt(
    status: dict[str, Any], rayjob: str, cluster: str, keep: bool
) -> None:
    assert is_current_attempt(job_with(**status), rayjob, cluster) is keep


def test_namespaces_map_with_the_prefix() -> None:
    remote = RemoteCluster(name="w", spec_hash="", namespace_prefix="eu-", lost_after_s=60)
    assert remote.remote_namespace("team") == "eu-team"
    assert remote.origin_namespace("eu-team") == "team"
    assert (
        not remote.usable(0)
        and not remote.lost(remote.first_seen_s + 59)
        and remote.lost(remote.first_seen_s + 60)
    )


def test_storage_root_gives_each_job_its_own_shared_uri() -> None:
    job = job_with()
    storage = StorageConfig.model_validate(
        {"checkpointRoot": "s3://transfer/ckpt/", "credentialsSecret": "transfer-storage"}
    )
    stored = with_storage_defaults(job, storage)
    assert stored.spec.checkpoint.uri == "s3://transfer/ckpt/default/j"
    assert (
        stored.spec.checkpoint.secret_ref is not None
        and stored.spec.checkpoint.secret_ref.name == "transfer-storage"
    )
    assert with_storage_defaults(job, StorageConfig()) is job
    with pytest.raises(ValueError):
        StorageConfig.model_validate({"checkpointRoot": "/tmp/x"})


def test_a_local_checkpoint_cannot_follow_a_job_to_another_cluster() -> None:
    moved = job_with(attempts=1, lastCheckpoint="/tmp/transfer-checkpoints/default/j", lastCluster="us-east")
    assert "starts over" in (starts_over(moved, "eu-west") or "")
    assert starts_over(moved, "us-east") is None
    shared = job_with(attempts=1, lastCheckpoint="s3://transfer/default/j", lastCluster="us-east")
    assert starts_over(shared, "eu-west") is None
