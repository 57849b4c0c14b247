#!/usr/bin/env bash
# The CRDs the kwok provider needs beside its binary: karpenter.sh NodePool, NodeClaim,
# NodeOverlay, autoscaling.x-k8s.io CapacityBuffer, and karpenter.kwok.sh KWOKNodeClass.
set -euo pipefail
out=${1:?usage: post-build.sh OUTPUT_DIR}
module_dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)
mkdir -p "$out/crds"
cp "$module_dir"/kwok/charts/crds/*.yaml "$module_dir"/kwok/apis/crds/*.yaml "$out/crds/"
