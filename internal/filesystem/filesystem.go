// Package filesystem is the "filesystem" family: capacity, usage and free space of the
// filesystems mounted in a container, seen through one of its processes (/proc/<pid>/mountinfo and statfs of
// /proc/<pid>/root/<mountpoint>).
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/podid"
)

// Usage is one filesystem's space, in bytes.
type Usage struct {
	Capacity, Used, Available uint64
}

// Stats maps a mount point (as the container sees it) to its filesystem's usage.
type Stats map[string]Usage

// Collector reads container filesystems.
type Collector struct {
	collector.NoBPF
	ProcRoot string
	V2Root   string
	procs    *collector.NSProcs
}

// New returns a collector that looks at containers through procRoot.
func New(procRoot, v2Root string) *Collector {
	return &Collector{ProcRoot: procRoot, V2Root: v2Root,
		procs: &collector.NSProcs{ProcRoot: procRoot, V2Root: v2Root, Kind: "mnt"}}
}

// Close forgets the pods' processes.
func (c *Collector) Close() error {
	c.procs.Close()
	return nil
}

// Collect reads every workload container of x.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]Stats, error) {
	res := c.CollectTargets(ctx, collector.Workloads(x))
	return res.Values, res.Err()
}

// CollectTargets reads every target container. A container sharing the host's mount
// namespace is skipped: its mounts are the node's, which node-level monitoring already
// reports.
func (c *Collector) CollectTargets(ctx context.Context, targets []cgroupfs.Target) collector.Result[Stats] {
	hostNS, hostErr := collector.HostNamespace(c.ProcRoot, "mnt")
	defer c.procs.Begin()()
	return collector.ForEach(ctx, c.V2Root, targets, func(t cgroupfs.Target) (Stats, error) {
		if hostErr != nil {
			return nil, hostErr
		}
		p, ns, ok := c.procs.Find(t.ID, []string{t.Rel})
		if !ok || ns == hostNS {
			return nil, collector.ErrSkip
		}
		pid := strconv.Itoa(p)
		mi := filepath.Join(c.ProcRoot, pid, "mountinfo")
		b, err := cgroupfs.ReadFile(mi)
		if err != nil {
			return nil, collector.ErrSkip // the process exited
		}
		mounts, err := StorageMounts(mi, b)
		if err != nil {
			return nil, err
		}
		out := Stats{}
		root := filepath.Join(c.ProcRoot, pid, "root")
		for _, mp := range mounts {
			u, ok, err := statfs(filepath.Join(root, mp))
			if err != nil {
				return nil, fmt.Errorf("statfs %s in container %s: %w", mp, filepath.Base(t.Rel), err)
			}
			if ok {
				out[mp] = u
			}
		}
		return out, nil
	})
}

// statfs returns the usage of the filesystem at path; ok is false for a mount of a single
// file (the kubelet bind-mounts /etc/hosts and friends), which would repeat the node's disk.
func statfs(path string) (Usage, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.EACCES) {
			// A directory on the way that kpod may not search: the mount is there, kpod
			// lacks the right to reach it.
			return Usage{}, false, fmt.Errorf("%w (needs CAP_DAC_READ_SEARCH)", err)
		}
		return Usage{}, false, nil // gone: nothing to report
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return Usage{}, false, nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return Usage{}, false, err
	}
	bs := uint64(fs.Frsize)
	if bs == 0 {
		bs = uint64(fs.Bsize)
	}
	return Usage{
		Capacity:  fs.Blocks * bs,
		Used:      (fs.Blocks - fs.Bfree) * bs,
		Available: fs.Bavail * bs,
	}, true, nil
}

// skipTypes are filesystems without storage of their own. tmpfs (memory-backed emptyDir,
// secrets, service account tokens) is charged to memory and shows in the memory metrics.
var skipTypes = map[string]bool{
	"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true,
	"devtmpfs": true, "tmpfs": true, "ramfs": true, "securityfs": true, "debugfs": true,
	"tracefs": true, "bpf": true, "pstore": true, "configfs": true, "fusectl": true,
	"hugetlbfs": true, "autofs": true, "binfmt_misc": true, "nsfs": true, "rpc_pipefs": true,
	"selinuxfs": true, "efivarfs": true, "shm": true,
}

// StorageMounts returns the mount points of storage-backed filesystems in a mountinfo file,
// once each, in the order they were first mounted.
func StorageMounts(path string, data []byte) ([]string, error) {
	mounts, err := cgroupfs.ParseMountinfo(path, data)
	if err != nil {
		return nil, err
	}
	// The last mount on a point is the one the container sees (a tmpfs over a volume
	// hides the volume), so judge each point by its last mount.
	var order []string
	last := map[string]string{}
	for _, m := range mounts {
		if _, seen := last[m.MountPoint]; !seen {
			order = append(order, m.MountPoint)
		}
		last[m.MountPoint] = m.FSType
	}
	var out []string
	for _, mp := range order {
		if !skipTypes[last[mp]] {
			out = append(out, mp)
		}
	}
	return out, nil
}
