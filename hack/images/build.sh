#!/usr/bin/env bash
# Build the operator and trainer OCI images from package registries only: a Debian root
# filesystem from mmdebstrap, the project's wheel and its PyPI dependencies installed into it with
# pip, assembled with umoci, tagged with the project version, and loaded into podman's store.
#
#   bash hack/images/build.sh [operator|trainer ...]     (default: both)
#
# Each image is cached by content (this script, pyproject.toml and the packaged sources): a
# second run with nothing changed reuses the OCI layout under $CACHE and only prints its size.
# Needs root (mmdebstrap, chroot) and the Debian packages mmdebstrap, umoci and podman.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${TRANSFER_IMAGE_CACHE:-$HOME/.cache/transfer-operator/images}
SUITE=bookworm # Python 3.11, the version the project targets
REGISTRY=ghcr.io/transfer-operator
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml")
PYTHON=${PYTHON:-python3}
HOST_CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
targets=("$@")
((${#targets[@]})) || targets=(operator trainer)

need() {
  local missing=()
  for tool in mmdebstrap umoci podman; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q && apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
}

# The inputs an image is built from; a change to any of them is a new image.
content_key() {
  local target=$1
  (cd "$ROOT" && git ls-files -z -- hack/images pyproject.toml operator trainers README.md LICENSE |
    xargs -0 sha256sum && echo "$SUITE $target") | sha256sum | cut -c1-16
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

build_rootfs() {
  local target=$1 rootfs=$2 extra
  case $target in
    operator) extra=operator ;;
    trainer) extra=trainers ;;
  esac
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
    --customize-hook='chroot "$1" useradd --uid 10001 --home-dir /home/transfer --create-home transfer' \
    "$SUITE" "$rootfs" >&2
  in_rootfs "$rootfs" python3 -m venv /opt/transfer
  in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet --upgrade pip
  local wheel_file
  wheel_file=$(basename "$WHEEL")
  # Trainer: PyPI's Linux torch wheel (CUDA runtime from the nvidia-* wheels) runs on CPU too;
  # the CPU-only index is not a registry this build can reach (docs/operations.md#images).
  in_rootfs "$rootfs" /opt/transfer/bin/pip install --quiet "/wheels/$wheel_file[$extra]"
  rm -rf "${rootfs:?}/wheels" "$rootfs/host-ca.crt" "$rootfs/root/.cache/pip" "$rootfs/var/lib/apt/lists/"* "$rootfs/etc/resolv.conf"
  find "$rootfs/opt/transfer" -name __pycache__ -prune -exec rm -rf {} +
}

assemble() {
  local target=$1 rootfs=$2 layout=$3 tag=$4
  local bundle=$CACHE/work/$target-bundle
  rm -rf "$layout" "$bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  rmdir "$bundle/rootfs" && mv "$rootfs" "$bundle/rootfs"
  umoci repack --image "$layout:$tag" "$bundle"
  local entry=() user=10001 workdir=/home/transfer
  case $target in
    operator) entry=(--config.entrypoint /usr/bin/tini --config.entrypoint -- --config.cmd transferctl --config.cmd operator) ;;
    trainer) entry=(--config.entrypoint /usr/bin/tini --config.entrypoint -- --config.cmd python) ;;
  esac
  umoci config --image "$layout:$tag" "${entry[@]}" --config.user "$user" --config.workingdir "$workdir" \
    --config.env PATH=/opt/transfer/bin:/usr/local/bin:/usr/bin:/bin --config.env PYTHONUNBUFFERED=1 \
    --config.env HOME=/home/transfer --config.env HF_HUB_OFFLINE=1 \
    --config.label "org.opencontainers.image.version=$VERSION"
  umoci gc --layout "$layout"
  rm -rf "$bundle"
}

need
mkdir -p "$CACHE/work"
for target in "${targets[@]}"; do
  case $target in
    operator) name=$REGISTRY/transfer-operator ;;
    trainer) name=$REGISTRY/transfer-trainers ;;
    *) echo "unknown image '$target' (operator or trainer)" >&2 && exit 2 ;;
  esac
  key=$(content_key "$target")
  layout=$CACHE/$target-$key
  start=$SECONDS
  if [[ -f $layout/index.json ]]; then
    echo "$target: cached $layout" >&2
  else
    WHEEL=$(wheel "$target")
    WHEEL_DIR=$(dirname "$WHEEL")
    rootfs=$CACHE/work/$target-rootfs
    rm -rf "$rootfs"
    build_rootfs "$target" "$rootfs"
    assemble "$target" "$rootfs" "$layout.partial" "$VERSION"
    mv "$layout.partial" "$layout"
  fi
  # A relative path: podman names the image after it, and `.cache` is no valid reference part.
  image_id=$(cd "$CACHE" && podman pull --quiet "oci:$(basename "$layout"):$VERSION")
  podman tag "$image_id" "$name:$VERSION"
  podman untag "$image_id" "localhost/$(basename "$layout"):latest" 2>/dev/null || true
  size=$(du -sh --apparent-size "$layout/blobs" | cut -f1)
  echo "$name:$VERSION  layout $layout  compressed $size  ($((SECONDS - start)) s)"
done
