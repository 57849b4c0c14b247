"""Validation never crashes: any JSON-like document is either a TransferJob/GPUPool or an
InvalidSpec with readable problems. TRANSFER_FUZZ_EXAMPLES=10000 for the long run."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob

EXAMPLES = int(os.environ.get("TRANSFER_FUZZ_EXAMPLES", "300"))
KEYS = [
    "model",
    "dataset",
    "strategy",
    "resources",
    "placement",
    "budget",
    "training",
    "trainer",
    "checkpoint",
    "source",
    "uri",
    "type",
    "lora",
    "rank",
    "workers",
    "gpusPerWorker",
    "gpuType",
    "regions",
    "maxDollars",
    "region",
    "nodes",
    "gpusPerNode",
    "pricing",
    "onDemandPerGpuHour",
    "spotPerGpuHour",
    "priority",
    "queue",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.sampled_from(["lora", "fineTune", "A100", "eu-west", "package:x"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=12)), children, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=documents, kind=st.sampled_from(["TransferJob", "GPUPool"]), name=st.text(max_size=300))
def test_any_document_is_parsed_or_refused_with_reasons(spec, kind, name):
    document = {"apiVersion": "transfer.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    parse = parse_transferjob if kind == "TransferJob" else parse_gpupool
    try:
        parse(document)
    except InvalidSpec as error:
        assert error.problems and all(isinstance(p, str) and p for p in error.problems)
