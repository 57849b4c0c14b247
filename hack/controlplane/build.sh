#!/usr/bin/env bash
# Builds the binaries of the test control plane from the Go module proxy into
#   ${TRANSFER_OPERATOR_CACHE:-~/.cache/transfer-operator}/bin/<version-key>/
# and prints that directory as the last line of stdout (progress goes to stderr).
#
#   kube (multi-call) + symlinks kube-apiserver, kube-controller-manager, kube-scheduler, etcd
#   kwok, helm                 built in the same module graph as kube (see kube/go.mod)
#   ray-operator               KubeRay operator (kuberay/go.mod)
#   crds/kuberay/*.yaml        KubeRay CRDs, copied from the module cache
#   kwok-stages.yaml           kwok's default "fast" node/pod stages, from the module cache
#
# Usage: build.sh [--print-bin-dir]
#   --print-bin-dir  print the directory for the pinned versions and exit (no build).
# A warm run (stamp file present) only hashes a few files and exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${TRANSFER_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/transfer-operator}
key_hash=$(cat "$here/versions.env" "$here/kube/go.mod" "$here/kube/main.go" \
  "$here/kuberay/go.mod" | sha256sum | cut -c1-10)
version_key="k8s-${K8S_VERSION}-${key_hash}"
bin_dir="$cache_root/bin/$version_key"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
  echo "$bin_dir"
  exit 0
fi
if [[ -f "$bin_dir/.stamp" ]]; then
  echo "$bin_dir"
  exit 0
fi

# -buildvcs=false: the wrapper modules sit inside this repository's git work tree.
go_flags="-mod=mod -buildvcs=false"

log() { echo "build.sh: $*" >&2; }

check_pins() {
  grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/kube/go.mod" ||
    { log "kube/go.mod does not require k8s.io/kubernetes $K8S_VERSION"; exit 1; }
  grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/kube/go.mod" ||
    { log "kube/go.mod does not require etcd $ETCD_VERSION"; exit 1; }
  grep -q "sigs.k8s.io/kwok $KWOK_VERSION" "$here/kube/go.mod" ||
    { log "kube/go.mod does not require kwok $KWOK_VERSION"; exit 1; }
  grep -q "helm.sh/helm/v3 $HELM_VERSION" "$here/kube/go.mod" ||
    { log "kube/go.mod does not require helm $HELM_VERSION"; exit 1; }
  grep -q "github.com/ray-project/kuberay/ray-operator $KUBERAY_VERSION" "$here/kuberay/go.mod" ||
    { log "kuberay/go.mod does not require ray-operator $KUBERAY_VERSION"; exit 1; }
}

# Directory of a module in the module cache (downloads it if needed).
module_dir() {
  (cd "$here/$1" && GOFLAGS="$go_flags" go list -m -f '{{.Dir}}' "$2")
}

# Version stamps `make` would set: without them the apiserver reports v0.0.0-master, which
# breaks version checks in clients (e.g. a chart's kubeVersion constraint).
kube_ldflags() {
  local minor=${K8S_VERSION#v*.}
  minor=${minor%%.*}
  local component_base=k8s.io/component-base/version
  echo "-s -w -X $component_base.gitVersion=$K8S_VERSION -X $component_base.gitMajor=1" \
    "-X $component_base.gitMinor=$minor -X $component_base.gitTreeState=clean" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}

build_kube() {
  local out=$1
  log "building kube (apiserver, controller-manager, scheduler, etcd), kwok, helm"
  (cd "$here/kube" && GOFLAGS="$go_flags" go build -trimpath -ldflags "$(kube_ldflags)" -o "$out/" \
    . helm.sh/helm/v3/cmd/helm sigs.k8s.io/kwok/cmd/kwok)
  for name in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    ln -sf kube "$out/$name"
  done
}

build_kuberay() {
  local out=$1
  log "building KubeRay operator $KUBERAY_VERSION"
  (cd "$here/kuberay" && GOFLAGS="$go_flags" go build -trimpath -ldflags "-s -w" \
    -o "$out/ray-operator" github.com/ray-project/kuberay/ray-operator)
  mkdir -p "$out/crds/kuberay"
  cp "$(module_dir kuberay github.com/ray-project/kuberay/ray-operator)"/config/crd/bases/*.yaml \
    "$out/crds/kuberay/"
  chmod u+w "$out"/crds/kuberay/*.yaml
}

copy_kwok_stages() {
  local out=$1 stages
  stages="$(module_dir kube sigs.k8s.io/kwok)/kustomize/stage"
  {
    for f in node/fast/node-initialize.yaml \
      node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$stages/$f"
    done
  } >"$out/kwok-stages.yaml"
}

main() {
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  check_pins
  mkdir -p "$cache_root/bin"
  # One build at a time; a second caller waits and then finds the stamp.
  exec 9>"$cache_root/bin/.build.lock"
  flock 9
  if [[ -f "$bin_dir/.stamp" ]]; then
    echo "$bin_dir"
    exit 0
  fi

  local start_s=$SECONDS tmp
  tmp=$(mktemp -d "$cache_root/bin/.tmp-$version_key-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  build_kube "$tmp"
  log "kube, kwok, helm built after $((SECONDS - start_s))s"
  build_kuberay "$tmp"
  copy_kwok_stages "$tmp"

  local elapsed_s=$((SECONDS - start_s))
  {
    grep -E '^[A-Z0-9_]+=' "$here/versions.env"
    echo "GO_VERSION=$(go env GOVERSION)"
    echo "BUILD_SECONDS=$elapsed_s"
  } >"$tmp/versions.txt"
  chmod 755 "$tmp"
  touch "$tmp/.stamp"
  rm -rf "$bin_dir"
  mv -T "$tmp" "$bin_dir"
  trap - EXIT
  log "built $version_key in ${elapsed_s}s"
  echo "$bin_dir"
}

main "$@"; exit  # exit at once: the file may be edited while a long build runs
