package kpodreceiver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/softirqs"
	"github.com/kpod-project/kpod/internal/window"
)

// TestRealBlockCacheIRQFamilies runs the block I/O latency, page cache and IRQ families
// through the receiver: per-pod values land on the right resource with the right
// attributes, and the page cache accesses metric is there or says why it is unavailable. The
// exact kernel-side numbers are proved in internal/biolatency, internal/cachestat,
// internal/hardirqs and internal/softirqs.
func TestRealBlockCacheIRQFamilies(t *testing.T) {
	fakepod.RequireRoot(t)
	const reads, bs, pages = 64, 4096, 256
	disk := fakepod.NewLoopDevice(t, 16)
	nomerges := filepath.Join("/sys/block", disk.Name, "queue", "nomerges")
	old, err := os.ReadFile(nomerges)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nomerges, []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(nomerges, old, 0) })

	pod := fakepod.New(t, fakepod.Options{})
	reader, writer, spinner := pod.AddContainer(), pod.AddContainer(), pod.AddContainer()
	spinner.Env = []string{"KPOD_CPU=0"}
	idle := fakepod.New(t, fakepod.Options{})
	idleCtr := idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()

	s := startScraper(t, customConfig("biolatency", "cachestat", "hardirqs", "softirqs"))
	// softirqs runs in its default latency windows; the test stops them and opens one
	// itself around the spinner.
	var sirq *softirqs.Collector
	for _, r := range s.runners {
		if a, ok := r.f.(*adapter[softirqs.Stats]); ok {
			sirq = a.src.(*softirqs.Collector)
		}
	}
	if sirq == nil || sirq.Sample != window.DefaultSample {
		t.Fatalf("softirqs collector %v: want it running with the default sample %d", sirq, window.DefaultSample)
	}
	sirq.StopWindows()
	reader.Run("dread", disk.Path, strconv.Itoa(reads*bs), strconv.Itoa(bs))
	writer.Run("bwrite", filepath.Join(t.TempDir(), "cached"), strconv.Itoa(pages))
	if err := sirq.OpenWindow(); err != nil {
		t.Fatal(err)
	}
	spin := spinner.Start("spin", "300")
	spin.ReadLine()
	if err := spin.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sirq.CloseWindow(); err != nil {
		t.Fatal(err)
	}
	md := scrape(t, s)
	failDump(t, md)

	rm, _ := resourceOf(md, pod.UID, reader.ID)
	h, ok := histogramOf(rm, "kpod.disk.io.latency", map[string]string{"system.device": disk.Name})
	if !ok || h.Count() != reads {
		t.Errorf("block I/O latency on %s: count %d (found %v), want %d O_DIRECT reads", disk.Name, h.Count(), ok, reads)
	}
	// Soft IRQs (the tick raises some vector on a busy CPU; which ones depends on the kernel:
	// timer here, rcu under emulation) land on the spinner's resource, by vector, and take
	// less than its 300 ms on the CPU. Their exact count is internal/softirqs' TestRealSoftirqsNetRx.
	rm, _ = resourceOf(md, pod.UID, spinner.ID)
	var softirqs uint64
	var softSum float64
	if m, ok := metricOf(rm, "kpod.irq.sw.latency"); ok {
		for i := 0; i < m.Histogram().DataPoints().Len(); i++ {
			dp := m.Histogram().DataPoints().At(i)
			if v, ok := dp.Attributes().Get("vector"); !ok || v.Str() == "" {
				t.Errorf("soft IRQ point without a vector: %v", dp.Attributes().AsRaw())
			}
			softirqs += dp.Count()
			softSum += dp.Sum()
		}
	}
	if softirqs == 0 || softSum > 0.3 {
		t.Errorf("soft IRQs of a pod spinning 300ms: %d, %.4fs", softirqs, softSum)
	}
	idleRM, _ := resourceOf(md, idle.UID, idleCtr.ID)
	if _, ok := histogramOf(idleRM, "kpod.disk.io.latency", nil); ok {
		t.Errorf("idle pod has block I/O latency")
	}
	wrm, _ := resourceOf(md, pod.UID, writer.ID)
	// A new file written page by page: every page is added to the cache and dirtied once;
	// the filesystem may add a few metadata pages of its own.
	if got := intValue(t, wrm, "kpod.mem.cache.dirtied", nil); got < pages || got > pages+16 {
		t.Errorf("dirtied pages = %d, want %d..%d", got, pages, pages+16)
	}
	if got := intValue(t, wrm, "kpod.mem.cache.additions", nil); got < pages || got > pages+16 {
		t.Errorf("page cache additions = %d, want %d..%d", got, pages, pages+16)
	}
	if got := intValue(t, idleRM, "kpod.mem.cache.additions", nil); got != 0 {
		t.Errorf("idle pod: %d page cache additions", got)
	}
	node := nodeResource(t, md)
	if got := intValue(t, node, "kpod.collector.latency_sample", map[string]string{"collector": "softirqs"}); got != window.DefaultSample {
		t.Errorf("kpod.collector.latency_sample{collector=softirqs} = %d, want %d", got, window.DefaultSample)
	}
	if _, ok := point(node, "kpod.collector.latency_sample", map[string]string{"collector": "hardirqs"}); ok {
		t.Error("kpod.collector.latency_sample for hardirqs, which has no windows")
	}
	dp, ok := point(node, "kpod.metric.unavailable", map[string]string{"metric": "kpod.mem.cache.accesses"})
	if _, hasAccesses := point(rm, "kpod.mem.cache.accesses", nil); hasAccesses == ok {
		t.Errorf("accesses reported (%v) and unavailable (%v) at once or neither", hasAccesses, ok)
	}
	// Where the kernel has kprobes the hook attaches (fentry or kprobe); where it has neither
	// (this project's host), the family says why.
	if ok == bpftest.HasKprobes(t) {
		t.Errorf("accesses unavailable = %v on a kernel where kprobes are %v", ok, bpftest.HasKprobes(t))
	}
	if ok {
		reason, _ := dp.Attributes().Get("reason")
		if !strings.Contains(reason.Str(), "fentry") || !strings.Contains(reason.Str(), "kprobe") {
			t.Errorf("accesses unavailable reason %q does not name both rungs", reason.Str())
		}
	}
}
