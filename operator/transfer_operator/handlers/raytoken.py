"""Each RayJob's Ray token Secret, owned by that RayJob.

Why the RayJob and not the TransferJob: KubeRay's RayJob finalizer stops the Ray job through the
dashboard, with the token from this Secret. Owned by the TransferJob, the Secret was collected
with it, before the RayJob's finalizer ran, and the RayJob stayed in deletion for good. Owned by
the RayJob, it exists until the RayJob is gone (background deletion, which is what the garbage
collector and the operator use), whoever deletes it: the TransferJob's deletion, a preemption,
a suspend, or KubeRay's TTL.
"""

from __future__ import annotations

import secrets
from typing import Any

from transfer_operator.api.models import TransferJob
from transfer_operator.engine.isolation import render_ray_token_secret
from transfer_operator.handlers.context import Ctx


def ensure_ray_token(ctx: Ctx, job: TransferJob, rayjob: dict[str, Any], kube: Any = None) -> bool:
    """Create the Secret `rayjob` names in authOptions unless it exists (409: already there), in
    the RayJob's namespace of the cluster `kube` talks to (default: the local one); True when
    this call created it. KubeRay retries the RayJob until the Secret is there."""
    metadata = rayjob["metadata"]
    owner = {
        "apiVersion": rayjob.get("apiVersion", "ray.io/v1"),
        "kind": rayjob.get("kind", "RayJob"),
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        # The RayJob need not wait for its Secret (nor may the operator set finalizers on it).
        "blockOwnerDeletion": False,
    }
    secret = render_ray_token_secret(job, metadata["name"], secrets.token_urlsafe(32))
    secret["metadata"]["namespace"] = metadata.get("namespace") or secret["metadata"]["namespace"]
    return (kube or ctx.kube).create_owned(secret, owner)
