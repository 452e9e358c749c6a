package collector_test

import (
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
