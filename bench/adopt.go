//go:build bench

package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/softirqs"
	"github.com/kpod-project/kpod/internal/syscall"
	"github.com/kpod-project/kpod/internal/window"
)

// An adopted config is a config whose BPF programs were loaded by their own code (the kpod
// receiver's start, bpftrace, a libbpf-tools binary), then taken over: the benchmark opens
// the same programs by id, the original is stopped (its links go, the programs and their maps
// stay alive through our file descriptors), and the benchmark attaches them again, to the
// same hooks with the same attach type, whenever it wants. Attaching and detaching then take
// milliseconds instead of the seconds loading and verifying take, so that a sample with the
// programs attached and one without can be taken a few milliseconds apart: on this VM, whose
// speed drifts by tens of percent within seconds, only such close pairs can be compared.
//
// What is lost: the original's userspace (the receiver's scrapes, a tool reading its maps or
// a perf buffer). Tools that stream every event to userspace (execsnoop, exitsnoop, tcplife)
// are therefore not adopted but started and stopped around each sample.
//
// Hook kinds: tp_btf and raw_tp links and perf-event tracepoints are what `bpftool perf show`
// lists, one row per attachment — so a program attached to many tracepoints (the syscall
// family's per-call events: one enter and one exit program on the sys_enter_<name> and
// sys_exit_<name> of every tracked call) is adopted with all of them and attached to all of
// them again. BPF iterators (the tcp family's iter/tcp) are not attachments that run per
// event: the receiver runs them at collection time, so they are not adopted (their cost is
// measured per run, iter.go). fentry and kprobe links are not listed either; no family takes
// them on this kernel.
type adopted struct {
	Name   string
	Hooks  []hookRef
	progs  map[uint32]*ebpf.Program
	links  []link.Link
	floor  bool         // the programs stand in for the adopted config's (floor.go): empty ones, or counters
	counts *counterMaps // a counter's maps

	// windows > 0: the windowed families' timing hooks (Windowed: syscall's enter program,
	// softirqs' two) are attached in latency windows only, with this sample, as the receiver
	// does (window.Schedule). One schedule opens them together; the receiver runs one per
	// family, attached the same share of the time.
	windows uint32
	win     *window.Schedule
	wmu     sync.Mutex
	wlinks  []link.Link
	wstate  []*ebpf.Map // the syscall family's window state (syscall.SetWindow), told as the receiver tells it
}

// hookRef is one attachment as `bpftool perf show` reports it (BPF_TASK_FD_QUERY on the
// file descriptors of a process: raw_tracepoint links, tp_btf links, perf-event tracepoints).
type hookRef struct {
	PID        int    `json:"pid"`
	FD         int    `json:"fd"`
	ProgID     uint32 `json:"prog_id"`
	FDType     string `json:"fd_type"`
	Tracepoint string `json:"tracepoint"`
	ProgName   string `json:"-"`
	ProgType   string `json:"-"`
	Windowed   bool   `json:"-"` // attached in the latency windows only
}

// hooksOf lists the tracepoint attachments of a process.
func hooksOf(pid int) ([]hookRef, error) {
	out, err := exec.Command("bpftool", "perf", "show", "-j").Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool perf show: %w", err)
	}
	var all []hookRef
	if err := json.Unmarshal(out, &all); err != nil {
		return nil, fmt.Errorf("bpftool perf show: %w", err)
	}
	var mine []hookRef
	for _, h := range all {
		if h.PID == pid && (h.FDType == "raw_tracepoint" || h.FDType == "tracepoint") {
			mine = append(mine, h)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Tracepoint < mine[j].Tracepoint })
	return mine, nil
}

// adopt starts c, takes over its programs and stops it again. The returned attached
// describes the original (load time, programs, maps); it is already stopped.
func adopt(c *config) (*adopted, *attached, error) {
	a, err := c.attach()
	if err != nil {
		return nil, nil, err
	}
	hooks, err := hooksOf(a.objPID)
	if err == nil && len(hooks) == 0 {
		err = fmt.Errorf("%s: no tracepoint attachments found", c.Name)
	}
	ad := &adopted{Name: c.Name, progs: map[uint32]*ebpf.Program{}}
	if err == nil {
		for i, h := range hooks {
			p, ok := ad.progs[h.ProgID]
			if !ok {
				if p, err = ebpf.NewProgramFromID(ebpf.ProgramID(h.ProgID)); err != nil {
					break
				}
				ad.progs[h.ProgID] = p
			}
			hooks[i].ProgName, hooks[i].ProgType = progName(h.ProgID), p.Type().String()
		}
		ad.Hooks = hooks
		if n, fams := c.windowed(); n > 0 && err == nil {
			ad.windows = n
			for _, f := range fams {
				found := false
				for i, h := range hooks {
					for _, prefix := range windowedProgs[f] {
						if strings.HasPrefix(h.ProgName, prefix) {
							hooks[i].Windowed, found = true, true
						}
					}
				}
				if !found && err == nil {
					err = fmt.Errorf("%s: no %s program among its attachments to run the latency windows with", c.Name, f)
				}
			}
			if err == nil && slices.Contains(fams, "syscall") {
				ad.wstate, err = mapsNamed(ad.progs, syscall.SyscallMapKpodSysWin)
			}
		}
	}
	a.detach()
	if err != nil {
		ad.close()
		return nil, nil, err
	}
	// The original is gone: its links must be too, or "off" would not be off.
	if left, _ := hooksOf(a.objPID); len(left) > 0 {
		ad.close()
		return nil, nil, fmt.Errorf("%s: still attached after stopping", c.Name)
	}
	return ad, a, nil
}

// windowedProgs are the program name prefixes each windowed family attaches in its windows
// only: syscall's enter program on either path, both of softirqs' programs.
var windowedProgs = map[string][]string{
	"syscall":  {syscall.EnterHook(syscall.PathPerCall), syscall.EnterHook(syscall.PathEveryCall)},
	"softirqs": {softirqs.EntryProg, softirqs.ExitProg},
}

// windowedFamilies are windowedProgs' families, in a fixed order.
var windowedFamilies = slices.Sorted(maps.Keys(windowedProgs))

// on attaches every adopted program to its hook, the windowed ones in the latency windows.
func (a *adopted) on() error {
	for _, h := range a.Hooks {
		if h.Windowed {
			continue
		}
		l, err := a.attachRef(h)
		if err != nil {
			a.off()
			return err
		}
		a.links = append(a.links, l)
	}
	if a.windows > 0 {
		if err := a.windowOff(); err != nil {
			a.off()
			return err
		}
		a.win = window.Start(a.windows, a.windowOn, a.windowOff)
	}
	return nil
}

// mapsNamed opens the maps called name that the programs use.
func mapsNamed(progs map[uint32]*ebpf.Program, name string) ([]*ebpf.Map, error) {
	seen := map[ebpf.MapID]bool{}
	var out []*ebpf.Map
	for _, p := range progs {
		info, err := p.Info()
		if err != nil {
			return nil, err
		}
		ids, _ := info.MapIDs()
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				return nil, err
			}
			if mi, err := m.Info(); err == nil && mi.Name == name {
				out = append(out, m)
			} else {
				m.Close()
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no map %s among the programs' maps", name)
	}
	return out, nil
}

func (a *adopted) attachRef(h hookRef) (l link.Link, err error) {
	p := a.progs[h.ProgID]
	switch p.Type() {
	case ebpf.Tracing:
		l, err = link.AttachTracing(link.TracingOptions{Program: p})
	case ebpf.RawTracepoint:
		l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.Tracepoint, Program: p})
	case ebpf.TracePoint:
		var group string
		if group, err = tracepointGroup(h.Tracepoint); err == nil {
			l, err = link.Tracepoint(group, h.Tracepoint, p, nil)
		}
	default:
		err = fmt.Errorf("program type %s", p.Type())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: attaching %s to %s: %w", a.Name, h.ProgName, h.Tracepoint, err)
	}
	return l, nil
}

// windowOn and windowOff attach and detach the windowed hooks (window.Schedule calls them).
func (a *adopted) windowOn() error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	for _, m := range a.wstate {
		if err := syscall.SetWindow(m, true); err != nil {
			return err
		}
	}
	for _, h := range a.Hooks {
		if !h.Windowed {
			continue
		}
		l, err := a.attachRef(h)
		if err != nil {
			_ = bpfload.CloseLinks(a.wlinks)
			a.wlinks = nil
			return err
		}
		a.wlinks = append(a.wlinks, l)
	}
	return nil
}

func (a *adopted) windowOff() error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	_ = bpfload.CloseLinks(a.wlinks)
	a.wlinks = nil
	for _, m := range a.wstate {
		if err := syscall.SetWindow(m, false); err != nil {
			return err
		}
	}
	return nil
}

// off detaches everything.
func (a *adopted) off() {
	if a.win != nil {
		a.win.Stop() // the windowed hooks detached
		if err := a.win.Err(); err != nil {
			logf("%s: %v", a.Name, err)
		}
		a.win = nil
	}
	_ = bpfload.CloseLinks(a.links)
	a.links = nil
}

func (a *adopted) close() {
	a.off()
	for _, p := range a.progs {
		p.Close()
	}
	a.progs = nil
	for _, m := range a.wstate {
		m.Close()
	}
	a.wstate = nil
	if a.counts != nil {
		a.counts.Close()
		a.counts = nil
	}
}

// programs returns the adopted programs' current statistics (from our own descriptors).
func (a *adopted) programs() map[uint32]progInfo {
	out := map[uint32]progInfo{}
	if a.floor {
		return out
	}
	for id, p := range a.progs {
		st, err := p.Stats()
		if err != nil {
			continue
		}
		out[id] = progInfo{ID: id, Name: progName(id), Type: p.Type().String(), RunTimeNs: uint64(st.Runtime.Nanoseconds()), RunCnt: st.RunCount, Misses: st.RecursionMisses}
	}
	return out
}

var tpGroups = map[string]string{}

// tracepointGroup finds the tracefs group of a tracepoint name (sched_switch → sched).
func tracepointGroup(name string) (string, error) {
	if g, ok := tpGroups[name]; ok {
		return g, nil
	}
	m, _ := filepath.Glob("/sys/kernel/tracing/events/*/" + name + "/id")
	if len(m) != 1 {
		return "", errors.New("tracepoint " + name + ": not exactly one tracefs group")
	}
	g := filepath.Base(filepath.Dir(filepath.Dir(m[0])))
	tpGroups[name] = g
	return g, nil
}

// foreignHooks lists the tracepoint attachments of other processes on the host (other
// engineers' tests and collectors): process name → number of hooks.
func foreignHooks() map[string]int {
	out, err := exec.Command("bpftool", "perf", "show", "-j").Output()
	if err != nil {
		return nil
	}
	var all []hookRef
	if json.Unmarshal(out, &all) != nil {
		return nil
	}
	m := map[string]int{}
	self := os.Getpid()
	for _, h := range all {
		if h.PID != self {
			m[fmt.Sprintf("%s[%d]", processComm(h.PID), h.PID)]++
		}
	}
	return m
}

func processComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
