"""Checkpoint storage defaults of the operator (`storage` in its settings): every job without its
own `spec.checkpoint.uri` checkpoints under `<checkpointRoot>/<namespace>/<name>`, with the
admin's credentials Secret (same name in every namespace and cluster, created by the admin, never
read by the operator). Pure."""

from __future__ import annotations

from transfer_operator.api.config import StorageConfig
from transfer_operator.api.models import SecretKeyRef, TransferJob

# Schemes every cluster reaches the same way (pyarrow filesystems); anything else is local to
# one Ray head, so a later attempt elsewhere cannot resume from it.
SHARED_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "hdfs://")


def with_storage_defaults(job: TransferJob, storage: StorageConfig) -> TransferJob:
    checkpoint = job.spec.checkpoint
    if checkpoint.uri or not storage.checkpoint_root:
        return job
    root = storage.checkpoint_root.rstrip("/")
    update: dict[str, object] = {"uri": f"{root}/{job.metadata.namespace or 'default'}/{job.metadata.name}"}
    if checkpoint.secret_ref is None and storage.credentials_secret:
        update["secret_ref"] = SecretKeyRef(name=storage.credentials_secret)
    spec = job.spec.model_copy(update={"checkpoint": checkpoint.model_copy(update=update)})
    return job.model_copy(update={"spec": spec})


def is_shared(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith(SHARED_SCHEMES)


def starts_over(job: TransferJob, new_cluster: str | None) -> str | None:
    """Why attempt n+1 cannot resume (its checkpoints are local to another cluster), or None."""
    last = job.status.last_cluster
    if (
        job.status.attempts == 0
        or job.status.last_checkpoint is None
        or is_shared(job.status.last_checkpoint)
    ):
        return None
    if (last or None) == (new_cluster or None):
        return None
    return (
        f"starts over: its checkpoints at {job.status.last_checkpoint} are local to cluster "
        f"{last or '(local)'}; set spec.checkpoint.uri (s3://...) or the operator's storage.checkpointRoot"
    )
