"""Read YAML/JSON files the way the API server would take their objects, and refuse the rest.

`kubectl apply` turns YAML into JSON before the API server sees it; this module does the same
conversion, strictly and with bounds, so that `transferctl` never crashes on, nor runs away
with, a file a user hands it:

- bytes: at most MAX_FILE_BYTES; UTF-8 only (a UTF-8 BOM is dropped); no NUL byte (which is
  how a UTF-16 or binary file shows itself);
- YAML: built from libyaml's event stream without recursion; a document at most MAX_DEPTH deep
  and MAX_NODES nodes with every alias expanded (an "alias bomb" is refused before anything is
  built); no duplicate key; only the core tags (`!!str`, `!!int`, ...);
- scalars by the YAML 1.2 core schema, which is what JSON can say: `yes`, `on`, `no` stay
  strings (YAML 1.1 made them booleans), `1:20` is no sexagesimal number, `2024-01-01` no date;
  `.inf` and `.nan` are refused (JSON has no Infinity or NaN).

Every refusal is one line: `<file>: <what>` naming the line or the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transfer_operator.api.enums import API_VERSION
from transfer_operator.api.models import GPUPool, TransferJob
from transfer_operator.api.queues import (
    QueueRules,
    TransferPriorityClass,
    TransferQueue,
    parse_transferpriorityclass,
    parse_transferqueue,
)
from transfer_operator.api.validation import InvalidSpec, parse_gpupool, parse_transferjob, printable

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 200_000
MAX_DOCUMENTS = 10_000

_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_NON_FINITE = re.compile(r"^([-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$")
_TAG = "tag:yaml.org,2002:"
_CORE_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}


class LoadError(ValueError):
    """A file that is no sequence of JSON-like YAML documents; the message is one line."""


@dataclass(frozen=True, slots=True)
class Document:
    file: Path
    index: int  # 1-based position in the file
    body: Any  # a dict for any object; other values are refused by the caller


def read_text(data: bytes, source: str) -> str:
    """`data` as text, or LoadError for what is not UTF-8 YAML/JSON."""
    if len(data) > MAX_FILE_BYTES:
        raise LoadError(f"{source}: {len(data)} bytes, more than the {MAX_FILE_BYTES} a file may have")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and (data[0] == 0 or data[1] == 0)):
        raise LoadError(f"{source}: UTF-16 or UTF-32 text; save the file as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise LoadError(f"{source}: a NUL byte at offset {nul}; this is not a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LoadError(f"{source}: not UTF-8 (byte {error.start}); save the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def _scalar(event: yaml.ScalarEvent, where: str) -> Any:
    value: str = event.value
    tag = event.tag
    if tag is not None and tag != "!":
        if tag not in _CORE_TAGS:
            raise LoadError(f"{where}: tag {tag} is not allowed (only the YAML core tags)")
        kind = tag.removeprefix(_TAG)
        if kind == "str":
            return value
        resolved = _resolve_plain(value, where)
        wanted = {"int": int, "float": float, "bool": bool, "null": type(None)}.get(kind)
        if kind == "float" and isinstance(resolved, int) and not isinstance(resolved, bool):
            return float(resolved)
        if (
            wanted is None
            or not isinstance(resolved, wanted)
            or (kind == "int" and isinstance(resolved, bool))
        ):
            raise LoadError(f"{where}: {value!r} is not a valid !!{kind}")
        return resolved
    if not event.implicit[0]:  # quoted, literal or folded: a string
        return value
    return _resolve_plain(value, where)


def _resolve_plain(value: str, where: str) -> Any:
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        number = float(value)
        if math.isinf(number):
            raise LoadError(f"{where}: {value} is too large for a number JSON can carry")
        return number
    if _NON_FINITE.match(value):
        raise LoadError(f"{where}: {value} is not a number JSON can carry (no Infinity or NaN)")
    return value


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being built."""

    value: dict[str, Any] | list[Any]
    path: str
    anchor: str | None
    line: int
    size: int = 1
    height: int = 1
    key: Any = None  # the pending key of a mapping, _NO_KEY between entries
    key_is_merge: bool = False
    merged: set[str] = field(default_factory=set)  # keys that came from a merge (<<): may be overridden


_NO_KEY = object()


def _child_path(frame: _Frame | None, index_or_key: Any) -> str:
    if frame is None:
        return ""
    part = f"[{index_or_key}]" if isinstance(frame.value, list) else f".{index_or_key}"
    return (frame.path + part).lstrip(".")


def load_documents(text: str, source: str) -> list[Any]:
    """Every document of a YAML stream as plain JSON values (dict, list, str, int, float, bool, None)."""
    documents: list[Any] = []
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int, int]] = {}  # name -> (value, expanded size, height)
    nodes = 0
    root: list[Any] = []

    def where(line: int) -> str:
        path = printable(_child_path(stack[-1], _pending_name(stack[-1])), 120) if stack else ""
        return f"{source}: line {line + 1}" + (f" ({path})" if path else "")

    def add(value: Any, size: int, height: int, line: int) -> None:
        nonlocal nodes
        nodes += size
        if nodes > MAX_NODES:
            raise LoadError(
                f"{where(line)}: more than {MAX_NODES} values once aliases are expanded (an alias bomb?)"
            )
        if len(stack) + height > MAX_DEPTH:
            raise LoadError(f"{where(line)}: nested deeper than {MAX_DEPTH} levels")
        if not stack:
            root.append(value)
            return
        frame = stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.value, list):
            frame.value.append(value)
            return
        if frame.key is _NO_KEY:
            if isinstance(value, dict | list):
                raise LoadError(
                    f"{where(line)}: a mapping key must be a scalar, not a {type(value).__name__}"
                )
            frame.key = value
            return
        _set_entry(frame, value, where(line))

    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            line = event.start_mark.line if event.start_mark is not None else 0
            if isinstance(event, yaml.DocumentStartEvent):
                nodes = 0
                anchors.clear()
                root.clear()
            elif isinstance(event, yaml.DocumentEndEvent):
                documents.append(root[0] if root else None)
                if len(documents) > MAX_DOCUMENTS:
                    raise LoadError(f"{source}: more than {MAX_DOCUMENTS} documents")
            elif isinstance(event, yaml.ScalarEvent):
                if stack and isinstance(stack[-1].value, dict) and stack[-1].key is _NO_KEY:
                    # A key: kept as written, as YAML-to-JSON conversion does for `1:` or `true:`.
                    if event.tag is not None and event.tag not in _CORE_TAGS and event.tag != "!":
                        raise LoadError(f"{where(line)}: tag {event.tag} is not allowed")
                    stack[-1].key_is_merge = event.value == "<<" and bool(event.implicit[0])
                    value: Any = event.value
                else:
                    value = _scalar(event, where(line))
                _remember(anchors, event.anchor, value, 1, 0)
                add(value, 1, 0, line)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise LoadError(f"{where(line)}: alias *{event.anchor} names no anchor")
                value, size, height = anchors[event.anchor]
                add(value, size, height, line)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if event.tag is not None and event.tag not in _CORE_TAGS and event.tag != "!":
                    raise LoadError(
                        f"{where(line)}: tag {event.tag} is not allowed (only the YAML core tags)"
                    )
                if len(stack) >= MAX_DEPTH:
                    raise LoadError(f"{where(line)}: nested deeper than {MAX_DEPTH} levels")
                parent = stack[-1] if stack else None
                if parent is not None and isinstance(parent.value, dict) and parent.key is _NO_KEY:
                    raise LoadError(f"{where(line)}: a mapping key must be a scalar")
                container: dict[str, Any] | list[Any] = (
                    {} if isinstance(event, yaml.MappingStartEvent) else []
                )
                path = _child_path(parent, _pending_name(parent)) if parent is not None else ""
                stack.append(
                    _Frame(
                        container,
                        path,
                        event.anchor,
                        line,
                        key=_NO_KEY if isinstance(container, dict) else None,
                    )
                )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                frame = stack.pop()
                _remember(anchors, frame.anchor, frame.value, frame.size, frame.height)
                add(frame.value, frame.size, frame.height, frame.line)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = str(error.problem or error.context)
        if "nesting depth" in problem:  # libyaml's own limit (1000), met before ours in flow style
            problem = f"nested deeper than {MAX_DEPTH} levels"
        raise LoadError(f"{source}: YAML error at {at}{' '.join(problem.split())}") from None
    except yaml.YAMLError as error:
        raise LoadError(f"{source}: YAML error: {' '.join(str(error).split())}") from None
    except RecursionError:  # not expected: nothing here recurses; kept so nothing escapes
        raise LoadError(f"{source}: nested too deeply") from None
    return documents


def _pending_name(frame: _Frame | None) -> Any:
    if frame is None:
        return ""
    if isinstance(frame.value, list):
        return len(frame.value)
    return "" if frame.key is _NO_KEY else frame.key


def _remember(
    anchors: dict[str, tuple[Any, int, int]], name: str | None, value: Any, size: int, height: int
) -> None:
    if name is not None:
        anchors[name] = (value, size, height)


def _set_entry(frame: _Frame, value: Any, where: str) -> None:
    mapping = frame.value
    assert isinstance(mapping, dict)
    key = frame.key
    frame.key = _NO_KEY
    if frame.key_is_merge:
        frame.key_is_merge = False
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise LoadError(f"{where}: a merge key (<<) takes a mapping or a list of mappings")
        for source in sources:
            for merged_key, merged in source.items():
                if merged_key not in mapping:
                    mapping[merged_key] = merged
                    frame.merged.add(merged_key)
        return
    name = key if isinstance(key, str) else str(key)
    if name in mapping and name not in frame.merged:
        raise LoadError(f"{where}: duplicate key {name!r}")
    frame.merged.discard(name)
    mapping[name] = value


def load_file(path: Path) -> list[Document]:
    """The documents of one file, or LoadError (one line) when the file is not safe YAML/JSON."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LoadError(f"{printable(str(path), 200)}: cannot read: {error.strerror or error}") from None
    source = printable(str(path), 200)
    text = read_text(data, source)
    return [Document(path, index, body) for index, body in enumerate(load_documents(text, source), 1)]


@dataclass
class Loaded:
    """The objects of some files, and one line for each document that was refused."""

    jobs: list[TransferJob] = field(default_factory=list)
    pools: list[GPUPool] = field(default_factory=list)
    queues: list[TransferQueue] = field(default_factory=list)
    classes: list[TransferPriorityClass] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def rules(self) -> QueueRules:
        return QueueRules(self.queues, self.classes)


def _parse_job(body: dict[str, Any]) -> TransferJob:
    job = parse_transferjob(body)
    if job.metadata.namespace is None:
        job.metadata.namespace = "default"
    return job


# kind -> its parser and the list of Loaded it goes to
_PARSERS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "TransferJob": (_parse_job, "jobs"),
    "GPUPool": (parse_gpupool, "pools"),
    "TransferQueue": (parse_transferqueue, "queues"),
    "TransferPriorityClass": (parse_transferpriorityclass, "classes"),
}
KINDS = tuple(_PARSERS)


def load_objects(paths: list[Path]) -> Loaded:
    """TransferJobs, GPUPools, TransferQueues and TransferPriorityClasses from files or folders. A file that is not safe YAML, a document
    that is no object, of another kind or apiVersion, invalid, or a second object of the same
    name: each is one problem, and the rest still loads. A job without namespace is in `default`."""
    loaded = Loaded()
    seen: dict[tuple[str, str], str] = {}
    for file in files_of(paths):
        try:
            documents = load_file(file)
        except LoadError as error:
            loaded.problems.append(str(error))
            continue
        for document in documents:
            source = printable(str(file), 200)
            where = f"{source}: document {document.index}" if len(documents) > 1 else source
            loaded.problems += _load_one(document.body, where, loaded, seen)
    return loaded


def _load_one(body: Any, where: str, loaded: Loaded, seen: dict[tuple[str, str], str]) -> list[str]:
    if body is None:
        return []  # an empty document, as kubectl skips it
    if not isinstance(body, dict):
        return [f"{where}: expected an object (kind, apiVersion, metadata, spec), got a {_json_type(body)}"]
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in KINDS:
        got = "no kind" if kind is None else f"kind {printable(str(kind))}"
        return [f"{where}: {got}; expected one of {', '.join(KINDS)}"]
    if api_version != API_VERSION:
        got = "no apiVersion" if api_version is None else f"apiVersion {printable(str(api_version))}"
        return [f"{where}: {kind} with {got}; expected apiVersion {API_VERSION}"]
    metadata = body.get("metadata")
    name = printable(str(metadata.get("name", "?"))) if isinstance(metadata, dict) else "?"
    parse, bucket = _PARSERS[kind]
    try:
        obj = parse(body)
    except InvalidSpec as error:
        return [f"{where}: {kind}/{name}: {problem}" for problem in error.problems]
    key = (kind, obj.key if isinstance(obj, TransferJob) else obj.metadata.name)
    if key in seen:
        return [f"{where}: {kind} {key[1]} is defined twice (first in {seen[key]}); names must be unique"]
    getattr(loaded, bucket).append(obj)
    seen[key] = where
    return []


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "value"
    )


def files_of(paths: list[Path]) -> list[Path]:
    """Each path, a folder as its *.yaml, *.yml and *.json files (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
            )
        else:
            files.append(path)
    return files
