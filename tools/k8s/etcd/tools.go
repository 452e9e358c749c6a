//go:build tools

// Package etcd only pins the etcd server scripts/k8s-build.sh builds; it is never compiled
// (build tag "tools").
package etcd

import (
	_ "go.etcd.io/etcd/server/v3"
)
