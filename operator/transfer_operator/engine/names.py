"""Names of what the engine renders, from the TransferJob's name: deterministic, within
Kubernetes' limits, and one to one (no job can take the name, or the label, of another's)."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 47  # KubeRay appends suffixes to the RayCluster and pod names
MAX_SUBDOMAIN = 253
TOKEN_SUFFIX = "-ray-token"
POLICY_SUFFIX = "-ray"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def rayjob_name(job_name: str, attempt: int) -> str:
    """One name per (job, attempt), a DNS-1035 label (KubeRay names Services after it) short
    enough for KubeRay's derived names, and never the name of another job's RayJob.

    A job name that is such a label and short enough is kept (`reviews-a1`, at most MAX_NAME - 1
    long); any other becomes `<head>-<sha256 of the whole name>-a<attempt>`, exactly MAX_NAME
    long, so the two forms never meet, and two long names with the same head differ in at least
    12 hex digits of their hashes.
    """
    suffix = f"-a{attempt}"
    if _DNS_LABEL.match(job_name) and len(job_name) + len(suffix) < MAX_NAME:
        return job_name + suffix
    return (
        _hashed(re.sub(r"[^a-z0-9-]", "-", job_name.lower()), job_name, MAX_NAME - len(suffix), "j") + suffix
    )


def _hashed(head: str, whole: str, length: int, lead: str) -> str:
    """`head`, cut, then `-` and the hex SHA-256 of `whole`: exactly `length` characters."""
    digest = hashlib.sha256(whole.encode()).hexdigest()
    if not head[:1].isalpha():
        head = lead + head
    head = head[: length - 13]  # at least 12 hex digits of the hash
    return f"{head}-{digest[: length - len(head) - 1]}"


def label_value(value: str) -> str:
    """`value` as a label value, one to one: kept when it is one of at most 62 characters, else a
    head and its SHA-256, exactly 63 (NetworkPolicies select a job's pods by this label)."""
    if len(value) < 63 and _LABEL_VALUE.match(value):
        return value
    return _hashed(re.sub(r"[^A-Za-z0-9_.-]", "-", value), value, 63, "v")


def _suffixed(job_name: str, suffix: str) -> str:
    """`<job name><suffix>`, a DNS subdomain; a name that would be too long is cut and hashed to
    exactly MAX_SUBDOMAIN characters, so no two jobs share one."""
    name = job_name + suffix
    if len(name) < MAX_SUBDOMAIN:
        return name
    digest = hashlib.sha256(job_name.encode()).hexdigest()
    head = job_name[: MAX_SUBDOMAIN - len(suffix) - 17].rstrip(".-")
    return f"{head}-{digest[: MAX_SUBDOMAIN - len(head) - 1 - len(suffix)]}{suffix}"


def ray_token_secret_name(rayjob: str) -> str:
    """The Secret with the Ray token of one RayJob (one attempt): `<RayJob name>-ray-token`."""
    return _suffixed(rayjob, TOKEN_SUFFIX)


def network_policy_name(job_name: str) -> str:
    return _suffixed(job_name, POLICY_SUFFIX)
