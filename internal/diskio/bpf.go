package diskio

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
)

// BPFSpec is the BPF source's object (bpf/diskio.bpf.c).
func BPFSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "diskio",
		Load:   LoadDiskio,
		Hooks:  []bpfload.Hook{{Tracepoint: "block_bio_queue", Group: "block", Prog: "kpod_bioq"}},
	}
}

// BPFCollector counts bios per cgroup in the kernel.
type BPFCollector struct {
	Obj   *bpfload.Object
	sweep bpfload.Sweeper
}

// StartBPF loads and attaches the BPF source.
func StartBPF() (*BPFCollector, error) {
	obj, err := bpfload.Load(BPFSpec())
	if err != nil {
		return nil, err
	}
	return &BPFCollector{Obj: obj}, nil
}

// Collect returns per-device counters per cgroup id (including cgroups below containers)
// and deletes entries of removed cgroups.
func (c *BPFCollector) Collect(live map[uint64]bool) (map[uint64]Stats, error) {
	m := c.Obj.Maps["kpod_dio"]
	raw, err := bpfload.DumpPerCPU[DiskioDioKey](m, func(dst, src *DiskioDioVal) {
		dst.Bytes += src.Bytes
		dst.Ios += src.Ios
	})
	if err != nil {
		return nil, err
	}
	out := map[uint64]Stats{}
	byCgroup := map[uint64][]DiskioDioKey{}
	var ids []uint64
	for k, v := range raw {
		dev := cgroupfs.Dev{Major: k.Dev >> 20, Minor: k.Dev & (1<<20 - 1)}
		s := out[k.Cgid]
		if s == nil {
			s = Stats{}
			out[k.Cgid] = s
			ids = append(ids, k.Cgid)
		}
		ctr := s[dev]
		if k.Op == 0 {
			ctr.ReadBytes, ctr.Reads = v.Bytes, v.Ios
		} else {
			ctr.WriteBytes, ctr.Writes = v.Bytes, v.Ios
		}
		s[dev] = ctr
		byCgroup[k.Cgid] = append(byCgroup[k.Cgid], k)
	}
	var dead []DiskioDioKey
	for _, id := range c.sweep.Dead(ids, live) {
		dead = append(dead, byCgroup[id]...)
	}
	return out, bpfload.Delete(m, dead)
}

// Close detaches the program and frees the maps. It is safe on a collector that never started.
func (c *BPFCollector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
