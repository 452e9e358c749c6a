package cachestat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
)

func TestStatsAdd(t *testing.T) {
	s := Stats{Added: 1, Dirtied: 2, BuffersDirtied: 3, Accessed: 4}
	s.Add(&Stats{Added: 10, Dirtied: 20, BuffersDirtied: 30, Accessed: 40})
	if s != (Stats{Added: 11, Dirtied: 22, BuffersDirtied: 33, Accessed: 44}) {
		t.Errorf("Add: %+v", s)
	}
}

// TestObjectShape checks the committed object without loading it; the accesses hook must
// be optional: the family has to load where no kernel function can be hooked.
func TestObjectShape(t *testing.T) {
	spec, err := LoadCachestat()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Path{PathFolio, PathPage} {
		bpftest.CheckShape(t, spec, PathSpec(p).Hooks)
		for _, h := range PathSpec(p).Hooks {
			if h.Function != "" && !h.Optional {
				t.Errorf("hook %s must be optional", h.Function)
			}
		}
	}
}

func TestAccessesUnavailableNil(t *testing.T) {
	var c *Collector
	if c.AccessesUnavailable() == "" {
		t.Errorf("a collector that never started reports accesses as available")
	}
}

// TestRealCachestat: a pod writes P pages through the page cache to a new file on a fresh
// ext4 filesystem; kpod charges the pod P pages added and P pages dirtied (plus the few
// metadata blocks the writer itself reads or dirties), one dirtied buffer per 4 KiB block,
// and nothing to an idle sibling.
//
// Accesses (folio_mark_accessed, a kernel function with no tracepoint) are counted where the
// kernel allows fentry or kprobes: then on each of the two rungs, exactly as many as the
// kernel's own kprobe trace of the function records for the writer. Where it allows neither,
// the family runs without them and says why.
func TestRealCachestat(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { realCachestat(t, rung, "") })
	}
	if !bpftest.HasKprobes(t) {
		return
	}
	for _, fn := range []string{"fentry", "kprobe"} {
		t.Run("tp_btf-"+fn, func(t *testing.T) { realCachestat(t, "tp_btf", fn) })
	}
}

// realCachestat runs the family with its tracepoints on rung and, if fn is set, its kernel
// function hook on fn.
func realCachestat(t *testing.T, rung, fn string) {
	fakepod.RequireRoot(t)
	const pages = 2000
	// A fresh ext4 with 4 KiB blocks (one buffer per page) and no lazy init (no background
	// writer): fakepod.NewExt4.
	disk := fakepod.NewExt4(t, 64, fakepod.Ext4Options{})
	mnt := disk.Dir

	if fn == "" {
		bpftest.On(t, rung)
	} else {
		t.Cleanup(bpfload.ForceRungForTest(rung, fn))
	}
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bpftest.CheckRung(t, c.Obj, rung)
	// Before 5.17 the events pass pages, not folios (tracefs has writeback_dirty_page).
	want := PathFolio
	if !bpftest.HasTracepoint(t, "writeback", "writeback_dirty_folio") {
		want = PathPage
	}
	if c.Path != want || !bpftest.HasTracepoint(t, "writeback", dirtyEvent[want]) {
		t.Fatalf("path %s, want %s (and its tracepoint in tracefs)", c.Path, want)
	}
	for _, p := range c.Obj.Programs {
		t.Logf("attached %s (%s) to %s in %v", p.Name, p.Kind, p.Hook, p.LoadDuration)
	}
	stats := bpftest.EnableStats(t)
	defer stats(c.Obj)
	why := c.AccessesUnavailable()
	t.Logf("accesses unavailable: %q", why)

	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	ctr, idleCtr := pod.AddContainer(), idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()
	var accesses *fakepod.Trace
	if fn != "" {
		// The kernel's own record of folio_mark_accessed (mark_page_accessed) calls by the
		// writer, from the moment it is in the pod.
		ctr.AtGate = func(pid int) {
			accesses = fakepod.NewKprobeTrace(t, c.AccessFunction(), fmt.Sprintf("common_pid == %d", pid))
		}
	}
	ctr.Run("bwrite", filepath.Join(mnt, "data"), strconv.Itoa(pages))
	ctr.AtGate = nil

	st, err := c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{ctr.CgroupID: true, idleCtr.CgroupID: true}})
	if err != nil {
		t.Fatal(err)
	}
	s := st[ctr.CgroupID]
	t.Logf("writer: %+v for %d pages written", s, pages)
	// Each write(2) of 4 KiB creates an order-0 folio (the write path sizes a new folio by the
	// write's length), so data pages are exactly P. On top of them the writer reads a few
	// ext4 metadata blocks into the block device's page cache in its own context, the first
	// time it touches them: the root directory block (lookup, then the new entry) and the
	// inode bitmap (inode allocation). There is one block group on this 64 MiB filesystem;
	// the superblock, group descriptors and the inode table block holding the new inode
	// (shared with the root inode) were read at mount. Measured: P+2. Bound: P..P+8.
	if s.Added < pages || s.Added > pages+8 {
		t.Errorf("writer: %d pages added, want %d..%d (data + first-touch ext4 metadata)", s.Added, pages, pages+8)
	}
	// Every data page goes from clean to dirty once (full-page writes, never rewritten), and
	// each 4 KiB block's buffer is marked dirty once by block_write_end. The metadata the
	// writer changes (bitmap, inode, directory) is journaled: jbd2 records it without marking
	// the buffers or their folios dirty; the journal and checkpoint threads do that later, in
	// their own (root) cgroup. So both are exact.
	if s.Dirtied != pages {
		t.Errorf("writer: %d pages dirtied, want %d", s.Dirtied, pages)
	}
	if s.BuffersDirtied != pages {
		t.Errorf("writer: %d buffers dirtied, want %d (one 4 KiB block per page)", s.BuffersDirtied, pages)
	}
	switch {
	case fn != "":
		if !s.HasAccessed {
			t.Fatalf("writer: accesses not counted on %s: %s", fn, why)
		}
		kernel := uint64(len(accesses.Lines()))
		if s.Accessed != kernel || kernel == 0 {
			t.Errorf("writer: %d accesses, the kernel traced %d %s calls", s.Accessed, kernel, c.AccessFunction())
		}
		t.Logf("writer: %d accesses on %s; the kernel's kprobe trace: %d %s calls", s.Accessed, fn, kernel, c.AccessFunction())
	case s.HasAccessed:
		t.Logf("writer: %d accesses (hook attached as %s)", s.Accessed, accessKind(c))
	case s.Accessed != 0:
		t.Errorf("writer: %d accesses although the accesses hook is not attached", s.Accessed)
	}
	if is, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: page cache activity reported: %+v", is)
	}

	// A second file in the same directory: its metadata blocks are cached now, so the
	// additions are exactly the data pages.
	const pages2 = 500
	second := pod.AddContainer()
	second.Run("bwrite", filepath.Join(mnt, "data2"), strconv.Itoa(pages2))
	st, err = c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{ctr.CgroupID: true, second.CgroupID: true, idleCtr.CgroupID: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st[second.CgroupID], (Stats{Added: pages2, Dirtied: pages2, BuffersDirtied: pages2}); got.Added != want.Added ||
		got.Dirtied != want.Dirtied || got.BuffersDirtied != want.BuffersDirtied {
		t.Errorf("second writer: %+v, want %+v", got, want)
	}
	t.Logf("second writer: %+v for %d pages written", st[second.CgroupID], pages2)

	readBack(t, c, pod, filepath.Join(mnt, "data"), pages, disk.Dev)

	// Accesses: available exactly when one rung of the ladder attached, and then where the
	// kernel has kprobes or fentry; otherwise the reason names what both rungs answered.
	kind := accessKind(c)
	switch {
	case kind != "" && why != "":
		t.Errorf("accesses hook attached, yet unavailable: %s", why)
	case fn != "" && kind != fn:
		t.Errorf("accesses hook attached as %q, want %s", kind, fn)
	case kind == "" && bpftest.HasKprobes(t):
		t.Errorf("accesses unavailable on a kernel with kprobes: %s", why)
	case kind == "" && (!strings.Contains(why, "fentry:") || !strings.Contains(why, "kprobe:")):
		t.Errorf("accesses unavailable, but the reason does not name both rungs: %q", why)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// readBack evicts the file from the page cache and reads it back in a new container of the
// pod with dd (kpod-workload has no buffered-read mode; dd is started straight into the
// container's cgroup v2 directory with CLONE_INTO_CGROUP, which is all BPF attribution
// needs). Readahead fills the page cache with large folios, so kpod must count 1 << order
// pages per folio: the reader is charged exactly the file's pages. The kernel's own record
// of the same tracepoint (a private tracefs instance) says how many folios of which order
// were added, and must sum to the same number of pages.
func readBack(t *testing.T, c *Collector, pod *fakepod.Pod, path string, pages int, loop *fakepod.LoopDevice) {
	t.Helper()
	if _, err := exec.LookPath("dd"); err != nil {
		fakepod.Unmet(t, "dd not found")
	}
	// dd, its libraries and locale files are in the page cache after one run outside.
	run(t, "dd", "if=/dev/zero", "of=/dev/null", "count=1", "status=none")
	evict(t, path, pages)

	// Every page cache addition on the node while dd runs; dd's are picked by its pid below.
	// Its own pages on other devices count too: a busy host may have evicted one of its
	// libraries or locale files since the run above.
	tr := fakepod.NewTrace(t, "filemap/mm_filemap_add_to_page_cache", "")
	reader := pod.AddContainer()
	dir, err := os.Open(reader.V2Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := exec.Command("dd", "if="+path, "of=/dev/null", "bs=1M", "status=none")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dd in the reader container: %v %s", err, out)
	}
	lines := tr.Lines()
	var fst unix.Stat_t
	if err := unix.Stat(path, &fst); err != nil {
		t.Fatal(err)
	}
	// The file's own pages: its device and inode (ext4 may read a metadata block of the same
	// device for the reader: 1 on 5.10).
	folios, tracedPages := foliosOf(lines, cmd.Process.Pid, fmt.Sprintf(" dev %d:%d ino %x ", loop.Major, loop.Minor, fst.Ino))
	_, allPages := foliosOf(lines, cmd.Process.Pid, "")

	st, err := c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{reader.CgroupID: true}})
	if err != nil {
		t.Fatal(err)
	}
	got := st[reader.CgroupID]
	t.Logf("reader: %+v; the kernel traced %d folios holding %d pages of the file for it (by order: %v), %d pages in all", got, sumValues(folios), tracedPages, folios, allPages)
	if got.Added != uint64(allPages) {
		t.Errorf("reader: %d pages added, the kernel traced %d for dd", got.Added, allPages)
	}
	// The whole file, and a few more: dd's own evicted pages; on 5.10 one page of the file
	// itself twice (2001 of 2000 in every run there).
	if tracedPages < pages || allPages > pages+8 {
		t.Errorf("the kernel's trace shows %d pages of the file and %d in all added by the reader, want at least %d and at most %d in all (the whole file and a few of dd's own evicted pages)", tracedPages, allPages, pages, pages+8)
	}
	if got.Dirtied != 0 || got.BuffersDirtied != 0 {
		t.Errorf("reader: dirtied %d pages and %d buffers, want none", got.Dirtied, got.BuffersDirtied)
	}
	if len(folios) == 1 && folios[0] > 0 {
		t.Logf("readahead used only order-0 folios here; large folio counting was not exercised")
	}
}

// evict writes the file back and drops it from the page cache, and checks with mincore(2)
// that none of its pages is resident.
func evict(t *testing.T, path string, pages int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	for try := 0; ; try++ {
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		n := resident(t, f, pages)
		if n == 0 {
			return
		}
		if try == 10 {
			t.Fatalf("%d pages of %s stay in the page cache", n, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func resident(t *testing.T, f *os.File, pages int) int {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), 0, pages*4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, pages)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

var (
	pidRE   = regexp.MustCompile(`-(\d+)\s+\[`)
	orderRE = regexp.MustCompile(`\bord(?:er)?=(\d+)`)
)

// foliosOf parses the recorded events of task pid for one file (of, " dev <major:minor> ino
// <hex> " as the record has it; "" for any):
// folios per order, and pages in total. A record without an order (kernels before folios,
// which add single pages) is one page.
func foliosOf(lines []string, pid int, of string) (map[int]int, int) {
	byOrder, pages := map[int]int{}, 0
	for _, line := range lines {
		m := pidRE.FindStringSubmatch(line)
		if m == nil || m[1] != strconv.Itoa(pid) || !strings.Contains(line, of) {
			continue
		}
		o := 0
		if om := orderRE.FindStringSubmatch(line); om != nil {
			o, _ = strconv.Atoi(om[1])
		}
		byOrder[o]++
		pages += 1 << o
	}
	return byOrder, pages
}

func sumValues(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// accessKind is how the accesses hook attached ("fentry", "kprobe"), or "".
func accessKind(c *Collector) string {
	for _, p := range c.Obj.Programs {
		if p.Hook == c.AccessFunction() {
			return p.Kind
		}
	}
	return ""
}
