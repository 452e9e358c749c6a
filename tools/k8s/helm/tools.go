//go:build tools

// Package helm only pins the helm command scripts/k8s-build.sh builds; it is never compiled
// (build tag "tools").
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
