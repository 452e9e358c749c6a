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
	"path/filepath"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/podid"
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

// Spec is the BPF source's object (bpf/diskio.bpf.c).
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "diskio",
		Load:   LoadDiskio,
		Hooks:  []bpfload.Hook{{Tracepoint: "block_bio_queue", Group: "block", Prog: "kpod_bioq"}},
	}
}

// Collector reads the host's best source (see the package comment).
type Collector struct {
	*bpfload.Collector // nil unless Source is SourceBPF
	layout             cgroupfs.Layout
	source             Source
	// Fallback says why the BPF source could not be used when Source is SourceBlkio.
	Fallback error
}

// Start picks the source for the host layout: io.stat on v2, else the BPF source, else the
// v1 blkio.throttle files.
func Start(l cgroupfs.Layout) (*Collector, error) {
	c := &Collector{layout: l}
	if l.V2Controllers["io"] {
		c.source = SourceIOStat
		return c, nil
	}
	b, err := startBPF(l)
	if err == nil {
		return b, nil
	}
	if l.V1["blkio"] == "" {
		return nil, fmt.Errorf("no usable source: neither a cgroup v2 io controller nor a v1 blkio controller is mounted; %v", err)
	}
	c.source, c.Fallback = SourceBlkio, err
	return c, nil
}

// startBPF loads the BPF source, whatever the layout offers.
func startBPF(l cgroupfs.Layout) (*Collector, error) {
	b, err := bpfload.Start(Spec())
	if err != nil {
		return nil, err
	}
	return &Collector{Collector: b, layout: l, source: SourceBPF}, nil
}

// NewFileCollector returns a collector of the file source for the layout (io.stat or v1
// blkio.throttle), without trying BPF.
func NewFileCollector(l cgroupfs.Layout) (*Collector, error) {
	switch {
	case l.V2Controllers["io"]:
		return &Collector{layout: l, source: SourceIOStat}, nil
	case l.V1["blkio"] != "":
		return &Collector{layout: l, source: SourceBlkio}, nil
	}
	return nil, errors.New("neither a cgroup v2 io controller nor a v1 blkio controller is mounted")
}

// Source says where the numbers come from.
func (c *Collector) Source() Source { return c.source }

// CountsInBPF is true when the counters are kpod's own (they start when kpod started).
func (c *Collector) CountsInBPF() bool { return c.source == SourceBPF }

// Collect returns per-device counters per cgroup id: the containers' own ids for the file
// sources, every cgroup with I/O (children of containers included) for the BPF source.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]Stats, error) {
	if c.source == SourceBPF {
		return c.collectBPF(x.Live)
	}
	res := c.CollectTargets(ctx, collector.Workloads(x))
	return res.Values, res.Err()
}

// CollectTargets reads the files of every target (file sources only).
func (c *Collector) CollectTargets(ctx context.Context, targets []cgroupfs.Target) collector.Result[Stats] {
	return collector.ForEach(ctx, c.layout.V2, targets, func(t cgroupfs.Target) (Stats, error) {
		dir, v2, _ := c.layout.ControllerDir("blkio", t.Rel)
		if v2 {
			return readIOStat(dir)
		}
		return readBlkio(dir)
	})
}

func (c *Collector) collectBPF(live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[DiskioDioKey, DiskioDioVal](c.Collector, DiskioMapKpodDio, live)
	out := map[uint64]Stats{}
	for k, v := range raw {
		if out[k.Cgid] == nil {
			out[k.Cgid] = Stats{}
		}
		dev := cgroupfs.KernelDev(k.Dev)
		ctr := out[k.Cgid][dev]
		if k.Op == 0 {
			ctr.ReadBytes, ctr.Reads = v.Bytes, v.Ios
		} else {
			ctr.WriteBytes, ctr.Writes = v.Bytes, v.Ios
		}
		out[k.Cgid][dev] = ctr
	}
	return out, err
}

func readIOStat(dir string) (Stats, error) {
	path := filepath.Join(dir, "io.stat")
	b, err := cgroupfs.ReadKept(path)
	if err != nil {
		return nil, err
	}
	m, err := cgroupfs.ParseIOStat(path, b)
	return Stats(m), err
}

func readBlkio(dir string) (Stats, error) {
	bytesPath := filepath.Join(dir, "blkio.throttle.io_service_bytes")
	opsPath := filepath.Join(dir, "blkio.throttle.io_serviced")
	b, err := cgroupfs.ReadKept(bytesPath)
	if err != nil {
		return nil, err
	}
	o, err := cgroupfs.ReadKept(opsPath)
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
