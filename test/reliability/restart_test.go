//go:build reliability

package reliability

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/testenv"
)

const (
	// restartForks is what each run of the workload forks; a run every restartPace.
	restartForks = 10
	restartPace  = 200 * time.Millisecond
	// restartPhase is how long the workload runs between two restarts.
	restartPhase = 12 * time.Second
	// restartExpiration is the exporter's metric_expiration in this test.
	restartExpiration = 10 * time.Second
	// settle is how long to wait after the workload's last run before a restart, so that
	// Prometheus has scraped its final count (1 s cycle + 1 s batch + 1 s scrape + margin).
	settle = 4 * time.Second
)

// forkLoop runs `fork 10 0` in c every 200 ms for d and returns the forks it made (the
// workload's own exec happens before it enters the pod: each run forks exactly 10 there).
func forkLoop(c *fakepod.Container, d time.Duration, peak *rateWindow) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(restartPace) {
		c.Run("fork", fmt.Sprint(restartForks), "0")
		n += restartForks
		peak.add(time.Now(), restartForks)
	}
	return n
}

// rateWindow is the test's own record of when forks happened, for the highest rate over any
// window of a given width.
type rateWindow struct {
	at []time.Time
	n  []int
}

func (w *rateWindow) add(t time.Time, n int) { w.at, w.n = append(w.at, t), append(w.n, n) }

// max is the most forks made within any window of width d, per second.
func (w *rateWindow) max(d time.Duration) float64 {
	best := 0
	for i := range w.at {
		sum := 0
		for j := i; j < len(w.at) && w.at[j].Sub(w.at[i]) < d; j++ {
			sum += w.n[j]
		}
		best = max(best, sum)
	}
	return float64(best) / d.Seconds()
}

// TestRestarts: a Prometheus server scrapes otelcol-kpod every second while a pod forks at a
// known pace, across a restart of the collector and then a restart of the pod's container
// (the runtime's way: the old container's cgroup is removed, the new one has a new id).
// Asserted on what Prometheus stored: a counter goes down only where its start time
// (OpenMetrics _created) changes, which is what keeps rate() from spiking; counters kept in
// kpod's BPF maps start again at the new process's start, counters the kernel keeps per
// cgroup keep theirs; the restarted container is a new container_id series that starts when
// its cgroup was made; rate() never exceeds the workload's own pace; and the forks Prometheus
// saw add up to exactly the forks made (the workload pauses while the collector is down).
func TestRestarts(t *testing.T) {
	bin := testenv.CollectorBinary(t, repoRoot(t))
	fakepod.RequireRoot(t)
	p := freePorts(t)
	// Prometheus's text format has no start times (the exporter writes no OpenMetrics
	// _created lines), so the same pipeline also exports OTLP to a sink in the test, which
	// records every point's start time.
	sink := &otlpSink{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), series: map[string][]otlpPoint{}}
	sink.up(t)
	t.Cleanup(sink.down)
	cfg := localConfig(t, p, restartExpiration.String(),
		[2]string{"  debug:\n    verbosity: basic\n", "  debug:\n    verbosity: basic\n  otlp_http:\n    endpoint: http://" + sink.addr + "\n"},
		[2]string{"exporters: [prometheus, debug]", "exporters: [prometheus, debug, otlp_http]"})
	prom := startPrometheus(t, fmt.Sprintf("127.0.0.1:%d", p.prom))

	pod := fakepod.New(t, fakepod.Options{})
	pod.AddSandbox()
	c1 := pod.AddContainer()
	c1Created := ctime(t, c1.V2Dir())
	c1.Start("sleep").WaitReady() // a process that outlives the fork runs, as a container's main process

	var peak rateWindow
	began := time.Now()
	aStart := time.Now()
	a := testenv.StartCollectorCmd(t, kpodCommand(bin, cfg), nil)
	firstCycle(t, a, p)
	aReady := time.Now()
	forks := forkLoop(c1, restartPhase, &peak)
	time.Sleep(settle)
	if err := a.Stop(); err != nil {
		t.Errorf("collector A: %v", err)
	}

	bStart := time.Now()
	b := testenv.StartCollectorCmd(t, kpodCommand(bin, cfg), nil)
	firstCycle(t, b, p)
	bReady := time.Now()
	forks += forkLoop(c1, restartPhase, &peak)
	time.Sleep(settle)

	c1.Remove()
	c1Removed := time.Now()
	c2 := pod.AddContainer()
	c2Created := ctime(t, c2.V2Dir())
	c2.Start("sleep").WaitReady()
	forks += forkLoop(c2, restartPhase, &peak)
	time.Sleep(restartExpiration + settle) // c1's series expire from the endpoint
	end := time.Now()
	window := fmt.Sprintf("[%ds]", int(math.Ceil(end.Sub(began).Seconds()))+5)
	t.Logf("A %v..%v, B from %v, container restarted at %v; %d forks made",
		aStart.Format("15:04:05.000"), bStart.Format("15:04:05.000"), bReady.Format("15:04:05.000"), c1Removed.Format("15:04:05.000"), forks)

	podSel := fmt.Sprintf(`k8s_pod_uid=%q`, pod.UID)
	c1Sel := fmt.Sprintf(`{%s,container_id=%q}`, podSel, c1.ID)
	c2Sel := fmt.Sprintf(`{%s,container_id=%q}`, podSel, c2.ID)

	// 1. What the collector exported (OTLP): every counter and histogram goes down only
	// where its start time changes.
	sink.mu.Lock()
	series := sink.series
	sink.mu.Unlock()
	startChanges := map[string]int{}
	for key, pts := range series {
		for i := 1; i < len(pts); i++ {
			newStart := !pts[i].Start.Equal(pts[i-1].Start)
			if newStart {
				startChanges[key]++
			}
			if pts[i].V < pts[i-1].V && !newStart {
				t.Errorf("%s went down from %v to %v at %v with the same start time", key, pts[i-1].V, pts[i].V, pts[i].T)
			}
		}
	}

	// 2. What Prometheus stored: resets() of every kpod counter, bucket, count and sum is
	// at most the number of new start times of its series; the rest would be rate() spikes.
	// (PromQL functions drop the metric name, so each metric is asked for on its own.)
	var counters, withReset int
	for _, name := range prom.names(t, `{__name__=~"kpod_.+"}`) {
		stem, ok := counterStem(name)
		if !ok {
			continue
		}
		for _, s := range prom.query(t, "resets("+name+window+")", end) {
			counters++
			n := int(s.Samples[0].V)
			if n == 0 {
				continue
			}
			withReset++
			key, found := promToOTLP(stem, s.Metric, series)
			switch {
			case !found:
				t.Errorf("%s{%s} went down %d times and has no OTLP series to show a new start time", name, seriesKey(s.Metric), n)
			case n > startChanges[key]:
				t.Errorf("%s{%s} went down %d times, its start time changed %d times: rate() spikes there", name, seriesKey(s.Metric), n, startChanges[key])
			}
		}
	}
	t.Logf("%d counter series in Prometheus, %d went down, each at a new start time; %d OTLP series", counters, withReset, len(series))
	if withReset == 0 {
		t.Errorf("no counter went down across the collector restart: the test restarted nothing")
	}

	// Start times: BPF counters of c1 start at A's start, then at B's; the kernel's counter
	// of c1 (major faults, memory.stat) keeps the cgroup's; c2's start with its cgroup.
	checkStarts(t, otlpSeries(t, series, "kpod_proc_forks", c1.ID), "c1 forks (BPF)", [][2]time.Time{{aStart, aReady}, {bStart, bReady}})
	checkStarts(t, otlpSeries(t, series, "kpod_mem_major_page_faults", c1.ID), "c1 major faults (memory.stat)", [][2]time.Time{{c1Created, c1Created}})
	checkStarts(t, otlpSeries(t, series, "kpod_proc_forks", c2.ID), "c2 forks (BPF)", [][2]time.Time{{c2Created, c2Created}})

	// 3. The restarted container is a new series of its own (its start time is checked
	// above), and c1's series left the endpoint within metric_expiration of its removal,
	// unchanged since the removal.
	if got := prom.query(t, "kpod_proc_forks_total"+c2Sel+window, end); len(got) != 1 {
		t.Errorf("Prometheus has %d series of forks for the restarted container %s, want 1", len(got), c2.ID)
	}
	for _, s := range prom.query(t, "kpod_proc_forks_total"+c1Sel+window, end) {
		last := s.Samples[len(s.Samples)-1]
		if limit := c1Removed.Add(restartExpiration + expiryGrace + time.Second); last.T.After(limit) {
			t.Errorf("removed container %s still scraped at %v, %v after its removal", c1.ID, last.T, last.T.Sub(c1Removed))
		}
		for i := 1; i < len(s.Samples); i++ {
			if s.Samples[i].T.After(c1Removed.Add(2*time.Second)) && s.Samples[i].V != s.Samples[i-1].V {
				t.Errorf("removed container %s's forks changed after its removal: %v -> %v", c1.ID, s.Samples[i-1], s.Samples[i])
			}
		}
	}

	// 4. rate() at most the workload's own pace: Prometheus extrapolates a 5 s window's
	// increase to the window's edges (at most ×5/4 with samples 1 s apart) and the pace
	// jitters; a spike from a counter read as reset would add the whole count (hundreds).
	rates := prom.queryRange(t, fmt.Sprintf(`sum(rate(kpod_proc_forks_total{%s}[5s]))`, podSel), began, end, time.Second)
	limit := 1.5 * peak.max(5*time.Second)
	var highest float64
	for _, s := range rates {
		for _, v := range s.Samples {
			highest = max(highest, v.V)
			if v.V > limit {
				t.Errorf("rate(kpod_proc_forks_total[5s]) = %.1f/s at %v, above 1.5 × the workload's highest 5 s pace (%.1f/s)", v.V, v.T, limit/1.5)
			}
		}
	}
	t.Logf("highest rate() %.1f/s; workload's highest 5 s pace %.1f/s", highest, limit/1.5)

	// 5. Nothing lost: the forks Prometheus saw, counting each series from its first sample
	// and through its resets, are the forks made.
	var seen float64
	for _, s := range prom.query(t, fmt.Sprintf("kpod_proc_forks_total{%s}", podSel)+window, end) {
		seen += counted(s.Samples)
	}
	if seen != float64(forks) {
		t.Errorf("Prometheus saw %v forks, the workload made %d", seen, forks)
	}
}

// ctime is when the kernel says a cgroup directory was made (kernfs sets the inode's ctime at
// mkdir; kpod takes a cgroup's creation time from the same field, through its own stat).
func ctime(t *testing.T, dir string) time.Time {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
}

// counted is what a counter's samples say happened: its first value, every increase, and
// after a reset the value it restarted at.
func counted(ss []promSample) float64 {
	if len(ss) == 0 {
		return 0
	}
	n := ss[0].V
	for i := 1; i < len(ss); i++ {
		if d := ss[i].V - ss[i-1].V; d >= 0 {
			n += d
		} else {
			n += ss[i].V
		}
	}
	return n
}

// counterStem is a Prometheus counter, histogram bucket, count or sum name without that
// suffix.
func counterStem(name string) (string, bool) {
	for _, suf := range []string{"_total", "_bucket", "_count", "_sum"} {
		if stem, ok := strings.CutSuffix(name, suf); ok {
			return stem, true
		}
	}
	return "", false
}

// promToOTLP finds the OTLP series of a Prometheus series: the same labels (without job,
// instance, le and the otel_scope ones) and a name that is the OTLP name or that with the
// unit the exporter appends (_seconds, _bytes).
func promToOTLP(stem string, labels map[string]string, series map[string][]otlpPoint) (string, bool) {
	l := map[string]string{}
	for k, v := range labels {
		if k != "job" && k != "instance" && k != "le" && !strings.HasPrefix(k, "otel_scope_") {
			l[k] = v
		}
	}
	for _, s := range []string{stem, strings.TrimSuffix(stem, "_seconds"), strings.TrimSuffix(stem, "_bytes")} {
		if key := s + "{" + seriesKey(l); series[key] != nil {
			return key, true
		}
	}
	return "", false
}

// otlpSeries is the one OTLP series of metric stem for a container.
func otlpSeries(t *testing.T, series map[string][]otlpPoint, stem, containerID string) []otlpPoint {
	t.Helper()
	var found []string
	for key := range series {
		if strings.HasPrefix(key, stem+"{") && strings.Contains(key, fmt.Sprintf("container_id=%q,", containerID)) {
			found = append(found, key)
		}
	}
	if len(found) != 1 {
		t.Errorf("%d OTLP series of %s for container %s, want 1: %v", len(found), stem, containerID, found)
		return nil
	}
	return series[found[0]]
}

// checkStarts asserts that a series' start time took exactly the values given, in order,
// each within its interval (1 ms of rounding allowed).
func checkStarts(t *testing.T, pts []otlpPoint, what string, want [][2]time.Time) {
	t.Helper()
	var got []time.Time
	for _, p := range pts {
		if len(got) == 0 || !got[len(got)-1].Equal(p.Start) {
			got = append(got, p.Start)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: start times %v, want %d", what, got, len(want))
		return
	}
	for i, w := range want {
		if got[i].Before(w[0].Add(-time.Millisecond)) || got[i].After(w[1].Add(time.Millisecond)) {
			t.Errorf("%s: start time %d is %v, want within [%v, %v]", what, i+1, got[i], w[0], w[1])
		}
	}
}
