"""Answer with a trained model: what `transferctl predict SOURCE TEXT...` runs.

SOURCE is a model directory a run exported (runs/<name>/model) or a `spec.output.uri` (a local
path or s3://, downloaded first). The directory's transfer_model.json says which trainer wrote
it: a causal LM generates an answer to each text (a user turn; with the run's system prompt and
prompt template when the manifest's trainer config had them), a classifier names a label.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from transfer_trainers import storage
from transfer_trainers.sources import EXPORT_MARKER


def fetch(source: str, into: Path) -> Path:
    """A local directory holding transfer_model.json: `source` itself, or a download of it."""
    if storage.is_remote(source):
        return storage.download_dir(source, into)
    path = Path(source.removeprefix("path:").removeprefix("file://")).expanduser()
    if not (path / EXPORT_MARKER).exists():
        raise FileNotFoundError(f"{path} has no {EXPORT_MARKER}: not a model exported by a run")
    return path


def predict(source: str, texts: list[str], max_new_tokens: int = 32) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = fetch(source, Path(tmp) / "model")
        meta = json.loads((directory / EXPORT_MARKER).read_text())
        if meta.get("trainer") == "causal-lm":
            return _generate(directory, meta, texts, max_new_tokens)
        return _classify(directory, texts)


def _generate(directory: Path, meta: dict[str, Any], texts: list[str], max_new_tokens: int) -> list[str]:
    from transfer_trainers import sft
    from transfer_trainers.recipes.causal_lm import load_output

    model, tokenizer, _ = load_output(directory)
    template, system = meta.get("prompt_template"), meta.get("system_prompt")
    prompts = []
    for text in texts:
        head = [{"role": "system", "content": system}] if system else []
        content = template.format(text=text) if template else text
        prompts.append([*head, {"role": "user", "content": content}])
    return sft.generate(model, tokenizer, prompts, meta.get("max_new_tokens") or max_new_tokens)


def _classify(directory: Path, texts: list[str]) -> list[str]:
    import torch

    from transfer_trainers.recipes.text_classification import load_exported

    model, tokenizer, meta = load_exported(directory)
    model.eval()
    with torch.no_grad():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        probs = model(enc["input_ids"], enc["attention_mask"]).softmax(-1)
    labels = [str(x) for x in meta["labels"]]
    return [f"{labels[int(p.argmax())]} ({float(p.max()):.2f})" for p in probs]
