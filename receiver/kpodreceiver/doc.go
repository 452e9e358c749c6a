// Package kpodreceiver is the kpod receiver: per-pod, per-container kernel metrics from eBPF
// programs and cgroup files, keyed by the container's cgroup and emitted as pdata.
//
//go:generate ../../tools/bin/mdatagen metadata.yaml
package kpodreceiver
