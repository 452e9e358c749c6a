// Package iface is the "iface" family: the interface counters of a pod's network namespace,
// from /proc/<pid>/net/dev of one of the pod's processes (a pod-level family: results are
// keyed by the pod cgroup's id).
package iface

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/podid"
)

// Counters are one interface's cumulative counters.
type Counters struct {
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// Stats are a pod's interfaces by name (loopback excluded).
type Stats map[string]Counters

// Collector reads pod network namespaces.
type Collector struct {
	collector.NoBPF
	ProcRoot string
	V2Root   string
	procs    *collector.NSProcs
}

// New returns a collector reading <procRoot>/<pid>/net/dev.
func New(procRoot, v2Root string) *Collector {
	return &Collector{ProcRoot: procRoot, V2Root: v2Root,
		procs: &collector.NSProcs{ProcRoot: procRoot, V2Root: v2Root, Kind: "net"}}
}

// Close forgets the pods' processes.
func (c *Collector) Close() error {
	c.procs.Close()
	return nil
}

// Collect reads the namespace of every pod of x, keyed by the pod cgroup's id.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]Stats, error) {
	var pods []PodTarget
	for _, p := range x.Pods {
		t := PodTarget{ID: p.CgroupID, Rel: p.Rel}
		for _, c := range p.Containers { // the sandbox holds the namespace: look there first
			if c.Sandbox {
				t.ContainerRels = append([]string{c.Rel}, t.ContainerRels...)
			} else {
				t.ContainerRels = append(t.ContainerRels, c.Rel)
			}
		}
		pods = append(pods, t)
	}
	res := c.CollectPods(ctx, pods)
	return res.Values, res.Err()
}

// CollectPods reads each pod's namespace through the first process found in the pod's
// cgroups (rels: the sandbox first, then the other containers). A pod in the host's network
// namespace (hostNetwork) is skipped: its counters are the node's, not the pod's.
func (c *Collector) CollectPods(ctx context.Context, pods []PodTarget) collector.Result[Stats] {
	targets := make([]cgroupfs.Target, len(pods))
	byID := map[uint64]PodTarget{}
	for i, p := range pods {
		targets[i] = cgroupfs.Target{ID: p.ID, Rel: p.Rel}
		byID[p.ID] = p
	}
	hostNS, hostErr := collector.HostNamespace(c.ProcRoot, "net")
	defer c.procs.Begin()()
	return collector.ForEach(ctx, c.V2Root, targets, func(t cgroupfs.Target) (Stats, error) {
		if hostErr != nil {
			return nil, hostErr
		}
		_, ns, ok := c.procs.Find(t.ID, byID[t.ID].ContainerRels)
		if !ok || ns == hostNS {
			return nil, collector.ErrSkip
		}
		b, path, err := c.procs.ReadFile(t.ID, "net/dev")
		if err != nil {
			return nil, collector.ErrSkip
		}
		return Parse(path, b)
	})
}

// PodTarget is a pod and the cgroups in which to look for one of its processes.
type PodTarget struct {
	ID            uint64 // the pod cgroup's id: results are keyed by it
	Rel           string
	ContainerRels []string // sandbox first
}

// Parse parses /proc/net/dev. Loopback is left out: it never leaves the pod.
func Parse(path string, data []byte) (Stats, error) {
	out := Stats{}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "Receive") || !strings.Contains(lines[1], "face") {
		return nil, fmt.Errorf("%s: not a net/dev file", path)
	}
	for i, line := range lines[2:] {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("%s:%d: no interface name in %q", path, i+3, line)
		}
		name = strings.TrimSpace(name)
		if !validName(name) {
			return nil, fmt.Errorf("%s:%d: %q is not an interface name", path, i+3, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s:%d: interface %s given twice", path, i+3, name)
		}
		f := strings.Fields(rest)
		if len(f) != 16 {
			return nil, fmt.Errorf("%s:%d: %d fields for %s, want 16", path, i+3, len(f), name)
		}
		var v [16]uint64
		for j, s := range f {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", path, i+3, name, err)
			}
			v[j] = n
		}
		if name == "lo" {
			continue
		}
		out[name] = Counters{
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrops: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrops: v[11],
		}
	}
	return out, nil
}

// validName is the kernel's rule for interface names (dev_valid_name): 1 to 15 bytes, not "."
// or "..", no '/', ':' or white space (the kernel's isspace also counts the byte 0xa0).
func validName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
			return false
		}
	}
	return true
}
