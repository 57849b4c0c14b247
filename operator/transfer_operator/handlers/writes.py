"""The cycle's writes, written through to the watch-fed index: the next cycle reads what this one
wrote even when the watch has not delivered it yet."""

from __future__ import annotations

import logging
import time
from typing import Any

from transfer_operator import metrics
from transfer_operator.engine.rayjob import LABEL_MANAGED_BY, MANAGER
from transfer_operator.handlers.context import Ctx
from transfer_operator.handlers.kube import owner_reference
from transfer_operator.handlers.remote import managed_labels

log = logging.getLogger(__name__)


def write_job_status(ctx: Ctx, body: dict[str, Any], status: dict[str, Any]) -> bool:
    """False when the TransferJob is gone: deleted since the cycle read it (its watch event, on
    its way, takes it out of the index)."""
    metadata = body["metadata"]
    written = ctx.kube.patch_transferjob_status(
        metadata.get("namespace") or "default", metadata["name"], status
    )
    if written is None:
        log.info("TransferJob %s/%s is gone: no status written", metadata.get("namespace"), metadata["name"])
        return False
    ctx.index.transferjobs.apply("MODIFIED", written, mark=False)
    return True


def write_gpupool_status(ctx: Ctx, name: str, status: dict[str, Any]) -> None:
    written = ctx.kube.patch_gpupool_status(name, status)
    if written:
        ctx.index.gpupools.apply("MODIFIED", written, mark=False)


def create_rayjob(
    ctx: Ctx, manifest: dict[str, Any], origin: dict[str, Any], cluster: str | None = None
) -> dict[str, Any] | None:
    """The created RayJob when this call created it (None: the name was taken). In a worker cluster the
    RayJob goes to the job's namespace there (created if missing), named by origin labels."""
    if not cluster:
        created = ctx.kube.create_rayjob(manifest, owner_reference(origin))
        if created:
            ctx.index.rayjobs.apply("ADDED", created, mark=False)
        return created
    remote = ctx.clusters[cluster]
    labels = managed_labels(origin)
    metadata = manifest["metadata"]
    namespace = remote.remote_namespace(metadata["namespace"])
    manifest = {
        **manifest,
        "metadata": {**metadata, "namespace": namespace, "labels": {**metadata.get("labels", {}), **labels}},
    }
    started = time.monotonic()
    remote.kube.ensure_namespace(namespace, {LABEL_MANAGED_BY: MANAGER})
    created = remote.kube.create_rayjob(manifest, None)
    metrics.DISPATCH_LATENCY.labels(cluster=cluster).observe(time.monotonic() - started)
    if created:
        remote.index.rayjobs.apply("ADDED", created, mark=False)
    return created


def delete_rayjob(ctx: Ctx, namespace: str, name: str, cluster: str | None = None) -> None:
    """Delete an attempt's RayJob. In a worker cluster that does not answer, the delete is left
    to the orphan sweep when it is back (handlers/clusters.py): the job may move on now."""
    if not cluster:
        ctx.kube.delete_rayjob(namespace, name)
        ctx.index.rayjobs.delete((namespace, name))
        return
    remote = ctx.clusters.get(cluster)
    if remote is None or remote.kube is None:
        return
    remote_namespace = remote.remote_namespace(namespace)
    try:
        remote.kube.delete_rayjob(remote_namespace, name)
    except Exception as error:  # noqa: BLE001
        if remote.reachable(time.time()):
            raise
        log.warning(
            "cluster %s unreachable: RayJob %s left to the orphan sweep (%s)",
            cluster,
            name,
            type(error).__name__,
        )
        return
    remote.index.rayjobs.delete((remote_namespace, name))
