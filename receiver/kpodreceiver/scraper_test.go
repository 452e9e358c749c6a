package kpodreceiver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/collector/scraper/scrapererror"
	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

const (
	uidA = "aaaaaaaa-1111-4222-8333-444455556666"
	uidB = "bbbbbbbb-1111-4222-8333-444455556666"
	cidA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	cidB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// v2Tree writes a small pure-v2 cgroup tree with two pods of one container each, with the
// memory and io files a v2 host has, and returns its root.
func v2Tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cgroup.controllers", "cpu io memory pids\n")
	for _, p := range []struct{ uid, cid string }{{uidA, cidA}, {uidB, cidB}} {
		dir := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(p.uid, "-", "_") +
			".slice/cri-containerd-" + p.cid + ".scope/"
		write(dir+"cgroup.procs", "")
		write(dir+"memory.current", "1048576\n")
		write(dir+"memory.peak", "2097152\n")
		write(dir+"memory.swap.current", "0\n")
		write(dir+"memory.stat", "anon 524288\nfile 4096\npgmajfault 3\n")
		write(dir+"io.stat", "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
	}
	return root
}

// fixtureScraper is a started scraper over a fixture tree with the given runners.
func fixtureScraper(t *testing.T, root string, runners ...*runner) *kpodScraper {
	t.Helper()
	cfg := customConfig("memory")
	cfg.CollectionInterval = 10 * time.Second
	s := newScraper(cfg, receivertest.NewNopSettings(metadata.Type))
	s.started = time.Now()
	s.nodeName = "node-1"
	layout := cgroupfs.FixtureLayout(root, []string{"cpu", "io", "memory", "pids"}, nil)
	s.env = &env{layout: layout, procRoot: t.TempDir(), sysRoot: t.TempDir(), cfg: cfg, logger: zap.NewNop()}
	s.devices = &cgroupfs.DeviceNames{SysRoot: s.env.sysRoot}
	s.scan = podid.NewScanner(root, s.env.procRoot).Scan
	s.mb = metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, s.settings)
	s.hb = metadata.NewHistogramBuilder(cfg.Histograms)
	s.bpfMetrics = map[string]bool{}
	for _, r := range runners {
		if r.f != nil {
			if err := r.f.start(context.Background(), s.env); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.runners = runners
	return s
}

// counting is a source that counts its collections and reports the count as every
// container's memory usage; hang makes Collect block until release is closed.
type counting struct {
	collector.NoBPF
	collects atomic.Int64
	hang     bool
	release  chan struct{}
}

func (f *counting) Collect(context.Context, *podid.Index) (map[uint64]int64, error) {
	n := f.collects.Add(1)
	if f.hang {
		<-f.release
	}
	return map[uint64]int64{0: n}, nil
}

func countingFamily(src *counting) family {
	return adapt(func(*env) (source[int64], error) { return src, nil }, records[int64]{
		container: func(r *recorder, _ *podid.Container, vals map[uint64]int64) {
			r.mb.RecordKpodMemCgroupUsageBytesDataPoint(r.now, vals[0])
		},
	})("counting")
}

// TestIntervalSkips: a family with a 30s interval under a 10s base interval runs every third
// cycle; the cycles in between are counted as skipped and emit nothing of it.
func TestIntervalSkips(t *testing.T) {
	fam := &counting{}
	r := &runner{info: familyInfo{name: "memory"}, f: countingFamily(fam), every: 30 * time.Second}
	s := fixtureScraper(t, v2Tree(t), r)
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	for i, want := range []struct {
		collects, skipped int64
		emitted           bool
	}{{1, 0, true}, {1, 1, false}, {1, 2, false}, {2, 2, true}, {2, 3, false}} {
		md, err := s.scrape(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rm, _ := resourceOf(md, uidA, cidA)
		_, emitted := point(rm, "kpod.mem.cgroup.usage.bytes", nil)
		if fam.collects.Load() != want.collects || r.skipped != want.skipped || emitted != want.emitted {
			t.Errorf("cycle %d (t=%v): collects=%d skipped=%d emitted=%v, want %+v", i, clock.Sub(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
				fam.collects.Load(), r.skipped, emitted, want)
		}
		node := nodeResource(t, md)
		if got := intValue(t, node, "kpod.collector.skipped", map[string]string{"collector": "memory"}); got != want.skipped {
			t.Errorf("cycle %d: kpod.collector.skipped = %d, want %d", i, got, want.skipped)
		}
		clock = clock.Add(10 * time.Second)
	}
}

// TestTimeoutCutsHungCollector: a collector that hangs is cut when the cycle's context
// expires, the cycle is counted as timed out, and the other families' data is emitted. The
// next cycle does not start a second copy of the hung collector.
func TestTimeoutCutsHungCollector(t *testing.T) {
	hung := &counting{hang: true, release: make(chan struct{})}
	defer close(hung.release)
	s := fixtureScraper(t, v2Tree(t),
		&runner{info: familyInfo{name: "cachestat"}, f: countingFamily(hung)},
		&runner{info: familyInfo{name: "memory"}, f: memoryFamily.newFn("memory")})
	for cycle := 1; cycle <= 2; cycle++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		t0 := time.Now()
		md, err := s.scrape(ctx)
		cancel()
		if took := time.Since(t0); took > 5*time.Second {
			t.Fatalf("cycle %d took %v: the hung collector was not cut", cycle, took)
		}
		if !scrapererror.IsPartialScrapeError(err) {
			t.Fatalf("cycle %d: want a partial scrape error, got %v", cycle, err)
		}
		wantMsg := "cut by the collection timeout"
		if cycle == 2 {
			wantMsg = "has not finished"
		}
		if !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("cycle %d: error %q does not say %q", cycle, err, wantMsg)
		}
		rm, ok := resourceOf(md, uidA, cidA)
		if !ok || intValue(t, rm, "kpod.mem.cgroup.usage.bytes", nil) != 1048576 {
			t.Errorf("cycle %d: memory family's data is missing", cycle)
		}
		node := nodeResource(t, md)
		if got := intValue(t, node, "kpod.collection.timeouts", nil); got != 1 {
			t.Errorf("cycle %d: kpod.collection.timeouts = %d, want 1 (only the first cycle was cut)", cycle, got)
		}
	}
	if n := hung.collects.Load(); n != 1 {
		t.Errorf("the hung collector was started %d times", n)
	}
}

// TestUnreadableCgroupFile: a malformed memory.stat fails that container's memory metrics
// with a partial scrape error and a counted read error; the other container and the other
// families are still reported.
func TestUnreadableCgroupFile(t *testing.T) {
	root := v2Tree(t)
	bad := filepath.Join(root, "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"+
		strings.ReplaceAll(uidB, "-", "_")+".slice/cri-containerd-"+cidB+".scope/memory.stat")
	if err := os.WriteFile(bad, []byte("anon twelve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mem := &runner{info: familyInfo{name: "memory"}, f: memoryFamily.newFn("memory")}
	disk := &runner{info: familyInfo{name: "diskio"}, f: diskioFamily.newFn("diskio")}
	s := fixtureScraper(t, root, mem, disk)
	md, err := s.scrape(context.Background())
	if !scrapererror.IsPartialScrapeError(err) || !strings.Contains(err.Error(), "memory.stat") {
		t.Fatalf("want a partial scrape error naming memory.stat, got %v", err)
	}
	rmA, _ := resourceOf(md, uidA, cidA)
	rmB, _ := resourceOf(md, uidB, cidB)
	if got := intValue(t, rmA, "kpod.mem.cgroup.usage.bytes", nil); got != 1048576 {
		t.Errorf("healthy container: usage %d", got)
	}
	if _, ok := point(rmB, "kpod.mem.cgroup.usage.bytes", nil); ok {
		t.Errorf("container with a malformed memory.stat still reports memory (as zero?)")
	}
	for _, rm := range []struct {
		name string
		uid  string
		cid  string
	}{{"a", uidA, cidA}, {"b", uidB, cidB}} {
		r, _ := resourceOf(md, rm.uid, rm.cid)
		if got := intValue(t, r, "kpod.disk.written.bytes", map[string]string{"system.device": "254:0"}); got != 8192 {
			t.Errorf("container %s: disk written %d, want 8192 from io.stat", rm.name, got)
		}
	}
	node := nodeResource(t, md)
	if got := intValue(t, node, "kpod.cgroup.read.errors", map[string]string{"collector": "memory"}); got != 1 {
		t.Errorf("read errors = %d, want 1", got)
	}
	if got := intValue(t, node, "kpod.collector.errors", map[string]string{"collector": "diskio"}); got != 0 {
		t.Errorf("diskio errors = %d, want 0", got)
	}
}
