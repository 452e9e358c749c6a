//go:build tools

// Package cni only pins the CNI plugins scripts/k8s-build.sh builds for the test cluster's
// pod network; it is never compiled (build tag "tools").
package cni

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/tuning"
)
