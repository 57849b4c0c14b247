"""Every file of the bad-input corpus is refused by the models, with a message naming the field;
the semantic ones are accepted by the schema and refused against the example fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from transfer_operator.api.config import OperatorConfig
from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob
from transfer_operator.cli import load_objects, main
from transfer_operator.scheduler.from_api import job_request_of
from transfer_operator.scheduler.schedule import estimate_options
from transfer_operator.scheduler.snapshot import snapshot_of

ROOT = Path(__file__).resolve().parents[3]
CORPUS = sorted((ROOT / "tests" / "corpus" / "bad").glob("*.yaml"))
FILES_DIR = ROOT / "tests" / "corpus" / "files"
FILES = yaml.safe_load((FILES_DIR / "index.yaml").read_text())


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 90
    categories = {entry["category"] for entry in FILES}
    assert categories == {"yaml", "type", "size", "name"} and len(FILES) >= 60


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_input_is_answered(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    annotations = document["metadata"]["annotations"]
    expect, says = annotations["transfer.dev/expect"], annotations["transfer.dev/says"]
    parse = parse_transferjob if document["kind"] == "TransferJob" else parse_gpupool
    if expect in ("schema", "cel", "operator"):
        with pytest.raises(InvalidSpec) as raised:
            parse(document)
        assert any(says in problem for problem in raised.value.problems), raised.value.problems
        return
    job = parse(document)  # the schema accepts it; only the fleet can refuse it
    _, pools, _ = load_objects([ROOT / "manifests" / "examples" / "pools.yaml"])
    snapshot, _ = snapshot_of(pools, [], OperatorConfig())
    reason = estimate_options(job_request_of(job), snapshot.pools).static_reason
    assert reason is not None and says in reason[1], reason


@pytest.mark.parametrize("entry", FILES, ids=[entry["file"] for entry in FILES])
def test_cli_answers_every_file_in_one_line_per_problem(entry) -> None:
    result = CliRunner().invoke(main, ["validate", str(FILES_DIR / entry["file"])])
    assert isinstance(result.exception, SystemExit) or result.exception is None, (
        result.exception
    )  # no traceback
    assert result.exit_code == (1 if entry["expect"] == "refused" else 0), result.output
    assert entry["says"] in result.output, result.output
    lines = result.output.splitlines()
    marker = "✗ " if entry["expect"] == "refused" else "✓ "
    assert lines and all(line.startswith(marker) for line in lines), result.output
