#!/usr/bin/env bash
# Builds one extra server from the Go module proxy into its own cache directory, keyed by what
# it is built from (so the control plane's cache stays valid when a component changes):
#   ${TRANSFER_OPERATOR_CACHE:-~/.cache/transfer-operator}/bin/<name>-<hash>/<output>
# and prints that directory as the last line of stdout (progress goes to stderr).
#
# A component is a folder components/<name>/ with a wrapper go.mod (+ go.sum) and a
# component.env naming VERSION, MODULE, PACKAGE and OUTPUT (and GOTOOLCHAIN when the module
# needs a newer Go than the machine's).
#
#   build-component.sh seaweedfs                   # S3 server for the dev cluster and the tests
#   build-component.sh seaweedfs --print-bin-dir   # where it goes; no build
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${1:?usage: build-component.sh NAME [--print-bin-dir]}
component_dir="$here/components/$name"
[[ -f "$component_dir/component.env" ]] || { echo "build-component.sh: no component $name" >&2; exit 2; }
# shellcheck disable=SC1091
source "$component_dir/component.env"
[[ -z "${GOTOOLCHAIN:-}" ]] || export GOTOOLCHAIN

cache_root=${TRANSFER_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/transfer-operator}
key_hash=$(cat "$component_dir"/component.env "$component_dir"/go.mod | sha256sum | cut -c1-10)
bin_dir="$cache_root/bin/$name-$key_hash"

if [[ "${2:-}" == "--print-bin-dir" || -f "$bin_dir/.stamp" ]]; then
  echo "$bin_dir"
  exit 0
fi

log() { echo "build-component.sh: $*" >&2; }
command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
grep -q "$MODULE $VERSION" "$component_dir/go.mod" ||
  { log "components/$name/go.mod does not require $MODULE $VERSION"; exit 1; }

mkdir -p "$cache_root/bin"
exec 9>"$cache_root/bin/.build-$name.lock"
flock 9
if [[ -f "$bin_dir/.stamp" ]]; then
  echo "$bin_dir"
  exit 0
fi
start_s=$SECONDS
tmp=$(mktemp -d "$cache_root/bin/.tmp-$name-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "building $name ($MODULE $VERSION)"
# The wrapper module sits inside this repository's git work tree: -buildvcs=false.
(cd "$component_dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "-s -w" \
  -o "$tmp/$OUTPUT" "$PACKAGE")
# A component may copy more of its module into the output (e.g. CRDs): post-build.sh OUTPUT_DIR.
if [[ -x "$component_dir/post-build.sh" ]]; then
  (cd "$component_dir" && GOFLAGS="-mod=mod" "$component_dir/post-build.sh" "$tmp")
fi
{
  echo "VERSION=$VERSION"
  echo "GO_VERSION=$(go env GOVERSION)"
  echo "BUILD_SECONDS=$((SECONDS - start_s))"
} >"$tmp/versions.txt"
chmod 755 "$tmp"
touch "$tmp/.stamp"
rm -rf "$bin_dir"
mv -T "$tmp" "$bin_dir"
trap - EXIT
log "built $name in $((SECONDS - start_s))s"
echo "$bin_dir"
exit
