package kpodreceiver

import (
	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/diskio"
	"github.com/kpod-project/kpod/internal/podid"
)

// diskio counts in BPF only on hosts without a v2 io controller (countsInBPF).
var diskioFamily = familyInfo{
	name: "diskio", profiles: allProfiles, spec: diskio.Spec,
	metrics: []string{"kpod.disk.read.bytes", "kpod.disk.written.bytes", "kpod.disk.reads", "kpod.disk.writes"},
	newFn:   adapt(openDiskio, records[diskio.Stats]{container: recordDiskio}),
}

func openDiskio(e *env) (source[diskio.Stats], error) {
	c, err := diskio.Start(e.layout)
	if err == nil && c.Fallback != nil {
		e.logger.Warn("diskio: BPF source unavailable, falling back to v1 blkio.throttle files, which "+
			"recent kernels keep near zero unless a throttle limit was set on the device", zap.Error(c.Fallback))
	}
	return c, err
}

func recordDiskio(r *recorder, c *podid.Container, vals map[uint64]diskio.Stats) {
	v := mergeOver(vals, c.CgroupIDs, diskio.Stats.Add)
	for _, d := range sortedDevs(v) {
		io, name := v[d], r.devices.Name(d)
		r.mb.RecordKpodDiskReadBytesDataPoint(r.now, int64(io.ReadBytes), name)
		r.mb.RecordKpodDiskWrittenBytesDataPoint(r.now, int64(io.WriteBytes), name)
		r.mb.RecordKpodDiskReadsDataPoint(r.now, int64(io.Reads), name)
		r.mb.RecordKpodDiskWritesDataPoint(r.now, int64(io.Writes), name)
	}
}
