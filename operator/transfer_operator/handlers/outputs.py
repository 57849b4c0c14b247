"""Read the manifest.json a finished trainer wrote to `spec.output.uri` (local path or s3://)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import urlparse

from transfer_operator.api.models import TransferJob
from transfer_operator.engine.outputs import manifest_uri

log = logging.getLogger(__name__)


def read_manifest(job: TransferJob) -> dict[str, Any] | None:
    """The manifest, or None when there is no spec.output or it cannot be read (the status then
    names the output without metrics; the job's success does not depend on it)."""
    uri = manifest_uri(job)
    if uri is None:
        return None
    try:
        if uri.startswith("s3://"):
            import pyarrow.fs as pafs

            parsed = urlparse(uri)
            endpoint = urlparse(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "")
            kwargs: dict[str, Any] = {"region": os.environ.get("AWS_REGION") or "us-east-1"}
            if endpoint.netloc:
                kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
            with pafs.S3FileSystem(**kwargs).open_input_stream(f"{parsed.netloc}{parsed.path}") as f:
                return json.loads(f.read())
        with open(uri.removeprefix("file://")) as f:
            return json.load(f)
    except Exception as exc:  # noqa: BLE001 - best effort: logged, never fails the cycle
        log.warning("cannot read the output manifest %s of %s: %s", uri, job.metadata.name, exc)
        return None
