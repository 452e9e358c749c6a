package kpodreceiver

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/kpod-project/kpod/internal/biolatency"
	"github.com/kpod-project/kpod/internal/cachestat"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/diskio"
	"github.com/kpod-project/kpod/internal/fsstat"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/irq"
	"github.com/kpod-project/kpod/internal/memcg"
	"github.com/kpod-project/kpod/internal/netdev"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/proc"
	"github.com/kpod-project/kpod/internal/syscalls"
	"github.com/kpod-project/kpod/internal/tcp"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var (
	goldenStart   = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	goldenCreated = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC) // before kpod started
	goldenNow     = time.Date(2026, 11, 1, 10, 0, 30, 0, time.UTC)
)

// goldenIndex is one pod with a sandbox, an app container that has a child cgroup, and a
// second app container. Cgroup ids: pod 100, sandbox 101, app 102 (child 103), sidecar 104.
func goldenIndex() *podid.Index {
	p := &podid.Pod{UID: "0b5f2a3c-1111-4222-8333-444455556666", QoS: podid.Burstable, Driver: podid.Cgroupfs,
		Rel: "kubepods/burstable/pod0b5f2a3c-1111-4222-8333-444455556666", CgroupID: 100, Created: goldenCreated}
	mk := func(id string, cg uint64, sandbox bool, ids ...uint64) *podid.Container {
		return &podid.Container{Pod: p, ID: id, Rel: p.Rel + "/" + id, CgroupID: cg, Created: goldenCreated,
			Sandbox: sandbox, CgroupIDs: append([]uint64{cg}, ids...)}
	}
	p.Containers = []*podid.Container{
		mk("1111111111111111111111111111111111111111111111111111111111111111", 101, true),
		mk("2222222222222222222222222222222222222222222222222222222222222222", 102, false, 103),
		mk("3333333333333333333333333333333333333333333333333333333333333333", 104, false),
	}
	live := map[uint64]bool{100: true, 101: true, 102: true, 103: true, 104: true}
	return &podid.Index{Pods: []*podid.Pod{p}, Live: live}
}

func latency(ns ...uint64) hist.Hist {
	var h hist.Hist
	for _, v := range ns {
		h.Counts[hist.Slot(v)]++
		h.SumNs += v
	}
	return h
}

// TestGolden renders fake collector values (what the BPF maps and cgroup files would hold)
// through the scraper and compares the pdata with testdata/golden/<family>.json. Run with
// -update to rewrite them, then review the diff.
func TestGolden(t *testing.T) {
	fakeSys := t.TempDir() // no /sys/dev/block entries: devices fall back to major:minor
	for _, tc := range []struct {
		name string
		snap snapshot
		bpf  []string // the family's BPF-counted metrics
	}{
		{"cpu", cpuSnap{vals: map[uint64]cpu.Stats{
			102: {Switches: 40, RunQueue: latency(800, 1500, 3000)},
			103: {Switches: 2, RunQueue: latency(2_000_000)},
			999: {Switches: 7}, // a cgroup that is not a container: not reported
		}}, bpfOf("cpu")},
		{"oom", oomSnap{vals: map[uint64]uint64{104: 1}}, bpfOf("oom")},
		{"proc", procSnap{vals: map[uint64]proc.Stats{102: {Forks: 3, Execs: 4, Exits: 3}}}, bpfOf("proc")},
		{"syscall", syscallSnap{vals: map[uint64]map[string]syscalls.Stats{
			102: {"close": {Count: 10, Errors: 10, Latency: latency(900, 900, 900, 900, 900, 900, 900, 900, 900, 900)}},
			103: {"read": {Count: 1, Latency: latency(5_000_000)}},
		}}, bpfOf("syscall")},
		{"diskio", diskSnap{names: &diskio.DeviceNames{SysRoot: fakeSys}, vals: map[uint64]diskio.Stats{
			102: {cgroupfs.Dev{Major: 254, Minor: 0}: {ReadBytes: 4096, WriteBytes: 8 << 20, Reads: 1, Writes: 128}},
		}}, nil},
		{"memory", memSnap{vals: map[uint64]memcg.Stats{
			102: {Usage: 64 << 20, Peak: 70 << 20, HasPeak: true, Cache: 1 << 20},
			104: {Usage: 1 << 20, Cache: 4096, Swap: 8192, HasSwap: true},
		}}, nil},
		{"pagefaults", faultsSnap{vals: map[uint64]uint64{102: 12, 104: 0}}, nil},
		{"iface", ifaceSnap{vals: map[uint64]netdev.Stats{
			100: {"eth0": {RxBytes: 1000, RxPackets: 10, TxBytes: 24200, TxPackets: 100, RxDrops: 1}},
		}}, nil},
		{"tcp", tcpSnap{vals: map[uint64]tcp.Stats{
			102: {BytesSent: 1 << 20, BytesReceived: 4096, ConnsActive: 10, Retransmits: 3, RTT: latency(40_000, 45_000, 2_000_000)},
			104: {BytesReceived: 1 << 20, ConnsPassive: 10},
		}}, bpfOf("tcp")},
		{"tcpdrop", tcpSnap{drops: true, vals: map[uint64]tcp.Stats{
			104:            {Drops: map[string]uint64{"netfilter_drop": 7, "tcp_csum": 1}},
			tcp.NodeCgroup: {Drops: map[string]uint64{"no_socket": 2}},
		}}, bpfOf("tcpdrop")},
		{"biolatency", bioSnap{names: &diskio.DeviceNames{SysRoot: fakeSys}, vals: map[uint64]biolatency.Stats{
			102: {cgroupfs.Dev{Major: 7, Minor: 0}: latency(50_000, 60_000, 2_000_000)},
			103: {cgroupfs.Dev{Major: 7, Minor: 0}: latency(70_000)},
		}}, bpfOf("biolatency")},
		{"cachestat", cacheSnap{vals: map[uint64]cachestat.Stats{
			102: {Added: 2002, Dirtied: 2000, BuffersDirtied: 2000},
		}}, bpfOf("cachestat")},
		{"hardirqs", hardIRQSnap{vals: map[uint64]irq.HardStats{
			102:        {Count: 2, Latency: latency(3_000, 5_000)},
			irq.NodeID: {Count: 9, Latency: latency(1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000)},
		}}, bpfOf("hardirqs")},
		{"softirqs", softIRQSnap{vals: map[uint64]irq.SoftStats{
			104:        {1: latency(2_000), 9: latency(1_500, 1_500)},
			irq.NodeID: {3: latency(40_000)},
		}}, bpfOf("softirqs")},
		{"filesystem", fsSnap{vals: map[uint64]fsstat.Stats{
			102: {"/": {Capacity: 10 << 30, Used: 3 << 30, Available: 6 << 30}, "/data": {Capacity: 1 << 30, Used: 1 << 20, Available: 900 << 20}},
		}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScraper(customConfig(tc.name), receivertest.NewNopSettings(metadata.Type))
			s.nodeName, s.started = "node-1", goldenStart
			s.bpfMetrics = map[string]bool{}
			for _, m := range tc.bpf {
				s.bpfMetrics[m] = true
			}
			s.mb = metadata.NewMetricsBuilder(s.cfg.MetricsBuilderConfig, s.settings, metadata.WithStartTime(pcommon.NewTimestampFromTime(goldenStart)))
			s.hb = metadata.NewHistogramBuilder(s.cfg.Histograms)
			s.runners = []*runner{{snap: tc.snap}}
			now := pcommon.NewTimestampFromTime(goldenNow)
			s.emit(goldenIndex(), nil, now)
			if ns, ok := tc.snap.(nodeSnapshot); ok { // node-level series, as recordNode emits them
				ns.recordNode(&recorder{mb: s.mb, hb: s.hb, now: now})
				s.emitNodeResource()
			}
			compareGolden(t, filepath.Join("testdata", "golden", tc.name+".json"), s.mb.Emit())
		})
	}
}

func compareGolden(t *testing.T, path string, md pmetric.Metrics) {
	t.Helper()
	raw, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := json.Indent(&got, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(want, got.Bytes()) {
		t.Errorf("pdata differs from %s (go test -run TestGolden -update rewrites it):\n%s", path, got.String())
	}
}

// bpfOf lists the metrics of a BPF family (their start is kpod's start).
func bpfOf(family string) []string {
	f, _ := familyByName(family)
	return f.metrics
}
