package collector_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// pidfds counts this process's open pidfds.
func pidfds(t *testing.T) int {
	t.Helper()
	return fakepod.OpenFiles(t, 0, func(target string) bool { return target == "anon_inode:[pidfd]" })
}

// TestRealNSProcs: NSProcs finds a pod's process and its network namespace, keeps answering
// with that process while it runs (holding one pidfd for it), moves to the pod's other
// process once it exits, and closes the pidfd of a pod no longer asked for. (os/exec holds a
// pidfd per started process too, until it is waited for: counted in base.)
func TestRealNSProcs(t *testing.T) {
	fakepod.RequireRoot(t)
	l := fakepod.HostLayout(t)
	pod := fakepod.New(t, fakepod.Options{NetNS: true})
	c := pod.AddContainer()
	procs := map[int]*fakepod.Proc{}
	for range 2 {
		p := c.Start("sleep")
		procs[p.PID()] = p
	}
	wantNS, err := cgroupfs.Inode(pod.NetNS.Path)
	if err != nil {
		t.Fatal(err)
	}
	base := pidfds(t)
	n := &collector.NSProcs{ProcRoot: "/proc", V2Root: l.V2, Kind: "net"}
	defer n.Close()
	find := func(step string, held int) int {
		t.Helper()
		pid, ns, ok := n.Find(pod.CgroupID, []string{c.Rel})
		if !ok || procs[pid] == nil || ns != wantNS {
			t.Fatalf("%s: Find = pid %d, namespace %d, %v; want one of the pod's processes %v in its namespace %d", step, pid, ns, ok, procs, wantNS)
		}
		if got := pidfds(t) - base; got != held {
			t.Fatalf("%s: %d pidfds held, want %d", step, got, held)
		}
		return pid
	}
	first := find("first", 1)
	if again := find("again", 1); again != first {
		t.Fatalf("the second Find answered %d, the first %d: both run", again, first)
	}
	if err := procs[first].Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = procs[first].Wait() // os/exec's pidfd of it is closed: base-1
	delete(procs, first)
	base--
	find("the first exited", 1)

	n.Prune() // asked for since the last Prune: kept
	if got := pidfds(t) - base; got != 1 {
		t.Fatalf("after a Prune of a pod asked for: %d pidfds, want 1", got)
	}
	n.Prune() // not asked for: forgotten
	if got := pidfds(t) - base; got != 0 {
		t.Fatalf("after a Prune of a pod no longer asked for: %d pidfds, want 0", got)
	}
	find("asked again", 1)
	n.Close()
	if got := pidfds(t) - base; got != 0 {
		t.Fatalf("after Close: %d pidfds, want 0", got)
	}
}

// TestRealNSProcsReadFile: ReadFile reads a pod process's /proc file through one descriptor
// kept while the process runs, gets all of a file longer than the page at which a procfs
// table's read stops (a namespace with 80 interfaces: net/dev of about 10 KiB, one line per
// interface), sees changes between reads, and lets go of the descriptor (and with it the
// namespace) when the process exits or the pod is pruned.
func TestRealNSProcsReadFile(t *testing.T) {
	fakepod.RequireRoot(t)
	l := fakepod.HostLayout(t)
	pod := fakepod.New(t, fakepod.Options{NetNS: true})
	const ifaces = 80
	for i := 0; i < ifaces; i += 2 { // veth pairs with both ends in the namespace
		pod.NetNS.Exec("ip", "link", "add", fmt.Sprintf("kpd%d", i), "type", "veth", "peer", "name", fmt.Sprintf("kpd%d", i+1))
	}
	c := pod.AddContainer()
	a, b := c.Start("sleep"), c.Start("sleep")
	a.WaitReady()
	b.WaitReady()
	held := func(pid int) int { // procfs net entries are never cached: their links say "(deleted)"
		return fakepod.OpenFiles(t, 0, func(target string) bool { return strings.HasPrefix(target, fmt.Sprintf("/proc/%d/net/dev", pid)) })
	}
	n := &collector.NSProcs{ProcRoot: "/proc", V2Root: l.V2, Kind: "net"}
	defer n.Close()
	read := func(step string) (pid int, data string) {
		t.Helper()
		pid, _, ok := n.Find(pod.CgroupID, []string{c.Rel})
		if !ok {
			t.Fatalf("%s: no process found", step)
		}
		got, path, err := n.ReadFile(pod.CgroupID, "net/dev")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if p := fmt.Sprintf("/proc/%d/net/dev", pid); path != p {
			t.Fatalf("%s: ReadFile read %s, want %s", step, path, p)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("%s: ReadFile gave %d bytes, os.ReadFile %d:\n%s", step, len(got), len(want), got)
		}
		if got := held(pid); got != 1 {
			t.Fatalf("%s: %d descriptors of /proc/%d/net/dev held, want 1", step, got, pid)
		}
		return pid, string(got)
	}
	first, text := read("first")
	if len(text) <= 4096 || strings.Count(text, ": ") != ifaces+1 {
		t.Fatalf("net/dev of %d bytes with %d interfaces; the test needs more than a page and %d", len(text), strings.Count(text, ": "), ifaces+1)
	}
	pod.NetNS.Exec("ip", "link", "del", "kpd0")
	if _, text = read("a pair removed"); strings.Contains(text, "kpd0:") || strings.Contains(text, "kpd1:") {
		t.Fatalf("kpd0 or kpd1 still read after their removal")
	}

	procs := map[int]*fakepod.Proc{a.PID(): a, b.PID(): b}
	if err := procs[first].Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = procs[first].Wait()
	second, _ := read("the first exited")
	if second == first || held(first) != 0 {
		t.Fatalf("after pid %d exited: read through %d, %d descriptors of its net/dev held", first, second, held(first))
	}
	n.Prune()
	n.Prune() // not asked for since the last one: forgotten
	if got := held(second); got != 0 {
		t.Fatalf("after the pod was pruned: %d descriptors of /proc/%d/net/dev held, want 0", got, second)
	}
}

// TestRealNSProcsBegin: in a collection (Begin to its end), Find answers from Begin's one poll
// of every pidfd: a process that exits later in the collection is found there (as after
// Find's own check), the next collection's Begin sees the exit and Find moves to the pod's
// other process, and a second Find of that collection keeps the new process.
func TestRealNSProcsBegin(t *testing.T) {
	fakepod.RequireRoot(t)
	l := fakepod.HostLayout(t)
	pod := fakepod.New(t, fakepod.Options{NetNS: true})
	c := pod.AddContainer()
	a, b := c.Start("sleep"), c.Start("sleep")
	a.WaitReady()
	b.WaitReady()
	procs := map[int]*fakepod.Proc{a.PID(): a, b.PID(): b}
	n := &collector.NSProcs{ProcRoot: "/proc", V2Root: l.V2, Kind: "net"}
	defer n.Close()
	find := func(step string) int {
		t.Helper()
		pid, _, ok := n.Find(pod.CgroupID, []string{c.Rel})
		if !ok || procs[pid] == nil {
			t.Fatalf("%s: Find = %d, %v; want one of %v", step, pid, ok, procs)
		}
		return pid
	}
	end := n.Begin() // nothing known yet
	first := find("first")
	end()
	end = n.Begin()
	if err := procs[first].Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = procs[first].Wait()
	if got := find("exited after this collection's Begin"); got != first {
		t.Fatalf("Find = %d after Begin saw %d running; want %d until the next collection", got, first, first)
	}
	end()
	end = n.Begin()
	second := find("the next collection")
	if second == first {
		t.Fatalf("Find still answers %d, which exited before this collection's Begin", first)
	}
	if again := find("again in that collection"); again != second {
		t.Fatalf("a second Find answered %d, the first %d", again, second)
	}
	end()
}
