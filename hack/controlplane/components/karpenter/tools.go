//go:build tools

// Keeps the provider's main package in this module's build list for go mod tidy.
package tools

import _ "sigs.k8s.io/karpenter/kwok"
