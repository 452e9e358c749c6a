package kpodreceiver

import (
	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/syscall"
	"github.com/kpod-project/kpod/internal/window"
)

var syscallFamily = familyInfo{
	name: "syscall", bpf: true, profiles: comprehensiveOnly, options: []string{"syscalls", "latency_sample"}, spec: syscall.Spec,
	metrics: []string{"kpod.syscall.count", "kpod.syscall.errors", "kpod.syscall.latency"},
	newFn:   adapt(openSyscall, records[map[string]syscall.Stats]{container: recordSyscall}),
}

func openSyscall(e *env) (source[map[string]syscall.Stats], error) {
	names := e.cfg.Collectors["syscall"].Syscalls
	if len(names) == 0 {
		names = syscall.Default
	}
	tracked, missing := syscall.Resolve(names)
	if len(missing) > 0 {
		e.logger.Info("syscall collector: these system calls do not exist on this architecture and are not tracked",
			zap.Strings("syscalls", missing), zap.String("arch", syscall.Arch))
	}
	sample := sampleOf(e.cfg.Collectors["syscall"].LatencySample)
	if !e.cfg.Histograms.KpodSyscallLatency.Enabled {
		sample = syscall.NoLatency // nothing to time for: no enter programs at all
	}
	return syscall.Start(tracked, sample)
}

// sampleOf is a family's latency_sample, window.DefaultSample where it is not set.
func sampleOf(n int) uint32 {
	if n == 0 {
		return window.DefaultSample
	}
	return uint32(n)
}

func recordSyscall(r *recorder, c *podid.Container, vals map[uint64]map[string]syscall.Stats) {
	sum := map[string]syscall.Stats{}
	for _, id := range c.CgroupIDs {
		for name, v := range vals[id] {
			s := sum[name]
			s.Add(&v)
			sum[name] = s
		}
	}
	for _, name := range sortedKeys(sum) {
		v := sum[name]
		r.mb.RecordKpodSyscallCountDataPoint(r.now, int64(v.Count), name)
		r.mb.RecordKpodSyscallErrorsDataPoint(r.now, int64(v.Errors), name)
		r.hb.RecordKpodSyscallLatency(r.now, histPoint(&v.Latency), name)
	}
}
