// Wrapper module: builds SeaweedFS's `weed` with the replace directive its own go.mod carries
// (a plain `go install pkg@version` refuses modules with replace directives).
module transfer-operator/hack/controlplane/components/seaweedfs

go 1.26.6

require github.com/seaweedfs/seaweedfs v0.0.0-20261109003541-7506e5f91cd6

replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
