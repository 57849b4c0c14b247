#!/usr/bin/env bash
# Check that an image is reproducible: build it from scratch into a fresh cache (sharing only
# pip's download cache) and compare its manifest digest with the image build.sh already cached
# (built first when it is not). The same inputs must give the same bytes.
#
#   bash hack/images/reproduce.sh [operator|trainer]      (default: operator)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:-operator}
CACHE=${TRANSFER_IMAGE_CACHE:-$HOME/.cache/transfer-operator/images}

digest() { # the manifest digest of the image, as build.sh reports it, built or cached in cache $1
  TRANSFER_IMAGE_CACHE=$1 bash "$ROOT/hack/images/build.sh" "$target" | sed -n 's/.* digest \([^ ]*\) .*/\1/p'
}

first=$(digest "$CACHE")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$CACHE/pip"
ln -s "$CACHE/pip" "$scratch/pip"
second=$(digest "$scratch")
echo "$target: cached $first"
echo "$target: rebuilt $second"
if [[ $first != "$second" ]]; then
  echo "$target: NOT reproducible" >&2
  exit 1
fi
echo "$target: reproducible"
