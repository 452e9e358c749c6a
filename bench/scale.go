//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kpod-project/kpod/internal/promtext"
)

// scalePoint is what was measured with one number of fake pods.
type scalePoint struct {
	Pods          int
	CreateSec     float64 // creating the cgroups and starting the sleeping processes
	CleanupSec    float64
	Cycles        []float64            // in-process receiver: kpod.collection.cycle.duration, s
	Collectors    map[string][]float64 // in-process: kpod.collector.duration per collector, s
	Points        []int                // data points per scrape
	Profile       string               // CPU profile file (in-process cycles), if taken
	ProfileTop    string               // go tool pprof -top of it
	OtelCycles    []float64            // otelcol-kpod: kpod_collection_cycle_duration_seconds
	OtelRSS       []uint64             // VmRSS samples of otelcol-kpod, bytes
	OtelHWM       uint64               // VmHWM at the end
	OtelPods      int                  // kpod_discovery_pods as reported by otelcol-kpod
	OtelSeries    int                  // lines of /metrics that are samples
	OtelScrapeSec []float64            // time to GET /metrics
	OtelRuntime   map[string]float64   // otelcol_process_* telemetry at the last sample
	OtelAnon      uint64               // /proc/<pid>/smaps_rollup Anonymous at the end
	OtelRssTotal  uint64               // smaps_rollup Rss at the end
	OtelBinRSS    uint64               // resident pages of the otelcol-kpod binary's own mappings
	OtelFDs       map[string]int       // otelcol-kpod's open descriptors by kind (fdKinds) at the end
	Syscalls      string               // syscount -p <otelcol-kpod> -L over some cycles (largest pod count)
	SyscallCycles float64              // cycles that syscount window covered
	HeapDelta     int64                // in-process: live heap after GC with the receiver running minus before it started
	HeapProfile   string
	HeapTop       string
	Error         string
}

type scaleOptions struct {
	kbench      string
	otelcol     string
	outDir      string
	cycles      int // in-process cycles measured (after one warm-up)
	otelSamples int
	profileAt   int // pod count at which the CPU profile is taken
	env         []string
}

func runScale(counts []int, o scaleOptions) []*scalePoint {
	var out []*scalePoint
	for _, n := range counts {
		pt := &scalePoint{Pods: n}
		out = append(out, pt)
		if err := scaleOne(pt, o); err != nil {
			pt.Error = err.Error()
			logf("scale %d pods: %v", n, err)
		}
	}
	return out
}

func scaleOne(pt *scalePoint, o scaleOptions) (err error) {
	t0 := time.Now()
	ps, err := newSleepingPodSet(o.kbench, pt.Pods)
	if err != nil {
		return err
	}
	defer func() {
		t := time.Now()
		if e := ps.close(); e != nil && err == nil {
			err = e
		}
		pt.CleanupSec = time.Since(t).Seconds()
		logf("scale %d pods: removed in %.2f s", pt.Pods, pt.CleanupSec)
	}()
	pt.CreateSec = time.Since(t0).Seconds()
	logf("scale %d pods: created in %.2f s", pt.Pods, pt.CreateSec)

	// In-process: the receiver's own scrape, standard profile, one cycle a second.
	heap0 := liveHeap()
	k, err := startKpod(kpodOptions{Profile: "standard", Interval: time.Second})
	if err != nil {
		return err
	}
	if err := k.waitCycles(1, time.Minute); err != nil { // warm-up
		_ = k.stop()
		return err
	}
	var prof *os.File
	if pt.Pods == o.profileAt {
		pt.Profile = filepath.Join(o.outDir, fmt.Sprintf("scrape-%dpods.cpu.prof", pt.Pods))
		if prof, err = os.Create(pt.Profile); err == nil {
			err = pprof.StartCPUProfile(prof)
		}
		if err != nil {
			_ = k.stop()
			return err
		}
	}
	err = k.waitCycles(o.cycles, time.Duration(o.cycles)*10*time.Second+time.Minute)
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	cycles, coll, points := k.snapshot()
	pt.HeapDelta = int64(liveHeap()) - int64(heap0)
	_ = k.stop()
	if err != nil {
		return err
	}
	if pt.Profile != "" {
		if err := heapProfile(pt, o); err != nil {
			logf("heap profile: %v", err)
		}
	}
	pt.Cycles, pt.Points = cycles[1:], points[1:]
	pt.Collectors = map[string][]float64{}
	for c, v := range coll {
		if len(v) > 1 {
			pt.Collectors[c] = v[1:]
		}
	}
	if pt.Profile != "" {
		top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", pt.Profile).CombinedOutput()
		if err != nil {
			logf("pprof: %v", err)
		}
		pt.ProfileTop = string(top)
	}
	if o.otelcol != "" {
		return otelScale(pt, o)
	}
	return nil
}

// heapProfile runs the receiver again with every 4 KiB of allocation sampled (only now: the
// sampling slows the cycles measured before) and writes the live heap after three cycles.
func heapProfile(pt *scalePoint, o scaleOptions) error {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 4096
	defer func() { runtime.MemProfileRate = old }()
	k, err := startKpod(kpodOptions{Profile: "standard", Interval: time.Second})
	if err != nil {
		return err
	}
	defer k.stop()
	if err := k.waitCycles(3, 2*time.Minute); err != nil {
		return err
	}
	runtime.GC()
	pt.HeapProfile = filepath.Join(o.outDir, fmt.Sprintf("receiver-%dpods.heap.prof", pt.Pods))
	f, err := os.Create(pt.HeapProfile)
	if err != nil {
		return err
	}
	err = pprof.WriteHeapProfile(f)
	f.Close()
	if err != nil {
		return err
	}
	top, _ := exec.Command("go", "tool", "pprof", "-sample_index=inuse_space", "-top", "-nodecount=20", pt.HeapProfile).CombinedOutput()
	pt.HeapTop = string(top)
	return nil
}

// otelScale runs otelcol-kpod (kpod standard profile → prometheus exporter, 2 s interval)
// against the pods and samples its RSS and reported cycle duration while Prometheus-style
// scrapes of /metrics happen every interval.
func otelScale(pt *scalePoint, o scaleOptions) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	tport, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(o.outDir, fmt.Sprintf("otelcol-%dpods.yaml", pt.Pods))
	conf := fmt.Sprintf(`receivers:
  kpod:
    profile: standard
    collection_interval: 2s
    node_name: kpod-bench
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      included: ["k8s.*", "container.*"]
service:
  pipelines:
    metrics:
      receivers: [kpod]
      exporters: [prometheus]
  telemetry:
    logs:
      level: warn
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
`, port, tport)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(o.outDir, fmt.Sprintf("otelcol-%dpods.log", pt.Pods)))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(o.otelcol, "--config", cfg)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	notePID(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	// Wait for a scrape that saw all pods.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("otelcol-kpod exited: %v (log: %s)", err, logFile.Name())
		default:
		}
		m, _, _, err := scrapeProm(url, "kpod_")
		if err == nil && int(m["kpod_discovery_pods"]) >= pt.Pods {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("otelcol-kpod did not report %d pods within 2 minutes (log: %s)", pt.Pods, logFile.Name())
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i := 0; i < o.otelSamples; i++ {
		time.Sleep(2 * time.Second)
		m, series, took, err := scrapeProm(url, "kpod_")
		if err != nil {
			return err
		}
		if rt, _, _, err := scrapeProm(fmt.Sprintf("http://127.0.0.1:%d/metrics", tport), "otelcol_process_"); err == nil {
			pt.OtelRuntime = rt
		}
		pt.OtelCycles = append(pt.OtelCycles, m["kpod_collection_cycle_duration_seconds"])
		pt.OtelPods = int(m["kpod_discovery_pods"])
		pt.OtelSeries = series
		pt.OtelScrapeSec = append(pt.OtelScrapeSec, took.Seconds())
		rss, _ := procStatus(cmd.Process.Pid, "VmRSS")
		pt.OtelRSS = append(pt.OtelRSS, rss)
	}
	pt.OtelHWM, _ = procStatus(cmd.Process.Pid, "VmHWM")
	pt.OtelBinRSS = mappingRSS(cmd.Process.Pid, o.otelcol)
	pt.OtelFDs = fdKinds(cmd.Process.Pid)
	pt.OtelRssTotal, _ = procField(fmt.Sprintf("/proc/%d/smaps_rollup", cmd.Process.Pid), "Rss")
	pt.OtelAnon, _ = procField(fmt.Sprintf("/proc/%d/smaps_rollup", cmd.Process.Pid), "Anonymous")
	if pt.Pods == o.profileAt {
		// Which system calls the collector makes per cycle: libbpf-tools syscount on its pid
		// for 5 collection cycles (after the measurements above: it slows every syscall).
		out, err := exec.Command("/usr/sbin/syscount", "-p", fmt.Sprint(cmd.Process.Pid), "-d", "10", "-L", "-T", "12").CombinedOutput()
		if err != nil {
			logf("syscount: %v: %s", err, out)
		} else {
			pt.Syscalls, pt.SyscallCycles = string(out), 5
		}
	}
	return nil
}

// scrapeProm GETs a Prometheus endpoint and returns the value of every sample whose name
// starts with prefix (of labelled ones, the last), the number of samples, and how long the
// GET took.
func scrapeProm(url, prefix string) (map[string]float64, int, time.Duration, error) {
	t0 := time.Now()
	raw, err := promtext.Fetch(context.Background(), url)
	took := time.Since(t0)
	if err != nil {
		return nil, 0, 0, err
	}
	ss, err := promtext.Parse(bytes.NewReader(raw))
	if err != nil {
		return nil, 0, 0, err
	}
	out := map[string]float64{}
	for _, s := range ss {
		if strings.HasPrefix(s.Name, prefix) {
			out[s.Name] = s.Value
		}
	}
	return out, len(ss), took, nil
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes.
// fdKinds counts a process's open descriptors: cgroup files and directories (kept open
// between collections), pidfds (a process per pod and namespace family), BPF objects, other.
func fdKinds(pid int) map[string]int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(target, "/sys/fs/cgroup/"):
			if st, err := os.Stat(target); err == nil && st.IsDir() {
				out["cgroup directories"]++
			} else {
				out["cgroup files"]++
			}
		case target == "anon_inode:[pidfd]":
			out["pidfds"]++
		case strings.HasPrefix(target, "anon_inode:bpf") || strings.HasPrefix(target, "anon_inode:[bpf") || strings.HasPrefix(target, "anon_inode:[perf_event]"):
			out["BPF and perf events"]++
		default:
			out["other"]++
		}
	}
	return out
}

func procStatus(pid int, field string) (uint64, error) {
	return procField(fmt.Sprintf("/proc/%d/status", pid), field)
}

// mappingRSS sums the Rss of the mappings of file path in /proc/<pid>/smaps.
func mappingRSS(pid int, path string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0
	}
	abs, _ := filepath.Abs(path)
	var sum uint64
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && len(f) >= 5 { // a mapping header
			in = len(f) >= 6 && f[5] == abs
			continue
		}
		if in && f[0] == "Rss:" && len(f) >= 2 {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			sum += kb * 1024
		}
	}
	return sum
}

// liveHeap is this process's live heap right after a garbage collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// procField reads a "Name:  N kB" field of a /proc file, in bytes.
func procField(path, field string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
