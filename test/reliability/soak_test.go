//go:build reliability

package reliability

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/testenv"
)

const (
	// soakBatch pods are created, run their workload, live soakLife and are deleted together.
	soakBatch = 20
	// soakLife is how long a pod of the soak lives: longer than a collection interval (1 s),
	// so that every pod is collected at least once and has series that must then expire.
	soakLife = 1500 * time.Millisecond
	// soakExpiration is the prometheus exporter's metric_expiration in the soak.
	soakExpiration = 10 * time.Second
	// expiryGrace is how long after metric_expiration a deleted pod's series may still be on
	// the endpoint: the last cycle that saw the pod may have started up to one collection
	// interval (1 s) before its deletion, the batch processor holds data up to its timeout
	// (1 s), and the exporter compares its clock with the update time at scrape (1 s more
	// for the scheduling of a loaded 2-core machine).
	expiryGrace = 3 * time.Second
	// sweepWindow is how long after a pod's deletion its keys may stay in kpod's maps: two
	// collection intervals (1 s) and a loaded cycle's duration (the check once counted 77
	// keys of the batch before last in kpod_sys, deleted 1.6 s earlier, in a CI run).
	sweepWindow = 4 * time.Second
)

// soakRow is one line of the soak table.
type soakRow struct {
	label      string
	cycles     int
	elapsed    time.Duration
	maps       map[string]int // entries per map, counted in the kernel (processMaps); of a data map, the soak's pods' keys only
	kpodMaps   map[string]int // kpod_bpf_map_entries per map, kpod's own count
	rss        uint64         // VmRSS
	heapMin    float64        // lowest otelcol_process_runtime_heap_alloc_bytes sampled since the last row
	heapMax    float64
	goroutines int
	fds        int            // open descriptors but the kept ones
	fdKinds    map[string]int // those by kind (fdKind)
	kept       int            // descriptors kept per cgroup and pod (they follow the live pods)
	series     int            // sample lines on the Prometheus endpoint
	podSeries  int            // of them, series of fake pods of the soak
	others     int            // ... series of other pods (other tests' on the host: not the soak's)
	host       int            // ... node-level series of the host's own activity (hostActivity)
	hostBy     map[string]int // metric -> those series
	podsShown  int            // fake pods with series
	otherPods  int            // other pods with series
	lost       float64
	lostBy     map[string]float64 // map -> updates lost, where any
	readErrs   float64
	collErrs   float64
	timeouts   float64
}

// soakSampler samples the collector's heap (its own telemetry) and RSS (the kernel's) every
// 2 s, so that each row has the lowest heap of its window: the heap right after a garbage
// collection, which is what grows if something leaks (the highest is that plus the garbage
// of up to GOGC=100 %).
type soakSampler struct {
	mu               sync.Mutex
	heapMin, heapMax float64
	rssMax           uint64
	errs             []string
}

func (s *soakSampler) run(t *testing.T, pid int, p ports, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		st, err := readProcStatus(pid)
		ctx, cancel := contextTimeout(10 * time.Second)
		tel, terr := testenv.Scrape(ctx, p.telemetryURL())
		cancel()
		s.mu.Lock()
		if err == nil && st.RSS > s.rssMax {
			s.rssMax = st.RSS
		}
		if terr == nil {
			if h := sum(tel, "otelcol_process_runtime_heap_alloc_bytes", nil); h > 0 {
				if s.heapMin == 0 || h < s.heapMin {
					s.heapMin = h
				}
				s.heapMax = max(s.heapMax, h)
			}
		} else if len(s.errs) < 5 {
			s.errs = append(s.errs, terr.Error())
		}
		s.mu.Unlock()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// window returns the heap range since the last call and starts a new window.
func (s *soakSampler) window() (lo, hi float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi = s.heapMin, s.heapMax
	s.heapMin, s.heapMax = 0, 0
	return lo, hi
}

// TestSoak churns fake pods under the collector (comprehensive profile, 1 s cycle) and
// proves nothing grows with the number of pods that came and went: KPOD_SOAK_CYCLES pods
// (400 in make test, 10,000 in make soak) in batches of 20, each with a sandbox and a
// container that forks 3 children and starts a thread, alive 1.5 s; a row of figures at the
// start, every KPOD_SOAK_REPORT_EVERY pods and at the end (written as a Markdown table to
// $KPOD_SOAK_REPORT if set).
func TestSoak(t *testing.T) {
	bin := testenv.CollectorBinary(t, repoRoot(t))
	fakepod.RequireRoot(t)
	cycles := envInt(t, "KPOD_SOAK_CYCLES", 400)
	every := envInt(t, "KPOD_SOAK_REPORT_EVERY", 100)
	if every%soakBatch != 0 {
		t.Fatalf("KPOD_SOAK_REPORT_EVERY=%d: must be a multiple of the batch (%d)", every, soakBatch)
	}

	p := freePorts(t)
	cfg := localConfig(t, p, soakExpiration.String())
	trace := newGoroutineTrace()
	k := testenv.StartCollectorCmd(t, kpodCommand(bin, cfg, goroutineTraceEnv), trace.tap)
	pid := k.Cmd.Process.Pid
	firstCycle(t, k, p)

	sampler := &soakSampler{}
	stopSampler, samplerDone := make(chan struct{}), make(chan struct{})
	go sampler.run(t, pid, p, stopSampler, samplerDone)
	t.Cleanup(func() { close(stopSampler); <-samplerDone })
	// The first goroutine count is of the first dump that began after the collector was
	// ready (dumps are 5 s apart; the ones before are of its start).
	for deadline, ready := time.Now().Add(30*time.Second), trace.dumpsSeen(); trace.dumpsSeen() < ready+2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no goroutine dump from the collector's runtime within 30 s (GODEBUG=schedtrace)")
		}
	}

	began := time.Now()
	deleted := map[string]time.Time{} // pod UID -> when it was removed
	dataMaps := map[string]bool{}     // maps kpod reports kpod_bpf_map_entries of: keyed by cgroup id
	lruMaps := map[string]bool{}      // LRU maps: bounded by their size, entries age out
	// The cgroups of the batches deleted within sweepWindow: kpod deletes a cgroup's keys at
	// the second collection that no longer finds it, up to two intervals (and a cycle's
	// duration) after the deletion, which is longer than a batch's life.
	type batch struct {
		at  time.Time
		ids []uint64
	}
	var deletedBatches []batch
	recent := map[uint64]bool{}
	layout := fakepod.HostLayout(t)
	var cgroups []uint64 // every cgroup id of the soak's pods
	var rows []soakRow
	measure := func(label string, done int) soakRow {
		t.Helper()
		clear(recent)
		for _, b := range deletedBatches {
			if time.Since(b.at) < sweepWindow {
				for _, id := range b.ids {
					recent[id] = true
				}
			}
		}
		r := soakRow{label: label, cycles: done, elapsed: time.Since(began), maps: map[string]int{}, kpodMaps: map[string]int{}, lostBy: map[string]float64{}, hostBy: map[string]int{}}
		st, err := fewestFDs(pid)
		if err != nil {
			t.Fatalf("collector process: %v", err)
		}
		r.rss, r.fds, r.kept, r.fdKinds = st.RSS, st.FDs-st.Kept, st.Kept, st.Others
		r.goroutines = trace.goroutines()
		r.heapMin, r.heapMax = sampler.window()
		now := time.Now()
		ss := scrape(t, p.metricsURL())
		r.series = len(ss)
		shown, others := map[string]bool{}, map[string]bool{}
		for _, s := range ss {
			switch s.Name {
			case "kpod_bpf_map_entries":
				r.kpodMaps[s.Labels["map"]] = int(s.Value)
				dataMaps[s.Labels["map"]] = true
			case "kpod_bpf_map_update_errors_total":
				r.lost += s.Value
				if s.Value > 0 {
					r.lostBy[s.Labels["map"]] = s.Value
				}
			case "kpod_cgroup_read_errors_total":
				r.readErrs += s.Value
			case "kpod_collector_errors_total":
				r.collErrs += s.Value
			case "kpod_collection_timeouts_total":
				r.timeouts += s.Value
			}
			uid := s.Labels["k8s_pod_uid"]
			gone, ours := deleted[uid]
			if !ours {
				if uid != "" {
					others[uid] = true
					r.others++
				} else if hostActivity(s.Name) {
					r.host++
					r.hostBy[s.Name]++
				}
				continue
			}
			r.podSeries++
			shown[uid] = true
			if age := now.Sub(gone); age > soakExpiration+expiryGrace {
				t.Errorf("%s: pod %s deleted %v ago still has series (metric_expiration %v + %v): %s",
					label, uid, age.Round(time.Millisecond), soakExpiration, expiryGrace, s)
			}
		}
		r.podsShown, r.otherPods = len(shown), len(others)
		// Other tests share the machine: their pods' cgroups and series come and go with
		// them, and are left out of what must stay flat.
		x, err := podid.NewScanner(layout.V2, "/proc").Scan()
		if err != nil {
			t.Fatal(err)
		}
		other := map[uint64]bool{}
		for _, pod := range x.Pods {
			if _, mine := deleted[pod.UID]; mine {
				continue
			}
			other[pod.CgroupID] = true
			for _, c := range pod.Containers {
				for _, id := range c.CgroupIDs {
					other[id] = true
				}
			}
		}
		mine := map[uint64]bool{}
		for _, id := range cgroups {
			mine[id] = true
		}
		ms, err := processMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Entries < 0 {
				continue
			}
			n := m.Entries
			if m.Type == ebpf.LRUHash || m.Type == ebpf.LRUCPUHash {
				lruMaps[m.Name] = true
			}
			if _, data := dataMaps[m.Name]; data {
				// Only the soak's pods' keys: those of the host's own cgroups come and go
				// with whatever else runs (a CI run: kpod_sys from 9 to 87 host keys while a
				// shell ran commands), and other tests' pods are left out as above.
				n = 0
				for _, id := range m.CgroupIDs {
					if mine[id] && !recent[id] && !other[id] {
						n++
					}
				}
			}
			r.maps[m.Name] += n
		}
		t.Logf("%s", r.line())
		return r
	}

	rows = append(rows, measure("start", 0))
	for done := 0; done < cycles; {
		n := min(soakBatch, cycles-done)
		born := time.Now()
		pods := make([]*fakepod.Pod, n)
		procs := make([]*fakepod.Proc, n)
		for i := range pods {
			pod := fakepod.New(t, fakepod.Options{})
			sb := pod.AddSandbox()
			c := pod.AddContainer()
			procs[i] = c.Start("fork", "3", "1")
			pods[i] = pod
			cgroups = append(cgroups, pod.CgroupID, sb.CgroupID, c.CgroupID)
		}
		for i, pr := range procs {
			if err := pr.Wait(); err != nil {
				t.Fatalf("workload of pod %s: %v", pods[i].UID, err)
			}
		}
		time.Sleep(time.Until(born.Add(soakLife)))
		for _, pod := range pods {
			pod.Remove()
			deleted[pod.UID] = time.Now()
		}
		deletedBatches = append(deletedBatches[max(0, len(deletedBatches)-8):], batch{time.Now(), cgroups[len(cgroups)-3*n:]})
		if exited, err := k.Exited(); exited {
			t.Fatalf("collector exited during the soak (%v) after %d pods", err, done)
		}
		done += n
		if done%every == 0 || done == cycles {
			rows = append(rows, measure(fmt.Sprintf("%d pods", done), done))
		}
	}
	churnEnd := time.Now()
	time.Sleep(soakExpiration + expiryGrace + 2*time.Second)
	end := measure(fmt.Sprintf("end (+%v)", time.Since(churnEnd).Round(time.Second)), cycles)
	rows = append(rows, end)

	checkSoak(t, rows, pid, cgroups, lruMaps)
	if warn := warnings(k.Output(), 20); len(warn) > 0 {
		t.Logf("the collector's warnings and errors (first %d):\n%s", len(warn), strings.Join(warn, "\n"))
	}
	report := soakTable(rows, time.Since(began))
	t.Logf("soak: %d pods in %v\n%s", cycles, churnEnd.Sub(began).Round(time.Second), report)
	if path := os.Getenv("KPOD_SOAK_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	if sampler.errs != nil {
		t.Logf("telemetry scrape errors while sampling: %v", sampler.errs)
	}
}

// checkSoak asserts the bounds of the soak (see RELIABILITY.md for why each is what it is).
func checkSoak(t *testing.T, rows []soakRow, pid int, cgroups []uint64, lru map[string]bool) {
	t.Helper()
	start, end := rows[0], rows[len(rows)-1]
	churn := rows[1 : len(rows)-1]
	if end.podSeries != 0 {
		t.Errorf("%d series of deleted pods left %v after the last deletion (metric_expiration %v)", end.podSeries, end.elapsed-churn[len(churn)-1].elapsed, soakExpiration)
	}
	for _, r := range rows {
		if r.lost != 0 {
			t.Errorf("%s: %v BPF map updates lost (no map was meant to fill): %v", r.label, r.lost, r.lostBy)
		}
		if r.readErrs != 0 || r.collErrs != 0 || r.timeouts != 0 {
			t.Errorf("%s: %v cgroup read errors, %v collector errors, %v cycle timeouts; want none (a pod deleted between discovery and read is not an error)",
				r.label, r.readErrs, r.collErrs, r.timeouts)
		}
	}
	// Flat: the rows taken once the churn has gone on for longer than a deleted pod's series
	// may live (from then on the endpoint holds the series of the pods of the last expiry
	// window only) are split in two halves; the later half may not exceed the earlier one by
	// more than the bounds below. A leak of one object per pod would add a thousand per
	// 1,000 pods; the bounds are what the same load varies by (see RELIABILITY.md).
	steady := soakExpiration + expiryGrace + 2*time.Second
	from := slices.IndexFunc(churn, func(r soakRow) bool { return r.elapsed >= steady })
	if from < 0 || len(churn)-from < 2 {
		t.Fatalf("too short a soak to compare: want two rows after %v of churn (raise KPOD_SOAK_CYCLES)", steady)
	}
	rest := churn[from:]
	early, late := rest[:len(rest)/2], rest[len(rest)/2:]
	peak := func(rows []soakRow, f func(soakRow) float64) float64 {
		m := f(rows[0])
		for _, r := range rows[1:] {
			m = max(m, f(r))
		}
		return m
	}
	bound := func(what string, f func(soakRow) float64, limit func(early float64) float64, unit string) bool {
		e, l := peak(early, f), peak(late, f)
		if l > limit(e) {
			t.Errorf("%s grows: at most %.1f%s in the later rows (%s..%s), %.1f%s before; allowed %.1f%s",
				what, l, unit, late[0].label, late[len(late)-1].label, e, unit, limit(e), unit)
			return false
		}
		return true
	}
	const mib = 1 << 20
	bound("RSS", func(r soakRow) float64 { return float64(r.rss) / mib }, func(e float64) float64 { return e + 24 }, " MiB")
	// The heap holds the live pods' series: the later rows may hold more of them than the
	// earlier ones while a short soak (make test's) has not yet reached its steady number of
	// live pods (a CI run: 100 then 140 pods, lowest heap 16.6 then 25.1 MiB).
	live := max(1, peak(late, func(r soakRow) float64 { return float64(r.podSeries) })/
		max(1, peak(early, func(r soakRow) float64 { return float64(r.podSeries) })))
	// The lowest heap of a row depends on whether a collection happened between its samples
	// (a CI run: one early row at 10.0 MiB, later rows at 16.3 and 20.3 with the same pods);
	// a leak raises every later row's, so the later half is judged by its lowest row.
	lows := func(rows []soakRow) float64 {
		m := rows[0].heapMin
		for _, r := range rows[1:] {
			m = min(m, r.heapMin)
		}
		return m / mib
	}
	if e, l := peak(early, func(r soakRow) float64 { return r.heapMin / mib }), lows(late); l > e*1.25*live+4 {
		t.Errorf("lowest Go heap grows: %.1f MiB in every later row (%s..%s), at most %.1f MiB before; allowed %.1f MiB",
			l, late[0].label, late[len(late)-1].label, e, e*1.25*live+4)
	}
	bound("goroutines", func(r soakRow) float64 { return float64(r.goroutines) }, func(e float64) float64 { return e + 20 }, "")
	if !bound("open fds", func(r soakRow) float64 { return float64(r.fds) }, func(e float64) float64 { return e + 10 }, "") {
		for _, r := range rows { // what grew: the kinds of the descriptors of each row
			t.Logf("open fds at %s by kind: %v", r.label, r.fdKinds)
		}
	}
	// The descriptors kpod keeps per cgroup and pod follow the pods alive at each row; once
	// every soak pod is gone (and cycles ran since), none of theirs may be left.
	if end.kept > start.kept+10 {
		t.Errorf("end: %d kept descriptors (cgroup files and directories, pidfds), %d at the start (+10 allowed for the rest of the host)", end.kept, start.kept)
	}
	// Series: a deleted pod's are checked against its expiry at every row; the rest, kpod's
	// node-level series (self-monitoring, BPF diagnostics), must not grow with the pods seen.
	// The node-level data series follow the host's own activity, not the pods: a CI run saw
	// 58 appear at once between two rows (an interrupt vector's or a host process's first
	// histogram); they are keyed by bounded sets (IRQs, vectors, drop reasons, max_edges).
	bound("node-level series", func(r soakRow) float64 { return float64(r.series - r.podSeries - r.others - r.host) }, func(e float64) float64 { return e*1.1 + 20 }, "")
	// The per-cgroup data maps (those kpod reports kpod_bpf_map_entries of); the others
	// stamp the host's requests and tasks in flight (block I/O starts, exiting tasks), as
	// many as the whole host has at that instant, and are checked at the end below.
	for name := range start.maps {
		if _, data := end.kpodMaps[name]; data {
			bound("map "+name+" entries", func(r soakRow) float64 { return float64(r.maps[name]) }, func(e float64) float64 { return e*1.5 + 32 }, "")
		}
	}
	// After the churn every map is back to where it started, but for what the rest of the
	// host did meanwhile; and no entry of any cgroup of the soak is left in any map.
	for name, n := range end.maps {
		if lru[name] {
			continue // bounded by its size; entries of closed connections age out (kpod_l7_conn)
		}
		if lim := start.maps[name] + 64; n > lim {
			t.Errorf("end: map %s has %d entries, %d at the start (+64 allowed for the rest of the host)", name, n, start.maps[name])
		}
	}
	ours := map[uint64]bool{}
	for _, id := range cgroups {
		ours[id] = true
	}
	ms, err := processMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if _, data := end.kpodMaps[m.Name]; !data {
			continue // not a per-cgroup data map (per-task stamps, filters)
		}
		left := 0
		for _, id := range m.CgroupIDs {
			if ours[id] {
				left++
			}
		}
		if left > 0 {
			t.Errorf("map %s still holds %d entries of the soak's removed cgroups", m.Name, left)
		}
	}
}

func (r soakRow) line() string {
	return fmt.Sprintf("%s: t=%v rss=%.1fMiB heap=%.1f-%.1fMiB goroutines=%d fds=%d kept=%d series=%d (pods: %d series of %d pods; other pods: %d series of %d; host activity: %v) lost=%v readErrs=%v maps=%v kpod=%v",
		r.label, r.elapsed.Round(time.Second), float64(r.rss)/(1<<20), r.heapMin/(1<<20), r.heapMax/(1<<20),
		r.goroutines, r.fds, r.kept, r.series, r.podSeries, r.podsShown, r.others, r.otherPods, r.hostBy, r.lost, r.readErrs, r.maps, r.kpodMaps)
}

// hostActivity tells the node-level data series (interrupts on idle CPUs, TCP drops no pod
// owns, host processes' edges) from kpod's own health series.
func hostActivity(metric string) bool {
	for _, p := range []string{"kpod_irq_", "kpod_net_tcp_drops", "kpod_topology_bytes", "kpod_topology_connections", "kpod_topology_rtt", "traces_service_graph_"} {
		if strings.HasPrefix(metric, p) {
			return true
		}
	}
	return false
}

// soakTable renders the rows as two Markdown tables: the process and the endpoint, and the
// entries of each BPF map.
func soakTable(rows []soakRow, total time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| Point | Elapsed | RSS (MiB) | Go heap, low–high (MiB) | Goroutines | Open fds (kept per cgroup and pod) | Series on the endpoint | of them the soak's pods' (pods) | of them other pods' (pods) | Map updates lost |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		heap := "-"
		if r.heapMin > 0 {
			heap = fmt.Sprintf("%.1f–%.1f", r.heapMin/(1<<20), r.heapMax/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %v | %.1f | %s | %d | %d (%d) | %d | %d (%d) | %d (%d) | %v |\n", r.label, r.elapsed.Round(time.Second),
			float64(r.rss)/(1<<20), heap, r.goroutines, r.fds, r.kept, r.series, r.podSeries, r.podsShown, r.others, r.otherPods, r.lost)
	}
	names := map[string]bool{}
	for _, r := range rows {
		for n := range r.maps {
			names[n] = true
		}
	}
	cols := slices.Sorted(maps.Keys(names))
	sort.Strings(cols)
	fmt.Fprintf(&b, "\nBPF map entries (kernel count; of a per-cgroup data map, the soak's pods' keys only; in parentheses kpod's own kpod_bpf_map_entries, all keys, where it reports the map):\n\n| Point |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", c)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(cols)))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.label)
		for _, c := range cols {
			if k, ok := r.kpodMaps[c]; ok {
				fmt.Fprintf(&b, " %d (%d) |", r.maps[c], k)
			} else {
				fmt.Fprintf(&b, " %d |", r.maps[c])
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nTotal %v.\n", total.Round(time.Second))
	return b.String()
}

// fewestFDs reads the collector's status three times 0.7 s apart and returns the read with
// the fewest descriptors besides the kept ones. The syscall family's latency windows
// (comprehensive: 1 in 16) attach its enter programs for window.Length of every 16 windows,
// and detaching them waits for RCU (~0.3 s): a read then counts their perf-event and link
// descriptors (a CI run: 18 more at one row, 10 perf events and 8 links, back at the next
// row). Two windows can follow each other (one period's last, the next's first), under 1.2 s
// together, so of three reads 1.4 s apart at least one sees none; a leak raises every read.
func fewestFDs(pid int) (procStatus, error) {
	var best procStatus
	for i := range 3 {
		if i > 0 {
			time.Sleep(700 * time.Millisecond)
		}
		st, err := readProcStatus(pid)
		if err != nil {
			return st, err
		}
		if i == 0 || st.FDs-st.Kept < best.FDs-best.Kept {
			best = st
		}
	}
	return best, nil
}
