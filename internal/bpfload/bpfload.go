// Package bpfload loads one kpod BPF family into the kernel and attaches its programs,
// walking the attach ladder tp_btf → raw_tp → classic tracepoint for each hook.
//
// A family loads as a whole or not at all: if any required hook cannot be attached with
// any rung of the ladder, everything already loaded is closed again and the error says what
// each rung answered. Other families are not affected.
package bpfload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Hook is one attach point and the program prefix that serves it. For a tracepoint the spec
// holds up to three variants, tried in this order: <Prog>_b (tp_btf), <Prog>_r (raw_tp),
// <Prog>_t (classic tracepoint in Group). For a kernel function: <Prog>_f (fentry), then
// <Prog>_k (kprobe).
type Hook struct {
	Tracepoint string // e.g. "sched_switch"
	Group      string // tracefs group for the classic variant, e.g. "sched"
	Function   string // kernel function, for fentry/kprobe hooks (instead of Tracepoint)
	// Iter is a BPF iterator target (program <Prog>_i, SEC("iter/<Iter>")), run by the
	// collector when it reads (Object.Iter); IterMap names the map of a map iterator.
	Iter    string
	IterMap string
	// Run: a program that no hook calls; the collector runs it when it reads
	// (BPF_PROG_TEST_RUN, Object.Run). <Prog>_run, SEC("raw_tp") without a tracepoint
	// (Linux 5.10+ runs those); loading it runs it once with a zero argument.
	Run bool
	// Tracepoints, instead of Tracepoint: classic tracepoints of Group that one program
	// (<Prog>_t) serves, such as the per-syscall events syscalls/sys_enter_<name>.
	Tracepoints []string
	// BTFOnly: the tracepoint has a tp_btf program only (it calls helpers that raw_tp and
	// classic tracepoint programs may not, such as bpf_task_storage_get on a task argument,
	// or its family's other programs need BTF anyway).
	BTFOnly bool
	Prog    string // e.g. "kpod_sw"
	// Optional hooks may fail without failing the family; Object.Missing says why.
	Optional bool
}

func (h Hook) target() string {
	switch {
	case h.Function != "":
		return h.Function
	case h.Iter != "":
		return "iter/" + h.Iter
	case h.Run:
		return "BPF_PROG_TEST_RUN"
	case len(h.Tracepoints) > 0:
		return h.Group + "/{" + strings.Join(h.Tracepoints, ",") + "}"
	}
	return h.Tracepoint
}

// rungs are the attach ladder of a hook: program suffix and attach kind.
func (h Hook) rungs() [][2]string {
	if h.Function != "" {
		return [][2]string{{"_f", "fentry"}, {"_k", "kprobe"}}
	}
	if h.Iter != "" {
		return [][2]string{{"_i", "iter"}}
	}
	if h.Run {
		return [][2]string{{"_run", "run"}}
	}
	if h.BTFOnly {
		return [][2]string{{"_b", "tp_btf"}}
	}
	if len(h.Tracepoints) > 0 {
		return [][2]string{{"_t", "tracepoint"}}
	}
	return [][2]string{{"_b", "tp_btf"}, {"_r", "raw_tp"}, {"_t", "tracepoint"}}
}

// What the kernel asks of the loader, for error messages: bpf() itself (maps, BTF), and
// loading and attaching tracing programs (Linux 5.8 split both out of CAP_SYS_ADMIN).
const (
	needsBPF     = "CAP_BPF, or CAP_SYS_ADMIN before Linux 5.8"
	needsTracing = "CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN before Linux 5.8"
)

// lacksCap reports whether this process's effective set has neither capability c nor
// CAP_SYS_ADMIN (which stands for CAP_BPF and CAP_PERFMON, and before Linux 5.8 is the only
// way in).
func lacksCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false // unknown: say nothing
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return !has(c) && !has(unix.CAP_SYS_ADMIN)
}

// Tail is a program that is not attached but reached by bpf_tail_call through the program
// array Map, at Index.
type Tail struct {
	Map   string
	Index uint32
	Prog  string
}

// Spec describes a family's BPF object.
type Spec struct {
	Family string
	Load   func() (*ebpf.CollectionSpec, error) // the bpf2go Load<Name> function
	Hooks  []Hook
	// Tails are loaded into their program arrays before any hook is attached.
	Tails []Tail
	// Prepare may edit the spec before loading (constants, map sizes).
	Prepare func(*ebpf.CollectionSpec) error
}

// Program is an attached program.
type Program struct {
	Name         string // kernel name, e.g. kpod_sw_b
	Hook         string
	Kind         string // tp_btf, raw_tp or tracepoint
	LoadDuration time.Duration
	Prog         *ebpf.Program
	hook         Hook
	link         link.Link
	more         []link.Link // the other tracepoints of a Tracepoints hook
}

// Object is a loaded, attached family.
type Object struct {
	Family   string
	Maps     map[string]*ebpf.Map
	Programs []*Program
	errMap   *ebpf.Map
	errNames []string // field names of the error struct, in order
	// Missing maps the program prefix of each optional hook that could not be attached to
	// the reason (every rung's error).
	Missing map[string]string

	// Prealloc is the bytes of the per-CPU map values the kernel allocated in full at load
	// (kernels before 6.1); 0 where maps grow with their entries.
	Prealloc uint64

	mu      sync.Mutex
	entries map[string]int // last entry count seen per map

	btf *btf.Cache // while Load runs

	linkMu sync.Mutex // the programs' links (Detach, Attach, Close)
}

var (
	memlockOnce sync.Once
	memlockErr  error

	btfMu    sync.Mutex
	btfCache *btf.Cache // nil until a Load needs it and after ReleaseKernelBTF
)

// kernelBTF returns the decoded kernel BTF that loads share (decoding it takes longer than
// verifying most programs), decoding it again after a release.
func kernelBTF() *btf.Cache {
	btfMu.Lock()
	defer btfMu.Unlock()
	if btfCache == nil {
		btfCache = btf.NewCache()
	}
	return btfCache
}

// KernelSpec is the kernel's BTF from the same cache, for reading kernel types (enums).
func KernelSpec() (*btf.Spec, error) {
	return kernelBTF().Kernel()
}

// ReleaseKernelBTF lets the kernel BTF that loads share go once a process has loaded its
// families: /sys/kernel/btf/vmlinux mapped whole and the index built on it, several MiB of
// resident memory that nothing needs between loads. A later Load decodes it again; loads
// running meanwhile keep the copy they started with.
func ReleaseKernelBTF() {
	btfMu.Lock()
	btfCache = nil
	btfMu.Unlock()
}

// mapTypeSince is the first Linux release with each map type a family may need that older
// kernels still in use lack.
var mapTypeSince = map[ebpf.MapType]string{ebpf.TaskStorage: "5.11", ebpf.RingBuf: "5.8"}

// missingMapType names a map type of spec that this kernel does not have, with the release
// that brought it, or "" if it has them all: the reason a family's maps cannot be made there.
func missingMapType(spec *ebpf.CollectionSpec) string {
	names := make([]string, 0, len(spec.Maps))
	for name := range spec.Maps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := spec.Maps[name].Type
		since, ok := mapTypeSince[t]
		if ok && errors.Is(features.HaveMapType(t), ebpf.ErrNotSupported) {
			return fmt.Sprintf("map %s: this kernel has no %s maps (Linux %s+)", name, t, since)
		}
	}
	return ""
}

// Load loads and attaches a family. On error nothing stays loaded.
func Load(s Spec) (obj *Object, err error) {
	spec, err := s.Load()
	if err != nil {
		return nil, fmt.Errorf("%s: reading BPF object: %w", s.Family, err)
	}
	if s.Prepare != nil {
		if err := s.Prepare(spec); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Family, err)
		}
	}
	memlockOnce.Do(func() {
		// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones to the
		// cgroup, where this is a no-op.
		memlockErr = rlimit.RemoveMemlock()
	})
	hooks := brokenHooks(s.Family, spec, s.Hooks)
	obj = &Object{Family: s.Family, Maps: map[string]*ebpf.Map{}, btf: kernelBTF()}
	loading := obj
	defer func() { loading.btf = nil }() // the object must not keep it alive after a release
	prealloc := mustPreallocate()
	if prealloc {
		obj.Prealloc = preallocate(spec, PreallocCgroups())
	}
	shrinkMaps(s.Family, spec)

	defer func() {
		if err != nil {
			obj.Close()
			obj = nil
		}
	}()

	// Maps first, shared by every program variant that is tried.
	mapsOnly := &ebpf.CollectionSpec{Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types, ByteOrder: spec.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{Cache: obj.btf})
	if err != nil {
		missing := missingMapType(spec)
		switch {
		case errors.Is(err, unix.EPERM) || lacksCap(unix.CAP_BPF):
			// Without the capability cilium/ebpf's feature probes fail too, and some
			// errors then say "not supported" instead of EPERM.
			err = fmt.Errorf("%w (needs %s)", err, needsBPF)
		case missing != "":
			err = fmt.Errorf("%w (%s)", err, missing)
		case memlockErr != nil && !kernelAtLeast(5, 11):
			err = fmt.Errorf("%w (raising RLIMIT_MEMLOCK failed: %v; kernels before 5.11 need CAP_SYS_RESOURCE)", err, memlockErr)
		case prealloc && errors.Is(err, unix.ENOMEM):
			err = fmt.Errorf("%w (this kernel allocates the per-CPU maps in full, %d bytes for this family: lower bpf_prealloc_cgroups or raise kpod's memory limit)", err, obj.Prealloc)
		}
		return obj, fmt.Errorf("%s: creating maps: %w", s.Family, err)
	}
	for name, m := range coll.Maps {
		obj.Maps[name] = m
	}
	if err := obj.findErrorMap(spec); err != nil {
		return obj, fmt.Errorf("%s: %w", s.Family, err)
	}

	for _, tl := range s.Tails {
		p, err := obj.loadTail(spec, tl)
		if err != nil {
			if errors.Is(err, unix.EPERM) || lacksCap(unix.CAP_BPF) || lacksCap(unix.CAP_PERFMON) {
				return obj, fmt.Errorf("%s: tail program %s: %w (needs %s)", s.Family, tl.Prog, err, needsTracing)
			}
			return obj, fmt.Errorf("%s: tail program %s: %w", s.Family, tl.Prog, err)
		}
		obj.Programs = append(obj.Programs, p)
	}

	obj.Missing = map[string]string{}
	for _, h := range hooks {
		p, err := obj.attachHook(spec, h)
		switch {
		case err != nil && h.Optional:
			obj.Missing[h.Prog] = err.Error()
		case err != nil:
			return obj, fmt.Errorf("%s: %w", s.Family, err)
		default:
			obj.Programs = append(obj.Programs, p)
		}
	}
	return obj, nil
}

// attachHook tries the variants of one hook in ladder order.
func (o *Object) attachHook(spec *ebpf.CollectionSpec, h Hook) (*Program, error) {
	var tries []string
	perm, tracefs := false, false
	for _, v := range allowedRungs(h.rungs()) {
		name, kind := h.Prog+v[0], v[1]
		ps, ok := spec.Programs[name]
		if !ok {
			continue
		}
		p, err := o.loadAndAttach(spec, name, ps, h, kind)
		if err == nil {
			return p, nil
		}
		tries = append(tries, fmt.Sprintf("%s: %v", kind, err))
		perm = perm || errors.Is(err, unix.EPERM)
		// tracefs (a classic tracepoint's event id) is readable by root only.
		tracefs = tracefs || errors.Is(err, unix.EACCES)
	}
	perm = perm || lacksCap(unix.CAP_BPF) || lacksCap(unix.CAP_PERFMON)
	if len(tries) == 0 {
		return nil, fmt.Errorf("no program for hook %s in the object (rungs tried: %v)", h.target(), allowedRungs(h.rungs()))
	}
	switch {
	case perm:
		return nil, fmt.Errorf("cannot attach to %s (%s) (needs %s)", h.target(), strings.Join(tries, "; "), needsTracing)
	case tracefs:
		return nil, fmt.Errorf("cannot attach to %s (%s) (needs CAP_DAC_READ_SEARCH to read tracefs as a user other than root)", h.target(), strings.Join(tries, "; "))
	}
	return nil, fmt.Errorf("cannot attach to %s (%s)", h.target(), strings.Join(tries, "; "))
}

func (o *Object) loadAndAttach(spec *ebpf.CollectionSpec, name string, ps *ebpf.ProgramSpec, h Hook, kind string) (*Program, error) {
	start := time.Now()
	one := &ebpf.CollectionSpec{
		Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types, ByteOrder: spec.ByteOrder,
		Programs: map[string]*ebpf.ProgramSpec{name: ps},
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: o.Maps, Cache: o.btf})
	if err != nil {
		return nil, err
	}
	prog := coll.DetachProgram(name)
	coll.Close() // the clones of the replaced maps; ours stay open
	l, more, err := attachHookLinks(kind, h, prog, o.Maps)
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &Program{Name: name, Hook: h.target(), Kind: kind, LoadDuration: time.Since(start), Prog: prog, hook: h, link: l, more: more}, nil
}

// attachHookLinks attaches prog to every tracepoint of h, or to its one hook; on error none.
func attachHookLinks(kind string, h Hook, prog *ebpf.Program, maps map[string]*ebpf.Map) (l link.Link, more []link.Link, err error) {
	if len(h.Tracepoints) == 0 {
		l, err = attachOne(kind, h, prog, maps)
		return l, nil, err
	}
	for i, tp := range h.Tracepoints {
		x, err := link.Tracepoint(h.Group, tp, prog, nil)
		if err != nil {
			for _, y := range append(more, l) {
				if y != nil {
					y.Close()
				}
			}
			return nil, nil, fmt.Errorf("%s/%s: %w", h.Group, tp, err)
		}
		if i == 0 {
			l = x
		} else {
			more = append(more, x)
		}
	}
	return l, more, nil
}

// Detach takes the program of hook prefix prog off its hooks and keeps it loaded; Attach
// puts it back on them, with the rung it was loaded for. A family uses them for programs
// that run only at times (the syscall family's latency windows).
func (o *Object) Detach(prog string) error {
	o.linkMu.Lock()
	defer o.linkMu.Unlock()
	p, err := o.hookProgram(prog)
	if err != nil || p.link == nil {
		return err
	}
	err = CloseLinks(append(p.more, p.link))
	p.link, p.more = nil, nil
	return err
}

// CloseLinks closes links concurrently: closing a perf-event tracepoint link waits for an RCU
// grace period after the event stops calling the program (tens of ms here), so one after the
// other the last of a per-call hook's events would keep running its program that much longer
// each.
func CloseLinks(links []link.Link) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Attach: see Detach. Attaching an attached program does nothing.
func (o *Object) Attach(prog string) error {
	o.linkMu.Lock()
	defer o.linkMu.Unlock()
	p, err := o.hookProgram(prog)
	if err != nil || p.link != nil {
		return err
	}
	p.link, p.more, err = attachHookLinks(p.Kind, p.hook, p.Prog, o.Maps)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

func (o *Object) hookProgram(prog string) (*Program, error) {
	for _, p := range o.Programs {
		if p.hook.Prog == prog {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%s: no program for hook %s", o.Family, prog)
}

func attachOne(kind string, h Hook, prog *ebpf.Program, maps map[string]*ebpf.Map) (l link.Link, err error) {
	switch kind {
	case "tp_btf":
		l, err = link.AttachTracing(link.TracingOptions{Program: prog})
	case "raw_tp":
		l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.Tracepoint, Program: prog})
	case "tracepoint":
		l, err = link.Tracepoint(h.Group, h.Tracepoint, prog, nil)
	case "fentry":
		l, err = link.AttachTracing(link.TracingOptions{Program: prog})
	case "kprobe":
		l, err = link.Kprobe(h.Function, prog, nil)
	case "iter":
		l, err = link.AttachIter(link.IterOptions{Program: prog, Map: maps[h.IterMap]})
	case "run":
		_, err = runProgram(prog, 0)
	}
	return l, err
}

// runProgram runs a raw_tp program once with args as its arguments.
func runProgram(prog *ebpf.Program, args ...uint64) (uint32, error) {
	return prog.Run(&ebpf.RunOptions{Context: args})
}

// Run runs the program of the Run hook whose program prefix is prog once, with args as its
// arguments (ctx[0], ...), and returns what it returned.
func (o *Object) Run(prog string, args ...uint64) (uint32, error) {
	p, err := o.hookProgram(prog)
	if err != nil {
		return 0, err
	}
	ret, err := runProgram(p.Prog, args...)
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", p.Name, err)
	}
	return ret, nil
}

// RunWalk runs the Run hook prog (a walk of the entries of metMap, which returns how many it
// met) under generation gen, and reads outMap, where it wrote its sums: each entry of this
// generation (gen of the value) is passed to each, the others (an earlier walk's, of keys the
// walk met nothing for this time) are deleted. The sizes of both maps are noted for MapStats.
func RunWalk[K, V any](o *Object, prog string, gen uint64, metMap, outMap string, genOf func(*V) uint64, each func(*K, *V)) error {
	met, err := o.Run(prog, gen)
	if err != nil {
		return err
	}
	o.NoteEntries(metMap, int(met))
	m, ok := o.Maps[outMap]
	if !ok {
		return fmt.Errorf("%s: no map %s in the object", o.Family, outMap)
	}
	var stale []K
	var k K
	var v V
	n := 0
	it := m.Iterate()
	for it.Next(&k, &v) {
		if genOf(&v) != gen {
			stale = append(stale, k)
			continue
		}
		each(&k, &v)
		n++
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", outMap, err)
	}
	o.NoteEntries(outMap, n)
	return DeleteKeys(m, stale)
}

// Has reports whether the hook whose program prefix is prog is loaded.
func (o *Object) Has(prog string) bool {
	_, err := o.hookProgram(prog)
	return err == nil
}

// loadTail loads one tail-called program and puts it into its program array.
func (o *Object) loadTail(spec *ebpf.CollectionSpec, tl Tail) (*Program, error) {
	start := time.Now()
	ps, ok := spec.Programs[tl.Prog]
	if !ok {
		return nil, errors.New("not in the object")
	}
	m, ok := o.Maps[tl.Map]
	if !ok {
		return nil, fmt.Errorf("no program array %s", tl.Map)
	}
	one := &ebpf.CollectionSpec{
		Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types, ByteOrder: spec.ByteOrder,
		Programs: map[string]*ebpf.ProgramSpec{tl.Prog: ps},
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: o.Maps, Cache: o.btf})
	if err != nil {
		return nil, err
	}
	prog := coll.DetachProgram(tl.Prog)
	coll.Close()
	if err := m.Put(tl.Index, prog); err != nil {
		prog.Close()
		return nil, fmt.Errorf("into %s[%d]: %w", tl.Map, tl.Index, err)
	}
	return &Program{Name: tl.Prog, Hook: fmt.Sprintf("%s[%d]", tl.Map, tl.Index), Kind: "tail", LoadDuration: time.Since(start), Prog: prog}, nil
}

// Iter returns the iterator link of the hook whose program prefix is prog: its Open runs
// the iterator program over its target once.
func (o *Object) Iter(prog string) (*link.Iter, bool) {
	for _, p := range o.Programs {
		if p.Kind == "iter" && p.Name == prog+"_i" {
			it, ok := p.link.(*link.Iter)
			return it, ok
		}
	}
	return nil, false
}

// RunIter runs the iterator program prog of o in this thread's namespaces and returns its
// records (IterRecords); what names the error.
func RunIter[T any](o *Object, prog, what string) ([]T, error) {
	it, ok := o.Iter(prog)
	if !ok {
		return nil, fmt.Errorf("%s is not attached", what)
	}
	rd, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("running %s: %w", what, err)
	}
	recs, err := IterRecords[T](rd)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return recs, nil
}

// IterRecords reads an opened iterator's output to its end and closes it: whole records of
// type T, as its program writes them with bpf_seq_write.
func IterRecords[T any](rd io.ReadCloser) ([]T, error) {
	defer rd.Close()
	raw, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	var zero T
	size := binary.Size(zero)
	if size <= 0 || len(raw)%size != 0 {
		return nil, fmt.Errorf("wrote %d bytes, not whole %d-byte records", len(raw), size)
	}
	recs := make([]T, len(raw)/size)
	return recs, binary.Read(bytes.NewReader(raw), binary.NativeEndian, recs)
}

// Close detaches every program and closes every map. It is safe on a partly loaded object.
func (o *Object) Close() error {
	if o == nil {
		return nil
	}
	o.linkMu.Lock()
	defer o.linkMu.Unlock()
	var errs []error
	for _, p := range o.Programs {
		for _, l := range p.more {
			errs = append(errs, l.Close())
		}
		if p.link != nil {
			errs = append(errs, p.link.Close())
		}
		errs = append(errs, p.Prog.Close())
	}
	o.Programs = nil
	for name, m := range o.Maps {
		errs = append(errs, m.Close())
		delete(o.Maps, name)
	}
	return errors.Join(errs...)
}

// findErrorMap locates the family's kpod_<tag>_err map and the names of its counters.
func (o *Object) findErrorMap(spec *ebpf.CollectionSpec) error {
	for name, ms := range spec.Maps {
		if !strings.HasPrefix(name, "kpod_") || !strings.HasSuffix(name, "_err") {
			continue
		}
		st, ok := btf.UnderlyingType(ms.Value).(*btf.Struct)
		if !ok {
			return fmt.Errorf("error map %s: value is not a struct", name)
		}
		for _, m := range st.Members {
			if m.Offset.Bytes() != uint32(8*len(o.errNames)) {
				return fmt.Errorf("error map %s: field %s is not a packed u64", name, m.Name)
			}
			o.errNames = append(o.errNames, m.Name)
		}
		o.errMap = o.Maps[name]
	}
	return nil
}

// UpdateErrors returns, per map name, how many updates the kernel side could not make (the
// map was full): each is a lost event. Maps the family did not make (a store the kernel
// lacks) have none.
func (o *Object) UpdateErrors() (map[string]uint64, error) {
	out := map[string]uint64{}
	if o.errMap == nil {
		return out, nil
	}
	buf := make([]byte, o.errMap.ValueSize())
	if err := o.errMap.Lookup(uint32(0), &buf); err != nil {
		return nil, fmt.Errorf("%s: reading error counters: %w", o.Family, err)
	}
	for i, name := range o.errNames {
		if _, made := o.Maps[name]; made {
			out[name] = binary.NativeEndian.Uint64(buf[8*i:])
		}
	}
	return out, nil
}

// MapStat describes one of a family's maps for kpod.bpf.map.* metrics.
type MapStat struct {
	Name     string
	Capacity uint32
	Entries  int // -1 when not known (maps kpod does not read in full)
}

// NoteEntries records how many entries a collector found when it read a map.
func (o *Object) NoteEntries(mapName string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.entries == nil {
		o.entries = map[string]int{}
	}
	o.entries[mapName] = n
}

// Entries is how many entries NoteEntries last noted for mapName (0 before the first).
func (o *Object) Entries(mapName string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.entries[mapName]
}

// MapStats lists the family's data maps: hash maps keyed by cgroup (task storage has no
// capacity, the error map and arrays are always full).
func (o *Object) MapStats() []MapStat {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []MapStat
	for name, m := range o.Maps {
		switch m.Type() {
		case ebpf.Hash, ebpf.PerCPUHash, ebpf.LRUHash, ebpf.LRUCPUHash:
		default:
			continue
		}
		n, ok := o.entries[name]
		if !ok {
			n = -1
		}
		out = append(out, MapStat{Name: name, Capacity: m.MaxEntries(), Entries: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// MaxCgroups is how many cgroups a per-cgroup data map holds (KPOD_MAX_CGROUPS in
// bpf/include/kpod.h); the other data maps are sized as multiples of it.
const MaxCgroups = 10240

// DefaultPreallocCgroups is what the per-CPU data maps are sized for where the kernel
// allocates them in full (mustPreallocate): a tenth of the memory, above the container
// cgroups of a node at the kubelet's largest usual pod density (250 pods).
const DefaultPreallocCgroups = 1024

var preallocCgroups atomic.Int64

// SetPreallocCgroups sets how many cgroups the per-CPU data maps are sized for on kernels
// that allocate them in full at load (before 6.1): each such map gets n/MaxCgroups of its
// entries. n <= 0 restores DefaultPreallocCgroups. Families loaded afterwards use it.
func SetPreallocCgroups(n int) {
	preallocCgroups.Store(int64(n))
}

// PreallocCgroups is the value in effect (SetPreallocCgroups).
func PreallocCgroups() int {
	if n := preallocCgroups.Load(); n > 0 {
		return int(min(n, MaxCgroups))
	}
	return DefaultPreallocCgroups
}

// mustPreallocate: before Linux 6.1 tracing programs may only use preallocated hash maps
// (the kernel warns, or refuses on PREEMPT_RT, about run-time allocation from a tracepoint).
func mustPreallocate() bool {
	brokenMu.Lock()
	forced := forcePrealloc
	brokenMu.Unlock()
	return forced || !kernelAtLeast(6, 1)
}

// preallocate clears BPF_F_NO_PREALLOC on hash maps and scales the per-CPU ones to cgroups
// of MaxCgroups, returning the bytes their values take on this node's possible CPUs. Data
// maps are otherwise allocated on demand, so that their memory follows the cgroups really
// seen rather than max_entries × CPUs: in full, the comprehensive profile's per-CPU maps are
// 60 MiB per possible CPU (3.8 GiB on a 64-CPU node), charged to kpod's memory cgroup.
func preallocate(spec *ebpf.CollectionSpec, cgroups int) uint64 {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		ncpu = 1
	}
	var bytes uint64
	for _, ms := range spec.Maps {
		switch ms.Type {
		case ebpf.Hash, ebpf.PerCPUHash:
			ms.Flags &^= unix.BPF_F_NO_PREALLOC
		}
		if ms.Type == ebpf.PerCPUHash {
			ms.MaxEntries = max(1, uint32((uint64(ms.MaxEntries)*uint64(cgroups)+MaxCgroups-1)/MaxCgroups))
			bytes += uint64(ms.MaxEntries) * uint64((ms.ValueSize+7)&^7) * uint64(ncpu)
		}
	}
	return bytes
}

// kernelAtLeast reports whether the running kernel is at least major.minor.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return true
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}
