// Package diskio counts bytes and operations each container submits to each block device.
//
// Sources, in order of preference:
//   - cgroup v2 io.stat (pure v2 hosts): exact, kept by the kernel's rstat, includes writeback.
//   - the block_bio_queue tracepoint (hybrid and v1 hosts): exact for I/O the container
//     submits itself (direct I/O, reads, fsync'd writes in its context); buffered writeback
//     runs in flusher threads and is not charged to the pod, which v1 cannot do either.
//   - v1 blkio.throttle.io_service_bytes/io_serviced, only when BPF is unavailable: on recent
//     kernels blk-throttle keeps these at ~0 until some throttle limit was set on the device.
package diskio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
)

// Stats are a container's counters per device.
type Stats map[cgroupfs.Dev]cgroupfs.IOCounters

// Add merges o into s (BPF counts of a container's child cgroups).
func (s Stats) Add(o Stats) Stats {
	if s == nil {
		s = Stats{}
	}
	for d, c := range o {
		v := s[d]
		v.ReadBytes += c.ReadBytes
		v.WriteBytes += c.WriteBytes
		v.Reads += c.Reads
		v.Writes += c.Writes
		s[d] = v
	}
	return s
}

// Source names where the numbers come from.
type Source string

const (
	SourceIOStat Source = "io.stat"
	SourceBPF    Source = "bpf:block_bio_queue"
	SourceBlkio  Source = "blkio.throttle"
)

// FileCollector reads io.stat or the v1 blkio.throttle files.
type FileCollector struct {
	layout cgroupfs.Layout
	source Source
}

// NewFileCollector returns the file-based collector for the layout, or an error if the host
// has neither an io controller on v2 nor a v1 blkio controller.
func NewFileCollector(l cgroupfs.Layout) (*FileCollector, error) {
	switch {
	case l.V2Controllers["io"]:
		return &FileCollector{layout: l, source: SourceIOStat}, nil
	case l.V1["blkio"] != "":
		return &FileCollector{layout: l, source: SourceBlkio}, nil
	}
	return nil, errors.New("neither a cgroup v2 io controller nor a v1 blkio controller is mounted")
}

// Source says which files are read.
func (c *FileCollector) Source() Source { return c.source }

// Collect reads every target.
func (c *FileCollector) Collect(ctx context.Context, targets []collector.Target) collector.Result[Stats] {
	return collector.ForEach(ctx, c.layout.V2, targets, func(t collector.Target) (Stats, error) {
		dir, v2, _ := c.layout.ControllerDir("blkio", t.Rel)
		if v2 {
			return readIOStat(dir)
		}
		return readBlkio(dir)
	})
}

func readIOStat(dir string) (Stats, error) {
	path := filepath.Join(dir, "io.stat")
	b, err := cgroupfs.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := cgroupfs.ParseIOStat(path, b)
	return Stats(m), err
}

func readBlkio(dir string) (Stats, error) {
	bytesPath := filepath.Join(dir, "blkio.throttle.io_service_bytes")
	opsPath := filepath.Join(dir, "blkio.throttle.io_serviced")
	b, err := cgroupfs.ReadFile(bytesPath)
	if err != nil {
		return nil, err
	}
	o, err := cgroupfs.ReadFile(opsPath)
	if err != nil {
		return nil, err
	}
	bytesBy, err := cgroupfs.ParseBlkioThrottle(bytesPath, b)
	if err != nil {
		return nil, err
	}
	opsBy, err := cgroupfs.ParseBlkioThrottle(opsPath, o)
	if err != nil {
		return nil, err
	}
	out := Stats{}
	for d, v := range bytesBy {
		c := out[d]
		c.ReadBytes, c.WriteBytes = v[0], v[1]
		out[d] = c
	}
	for d, v := range opsBy {
		c := out[d]
		c.Reads, c.Writes = v[0], v[1]
		out[d] = c
	}
	return out, nil
}

// DeviceNames resolves major:minor to the kernel's device name through /sys/dev/block,
// remembering answers (devices rarely change) and falling back to "major:minor".
type DeviceNames struct {
	SysRoot string
	mu      sync.Mutex
	names   map[cgroupfs.Dev]string
}

// Name returns the device's name, e.g. "vda" or "loop3".
func (n *DeviceNames) Name(d cgroupfs.Dev) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := n.names[d]; ok {
		return name
	}
	if n.names == nil {
		n.names = map[cgroupfs.Dev]string{}
	}
	name := d.String()
	if target, err := os.Readlink(filepath.Join(n.SysRoot, "dev", "block", fmt.Sprintf("%d:%d", d.Major, d.Minor))); err == nil {
		name = filepath.Base(target)
		n.names[d] = name // only cache hits: a device may appear later
	}
	return name
}
