package softirqs

import (
	"bufio"
	"context"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/window"
)

// TestVectorNames: the table matches the kernel's softirq_to_name, which /proc/softirqs
// prints in vector order (upper case). Readable without root.
func TestVectorNames(t *testing.T) {
	want := []string{"hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched", "hrtimer", "rcu"}
	for i, n := range want {
		if got := VectorName(uint32(i)); got != n {
			t.Errorf("VectorName(%d) = %q, want %q", i, got, n)
		}
	}
	if got := VectorName(12); got != "vec12" {
		t.Errorf("VectorName(12) = %q, want vec12", got)
	}
	f, err := os.Open("/proc/softirqs")
	if err != nil {
		fakepod.Unmet(t, "no /proc/softirqs: "+err.Error())
	}
	defer f.Close()
	var rows []string
	sc := bufio.NewScanner(f)
	sc.Scan() // CPU header
	for sc.Scan() {
		name, _, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if ok {
			rows = append(rows, strings.ToLower(name))
		}
	}
	if len(rows) != len(Vectors) {
		t.Fatalf("/proc/softirqs has %d vectors %v, the table %d", len(rows), rows, len(Vectors))
	}
	for i, r := range rows {
		if Vectors[i] != r {
			t.Errorf("vector %d: kernel says %q, table %q", i, r, Vectors[i])
		}
	}
}

func TestStatsAdd(t *testing.T) {
	h := hist.Hist{SumNs: 3, Counts: [hist.Slots]uint64{1, 2}}
	var s Stats
	s = s.Add(Stats{"timer": h}).Add(Stats{"timer": h, "sched": h})
	x, y := s["timer"], s["sched"]
	if x.SumNs != 6 || x.Count() != 6 || y.Count() != 3 {
		t.Errorf("Stats.Add: %+v", s)
	}
}

func TestObjectShape(t *testing.T) {
	spec, err := LoadSoftirqs()
	if err != nil {
		t.Fatal(err)
	}
	bpftest.CheckShape(t, spec, Spec().Hooks)
}

// TestRealSoftirqs: two pods spin on CPU 0 and CPU 1 for 2 s. Soft IRQs that run on the
// spinners' CPUs while they run are charged to them; a pod asleep the whole time gets
// nothing.
func TestRealSoftirqs(t *testing.T) { onEachRung(t, realSoftirqs) }

func realSoftirqs(t *testing.T, rung string) {
	const spinMs = 2000
	// The sleeper is asleep (in pause()) before the programs attach: it is never the
	// interrupted task, so it must get exactly nothing.
	cs := fakepod.New(t, fakepod.Options{}).AddContainer()
	cs.Start("sleep").WaitReady()
	time.Sleep(20 * time.Millisecond)

	c := started(t, rung, 1)
	stats := bpftest.EnableStats(t)

	pods, wait := fakepod.Spinners(t, spinMs, 0, 1)
	wall := wait()
	live := map[uint64]bool{pods[0].CgroupID: true, pods[1].CgroupID: true, cs.CgroupID: true}
	ss, err := c.Collect(context.Background(), &podid.Index{Live: live})
	if err != nil {
		t.Fatal(err)
	}
	for cpu, c := range pods {
		s := ss[c.CgroupID]
		t.Logf("pod on CPU %d: soft IRQs %s", cpu, describe(s))
		// The tick raises TIMER, SCHED and RCU soft IRQs on every busy CPU, and they run on
		// irq_exit, in the spinner's context. Every vector's histogram is bounded: a soft IRQ
		// is only charged while the pod is the current task of a CPU, so the total can never
		// exceed the pod's wall time.
		if len(s) == 0 {
			t.Errorf("pod on CPU %d: no soft IRQ time", cpu)
		}
		if timer := s["timer"]; timer.Count() == 0 {
			t.Errorf("pod on CPU %d: no timer soft IRQ in %d ms of spinning", cpu, spinMs)
		}
		var total uint64
		for _, x := range s {
			total += x.SumNs
		}
		if time.Duration(total) > wall {
			t.Errorf("pod on CPU %d: %v of soft IRQ time in %v of wall time", cpu, time.Duration(total), wall)
		}
	}
	if ns, ok := ss[bpfload.NodeID]; !ok {
		t.Errorf("no node-level soft IRQ series")
	} else {
		t.Logf("node-level soft IRQs: %s", describe(ns))
	}
	if s, ok := ss[cs.CgroupID]; ok {
		t.Errorf("sleeping pod: soft IRQs %s", describe(s))
	}
	errs, err := c.Obj.UpdateErrors()
	if err != nil {
		t.Fatal(err)
	}
	for m, v := range errs {
		if v != 0 {
			t.Errorf("%d failed updates of %s", v, m)
		}
	}
	stats(c.Obj)
}

// TestRealSoftirqsWindows: with a sample above 1 the programs run only in windows. Pods
// spinning while the window is closed get nothing, nor does the node; pods spinning inside a
// window get their soft IRQs (the positive control: the tick's, as in TestRealSoftirqs);
// closing the window leaves no stamp on any CPU; and nothing changes while it is closed again.
func TestRealSoftirqsWindows(t *testing.T) { onEachRung(t, realSoftirqsWindows) }

func realSoftirqsWindows(t *testing.T, rung string) {
	const spinMs = 500
	c := started(t, rung, window.DefaultSample)
	if c.Sample != window.DefaultSample {
		t.Fatalf("sample %d, want %d", c.Sample, window.DefaultSample)
	}
	c.StopWindows() // the test opens the window itself
	collect := func(pods ...[]*fakepod.Container) map[uint64]Stats {
		t.Helper()
		live := map[uint64]bool{}
		for _, ps := range pods {
			for _, p := range ps {
				live[p.CgroupID] = true
			}
		}
		ss, err := c.Collect(context.Background(), &podid.Index{Live: live})
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}

	// What the programs timed while Start had them attached, before it closed the window.
	base := collect()[bpfload.NodeID]
	closed, wait := fakepod.Spinners(t, spinMs, 0, 1)
	wait()
	ss := collect(closed)
	for cpu, p := range closed {
		if s, ok := ss[p.CgroupID]; ok {
			t.Errorf("pod on CPU %d spinning while the window was closed: %s", cpu, describe(s))
		}
	}
	if !reflect.DeepEqual(ss[bpfload.NodeID], base) {
		t.Errorf("window closed: the node's soft IRQs changed from %s to %s", describe(base), describe(ss[bpfload.NodeID]))
	}

	if err := c.OpenWindow(); err != nil {
		t.Fatal(err)
	}
	open, wait := fakepod.Spinners(t, spinMs, 0, 1)
	wall := wait()
	if err := c.CloseWindow(); err != nil {
		t.Fatal(err)
	}
	in := collect(closed, open)
	for cpu, p := range open {
		s := in[p.CgroupID]
		t.Logf("pod on CPU %d, in the window: soft IRQs %s", cpu, describe(s))
		var n, total uint64
		for _, x := range s {
			n += x.Count()
			total += x.SumNs
		}
		if n == 0 || time.Duration(total) > wall {
			t.Errorf("pod on CPU %d spinning %v in the window: %d soft IRQs, %v", cpu, wall, n, time.Duration(total))
		}
	}
	for cpu, p := range closed {
		if s, ok := in[p.CgroupID]; ok {
			t.Errorf("pod on CPU %d, which spun while the window was closed: %s", cpu, describe(s))
		}
	}
	// A stamp left behind (written here: a soft IRQ still running when the exit program was
	// detached) is cleared by closing the window.
	ts := c.Obj.Maps[SoftirqsMapKpodSirqTs]
	stamps := make([]uint64, ebpf.MustPossibleCPU())
	for i := range stamps {
		stamps[i] = 1
	}
	if err := ts.Update(uint32(0), stamps, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWindow(); err != nil {
		t.Fatal(err)
	}
	if err := ts.Lookup(uint32(0), &stamps); err != nil {
		t.Fatal(err)
	}
	for cpu, v := range stamps {
		if v != 0 {
			t.Errorf("CPU %d: stamp %d left after the window closed", cpu, v)
		}
	}

	again, wait := fakepod.Spinners(t, spinMs, 0, 1)
	wait()
	after := collect(closed, open, again)
	for _, p := range append(append(closed, open...), again...) {
		if !reflect.DeepEqual(after[p.CgroupID], in[p.CgroupID]) {
			t.Errorf("window closed again: the soft IRQs of cgroup %d changed from %s to %s", p.CgroupID, describe(in[p.CgroupID]), describe(after[p.CgroupID]))
		}
	}
	if !reflect.DeepEqual(after[bpfload.NodeID], in[bpfload.NodeID]) {
		t.Errorf("window closed again: the node's soft IRQs changed from %s to %s", describe(in[bpfload.NodeID]), describe(after[bpfload.NodeID]))
	}
}

// started loads the family on rung with sample; it is unloaded when the test ends.
func started(t *testing.T, rung string, sample uint32) *Collector {
	t.Helper()
	bpftest.On(t, rung)
	c, err := Start(sample)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	bpftest.CheckRung(t, c.Obj, rung)
	return c
}

// onEachRung runs test on each attach rung, as root, with the two CPUs every test here uses.
func onEachRung(t *testing.T, test func(t *testing.T, rung string)) {
	fakepod.RequireRoot(t)
	if runtime.NumCPU() < 2 {
		fakepod.Unmet(t, "needs 2 CPUs")
	}
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { test(t, rung) })
	}
}

func describe(s Stats) string {
	var b strings.Builder
	for _, name := range Vectors {
		h, ok := s[name]
		if !ok {
			continue
		}
		top := 0
		for i, c := range h.Counts {
			if c > 0 {
				top = i
			}
		}
		b.WriteString(name + "=" + strconv.FormatUint(h.Count(), 10) + "/" + time.Duration(h.SumNs).String() +
			"(max<=" + time.Duration(hist.Bounds()[min(top, len(hist.Bounds())-1)]*1e9).String() + ") ")
	}
	return b.String()
}

// TestRealSoftirqsNetRx: a pod in its own network namespace, pinned to CPU 1, sends N UDP
// datagrams to its loopback. Loopback's transmit queues each packet to this CPU's backlog
// and raises NET_RX, which runs when the sender re-enables bottom halves at the end of the
// transmit, in the sender's context: exactly N net_rx soft IRQs are the pod's (the workload's
// own count), and the kernel counts exactly N NET_RX on CPU 1. A sibling pod, asleep, gets
// none. Two things outside the test change where soft IRQs run, and a round that saw either
// is run again with a new pod (at most 30; few sends keep a round short): a device interrupt
// on CPU 1 (the machine's network card raising NET_RX in the pod's context), and ksoftirqd/1
// running (before 6.5, a soft IRQ raised while ksoftirqd is runnable is left to it, charged
// to the node; the VMs do that in most rounds of 200 sends). The kernel's NET_RX count on
// CPU 1 other than N also means the sends were not run one soft IRQ each: run again too.
func TestRealSoftirqsNetRx(t *testing.T) { onEachRung(t, realSoftirqsNetRx) }

func realSoftirqsNetRx(t *testing.T, rung string) {
	const n, cpu, rounds = 20, 1, 30
	ksoftirqd := kthreadPID(t, "ksoftirqd/"+strconv.Itoa(cpu))
	sleeper := fakepod.New(t, fakepod.Options{}).AddContainer()
	sleeper.Start("sleep").WaitReady()
	c := started(t, rung, 1)
	for round := 1; ; round++ {
		sender := fakepod.New(t, fakepod.Options{NetNS: true}).AddContainer()
		sender.Env = []string{"KPOD_CPU=" + strconv.Itoa(cpu)}
		irqs0, netrx0, ks0 := deviceIRQs(t, cpu), netRxSoftirqs(t, cpu), switches(t, ksoftirqd)
		sender.Run("udp", "127.0.0.1", "9", strconv.Itoa(n), "1")
		irqs1, netrx1, ks1 := deviceIRQs(t, cpu), netRxSoftirqs(t, cpu), switches(t, ksoftirqd)
		ss, err := c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{sender.CgroupID: true, sleeper.CgroupID: true}})
		if err != nil {
			t.Fatal(err)
		}
		got := ss[sender.CgroupID]["net_rx"]
		t.Logf("round %d: pod's soft IRQs %s; on CPU %d: kernel NET_RX +%d, device interrupts +%d, ksoftirqd switches +%d",
			round, describe(ss[sender.CgroupID]), cpu, netrx1-netrx0, irqs1-irqs0, ks1-ks0)
		if irqs1 != irqs0 || ks1 != ks0 || netrx1-netrx0 != n {
			if round == rounds {
				t.Fatalf("no round of %d without a device interrupt or ksoftirqd on CPU %d, with one NET_RX per send", rounds, cpu)
			}
			continue
		}
		if got.Count() != n {
			t.Errorf("pod that sent %d datagrams over loopback: %d net_rx soft IRQs, want %d (the kernel's NET_RX count on CPU %d)", n, got.Count(), n, cpu)
		}
		if s, ok := ss[sleeper.CgroupID]; ok {
			t.Errorf("sleeping pod: soft IRQs %s", describe(s))
		}
		return
	}
}

// kthreadPID is the pid of the kernel thread named comm.
func kthreadPID(t *testing.T, comm string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + d.Name() + "/comm"); err == nil && strings.TrimSpace(string(b)) == comm {
			return pid
		}
	}
	t.Fatalf("no kernel thread %s", comm)
	return 0
}

// switches is how many times task pid has been switched out (voluntary and not).
func switches(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
			x, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status: %s: %v", pid, k, err)
			}
			sum += x
			found++
		}
	}
	if found != 2 {
		t.Fatalf("/proc/%d/status has no context switch counts", pid)
	}
	return sum
}

// procColumn returns the counts of CPU cpu in the rows of a /proc/interrupts-like file
// whose label (before the colon) keep accepts.
func procColumn(t *testing.T, path string, cpu int, keep func(label string) bool) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	lines := strings.Split(string(b), "\n")
	for _, l := range lines[1:] { // the first line names the CPUs
		label, rest, ok := strings.Cut(l, ":")
		label = strings.TrimSpace(label)
		if !ok || !keep(label) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) <= cpu {
			t.Fatalf("%s: row %q has no CPU %d", path, label, cpu)
		}
		v, err := strconv.ParseUint(f[cpu], 10, 64)
		if err != nil {
			t.Fatalf("%s: row %q: %v", path, label, err)
		}
		out[label] = v
	}
	return out
}

// deviceIRQs is the number of device interrupts (numbered rows of /proc/interrupts) CPU
// cpu has taken.
func deviceIRQs(t *testing.T, cpu int) uint64 {
	var sum uint64
	for _, v := range procColumn(t, "/proc/interrupts", cpu, func(l string) bool { _, err := strconv.Atoi(l); return err == nil }) {
		sum += v
	}
	return sum
}

// netRxSoftirqs is the kernel's count of NET_RX soft IRQs run on CPU cpu.
func netRxSoftirqs(t *testing.T, cpu int) uint64 {
	v, ok := procColumn(t, "/proc/softirqs", cpu, func(l string) bool { return l == "NET_RX" })["NET_RX"]
	if !ok {
		t.Fatal("/proc/softirqs has no NET_RX row")
	}
	return v
}
