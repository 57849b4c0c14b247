"""Which checkpoint a new attempt resumes from: the latest one that was written in full."""

from __future__ import annotations

import json
from pathlib import Path

from transfer_trainers import runner
from transfer_trainers.loop import META_FILE, STATE_FILE


def a_checkpoint(root: Path, run: str, step: int, state: bytes, recorded_bytes: int | None) -> Path:
    directory = root / run / f"checkpoint_{step:06d}"
    directory.mkdir(parents=True)
    (directory / STATE_FILE).write_bytes(state)
    meta: dict[str, int] = {"step": step}
    if recorded_bytes is not None:
        meta["state_bytes"] = recorded_bytes
    (directory / META_FILE).write_text(json.dumps(meta))
    return directory


def test_a_checkpoint_cut_off_mid_upload_is_skipped(tmp_path: Path) -> None:
    whole = a_checkpoint(tmp_path, "job-attempt-1", 20, b"x" * 100, 100)
    a_checkpoint(tmp_path, "job-attempt-1", 30, b"x" * 40, 100)  # state.pt only partly there
    found = runner.latest_checkpoint(str(tmp_path))
    assert found is not None and found[0] == str(whole) and found[1]["step"] == 20


def test_a_checkpoint_without_its_state_file_is_skipped(tmp_path: Path) -> None:
    whole = a_checkpoint(tmp_path, "job-attempt-1", 10, b"x" * 8, 8)
    gone = a_checkpoint(tmp_path, "job-attempt-2", 40, b"x" * 8, 8)
    (gone / STATE_FILE).unlink()
    found = runner.latest_checkpoint(str(tmp_path))
    assert found is not None and found[0] == str(whole)


def test_checkpoints_from_before_sizes_were_recorded_still_count(tmp_path: Path) -> None:
    old = a_checkpoint(tmp_path, "job-attempt-1", 50, b"x" * 8, None)
    found = runner.latest_checkpoint(str(tmp_path))
    assert found is not None and found[0] == str(old)
