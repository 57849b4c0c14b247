// Wrapper module: builds Kueue's controller manager at a pinned version.
module transfer-operator/hack/controlplane/components/kueue

go 1.26.6

require sigs.k8s.io/kueue v0.17.0
