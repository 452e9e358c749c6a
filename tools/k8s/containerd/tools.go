//go:build tools

// Package containerd only pins the commands scripts/k8s-build.sh builds; it is never
// compiled (build tag "tools").
package containerd

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
