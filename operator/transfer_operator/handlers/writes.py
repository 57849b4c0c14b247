"""The cycle's writes, written through to the watch-fed index: the next cycle reads what this one
wrote even when the watch has not delivered it yet."""

from __future__ import annotations

from typing import Any

from transfer_operator.handlers.context import Ctx


def write_job_status(ctx: Ctx, body: dict[str, Any], status: dict[str, Any]) -> None:
    metadata = body["metadata"]
    written = ctx.kube.patch_transferjob_status(metadata.get("namespace") or "default", metadata["name"], status)
    if written:
        ctx.index.transferjobs.apply("MODIFIED", written, mark=False)


def write_gpupool_status(ctx: Ctx, name: str, status: dict[str, Any]) -> None:
    written = ctx.kube.patch_gpupool_status(name, status)
    if written:
        ctx.index.gpupools.apply("MODIFIED", written, mark=False)


def create_rayjob(ctx: Ctx, manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any] | None:
    """The created RayJob when this call created it (None: the name was taken)."""
    created = ctx.kube.create_rayjob(manifest, owner)
    if created:
        ctx.index.rayjobs.apply("ADDED", created, mark=False)
    return created


def delete_rayjob(ctx: Ctx, namespace: str, name: str) -> None:
    ctx.kube.delete_rayjob(namespace, name)
    ctx.index.rayjobs.delete((namespace, name))
