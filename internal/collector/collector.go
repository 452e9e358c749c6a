// Package collector holds what every kpod metric family shares: the cgroups to read, the
// result shape (typed values per cgroup id plus the failures), and the loop that reads each
// cgroup so that one bad cgroup never costs the others their data.
package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/podid"
)

// Result is what a family returns for one collection: values per cgroup id and the errors of
// the cgroups (or files) that could not be read. Values holds everything that was read.
type Result[V any] struct {
	Values map[uint64]V
	Errs   []error
}

// Err returns the per-cgroup errors as ReadErrors (nil when there are none).
func (r Result[V]) Err() error {
	if len(r.Errs) == 0 {
		return nil
	}
	return ReadErrors(r.Errs)
}

// ReadErrors are the cgroup and /proc files one collection could not read; the scraper
// counts them in kpod.cgroup.read.errors and reports them as a partial scrape error.
type ReadErrors []error

func (e ReadErrors) Error() string   { return errors.Join(e...).Error() }
func (e ReadErrors) Unwrap() []error { return e }

// Workloads are the containers whose metrics are reported: every container but sandboxes.
func Workloads(x *podid.Index) []cgroupfs.Target {
	var out []cgroupfs.Target
	for _, c := range x.Containers() {
		if !c.Sandbox {
			out = append(out, cgroupfs.Target{ID: c.CgroupID, Rel: c.Rel})
		}
	}
	return out
}

// NoBPF is embedded by collectors that load no BPF object.
type NoBPF struct{}

// Objects is empty: nothing is loaded.
func (NoBPF) Objects() []*bpfload.Object { return nil }

// Close has nothing to free.
func (NoBPF) Close() error { return nil }

// ForEach reads every target with read. A target whose cgroup directory is gone (the pod was
// deleted after discovery, also while its files were being read) is skipped without an error; read may return ErrSkip for a
// target that has nothing to report (for example a container without processes).
func ForEach[V any](ctx context.Context, v2Root string, targets []cgroupfs.Target, read func(cgroupfs.Target) (V, error)) Result[V] {
	res := Result[V]{Values: make(map[uint64]V, len(targets))}
	var unread []unreadFile // missing while their cgroup still seemed to be there
	for _, t := range targets {
		if ctx.Err() != nil {
			res.Errs = append(res.Errs, ctx.Err())
			return res
		}
		v, err := read(t)
		switch {
		case err == nil:
			res.Values[t.ID] = v
		case errors.Is(err, ErrSkip):
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV):
			// Removed after discovery: before its file was opened (ENOENT), or between the
			// open and the read (kernfs answers ENODEV for a removed cgroup's open file). On
			// a hybrid host the file may be in a v1 hierarchy, whose directory the runtime
			// removes before or after the v2 one: the file's own directory decides.
			if !gone(v2Root, t.Rel, err) {
				unread = append(unread, unreadFile{rel: t.Rel, err: err})
			}
		default:
			res.Errs = append(res.Errs, err)
		}
	}
	res.Errs = append(res.Errs, stillThere(v2Root, unread)...)
	return res
}

// unreadFile is a file of the cgroup rel that could not be read.
type unreadFile struct {
	rel string
	err error
}

// stillThere returns the errors of the files whose cgroup is not being removed: neither its
// v2 directory nor the file's own directory is gone, now or within 50 ms. kernfs removes a
// cgroup's files before its directory, so a read can fail while the directory still exists
// (TestSoak in a CI run: memory.stat ENOENT in a v1 directory that was there when checked).
// One wait for all of a cycle's failed reads, and only when there are any.
func stillThere(v2Root string, files []unreadFile) []error {
	for i := 0; len(files) > 0 && i < 5; i++ {
		time.Sleep(10 * time.Millisecond)
		files = slices.DeleteFunc(files, func(f unreadFile) bool { return gone(v2Root, f.rel, f.err) })
	}
	errs := make([]error, len(files))
	for i, f := range files {
		errs[i] = f.err
	}
	return errs
}

// gone reports whether the cgroup of a file that could not be read has been removed: its v2
// directory or the file's own directory no longer exists.
func gone(v2Root, rel string, err error) bool { return Gone(v2Root, rel) || dirGone(err) }

// ErrSkip tells ForEach that a target has no data this time and that this is not an error.
var ErrSkip = errors.New("nothing to collect")

// dirGone reports whether err is about a file whose directory no longer exists.
func dirGone(err error) bool {
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path == "" {
		return false
	}
	_, serr := os.Stat(filepath.Dir(pe.Path))
	return errors.Is(serr, fs.ErrNotExist)
}

// Gone reports whether the cgroup directory rel no longer exists.
func Gone(v2Root, rel string) bool {
	_, err := os.Stat(filepath.Join(v2Root, rel))
	return errors.Is(err, fs.ErrNotExist)
}

// HostNamespace returns the inode of the host's initial namespace of a kind ("net", "mnt"),
// to tell a container's own namespace from the node's. It is read from kthreadd (pid 2),
// which always lives in the initial namespaces and, unlike pid 1, is readable even where
// init is protected from ptrace-style access.
func HostNamespace(procRoot, kind string) (uint64, error) {
	_, ino, err := HostNamespacePath(procRoot, kind)
	return ino, err
}

// HostNamespacePath is HostNamespace with the namespace file's path (to setns into it).
func HostNamespacePath(procRoot, kind string) (string, uint64, error) {
	for _, pid := range []string{"2", "1"} {
		comm, err := cgroupfs.ReadFile(filepath.Join(procRoot, pid, "comm"))
		if err != nil || pid == "2" && string(comm) != "kthreadd\n" {
			continue
		}
		path := filepath.Join(procRoot, pid, "ns", kind)
		ino, err := cgroupfs.Inode(path)
		if err == nil {
			return path, ino, nil
		}
		if errors.Is(err, fs.ErrPermission) {
			// The process is there: what is missing is the right to look at it.
			return "", 0, fmt.Errorf("reading the host's %s namespace: %w (needs CAP_SYS_PTRACE)", kind, err)
		}
	}
	return "", 0, fmt.Errorf("cannot read the host's %s namespace from %s/2 or %s/1 (kpod needs the host's /proc: hostPID)", kind, procRoot, procRoot)
}

// NSPath is the namespace file of a process found by Find.
func (n *NSProcs) NSPath(pid int) string { return n.nsPath(pid) }

// CanEnterNamespaces reports whether this process may setns(2) into another network or mount
// namespace: the kernel asks for CAP_SYS_ADMIN (in the namespace's user namespace and in the
// caller's), which kpod's DaemonSet does not grant.
func CanEnterNamespaces() bool {
	if denyNamespaces.Load() {
		return false
	}
	var data [2]unix.CapUserData
	if err := unix.Capget(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
}

var denyNamespaces atomic.Bool

// DenyNamespacesForTest makes CanEnterNamespaces report false, as for kpod without
// CAP_SYS_ADMIN, until restore is called: the families then start on the paths that enter
// no namespace, which tests run as root prove exact.
func DenyNamespacesForTest() (restore func()) {
	denyNamespaces.Store(true)
	return func() { denyNamespaces.Store(false) }
}

// InNetNS runs fn on an OS thread moved into the network namespace at path, then moves the
// thread back. If it cannot move back, the thread stays locked to the goroutine, so the Go
// runtime ends it instead of reusing it in the wrong namespace. A thread already in that
// namespace (the host's, for kpod on the host network) runs fn where it is: no setns, so no
// CAP_SYS_ADMIN.
func InNetNS(path string, fn func() error) error {
	runtime.LockOSThread()
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer own.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	var ownSt, targetSt unix.Stat_t
	if unix.Fstat(int(own.Fd()), &ownSt) == nil && unix.Fstat(int(target.Fd()), &targetSt) == nil &&
		ownSt.Dev == targetSt.Dev && ownSt.Ino == targetSt.Ino {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("entering network namespace %s: %w (needs CAP_SYS_ADMIN)", path, err)
		}
		return fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("returning from network namespace %s: %w", path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Met is the set of network namespaces (inodes) a socket iterator has run in, for families
// that read live sockets from one walk of their socket storage: the iterator runs in a
// namespace only the first time it is seen, to meet the sockets opened before kpod started.
// A namespace not met in a collection is forgotten (its inode may be reused by a new one).
type Met struct {
	mu        sync.Mutex
	prev, cur map[uint64]bool
}

// Before reports whether namespace ino was met in the previous collection.
func (m *Met) Before(ino uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prev[ino]
}

// Add records that namespace ino is met in this collection.
func (m *Met) Add(ino uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		m.cur = map[uint64]bool{}
	}
	m.cur[ino] = true
}

// Done ends a collection: the namespaces it did not meet (also those an aborted collection
// did not reach: met again next time) are forgotten.
func (m *Met) Done() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prev, m.cur = m.cur, nil
}

// NSProcs finds a process of a cgroup and the namespace (of one kind: "net", "mnt") it is in,
// and remembers both: a pod's namespaces do not change, so later cycles only check that the
// remembered process is still running instead of reading cgroup.procs again. The check is a
// poll of a pidfd (5.3+): it refers to that one process, so a reused pid is never taken for
// it, and it costs no walk of /proc (a stat of /proc/<pid>/ns/net took ~12 µs per pod and
// family here, a third of the tcp family's collection at 110 pods). Before 5.3 the namespace
// file is stat'ed, and a reused pid in another namespace fails that check.
type NSProcs struct {
	ProcRoot, V2Root, Kind string

	mu    sync.Mutex
	known map[uint64]nsProc // by target id
	used  map[uint64]bool   // ids asked for since the last Prune
}

type nsProc struct {
	pid    int
	ns     uint64
	pidfd  int                           // -1: no pidfd (before 5.3)
	files  map[string]*cgroupfs.ProcFile // ReadFile's, by name
	polled int8                          // Begin's answer for this collection: 1 running, -1 exited, 0 none
}

// Find returns a process of the first of rels that has one, and its namespace's inode.
func (n *NSProcs) Find(id uint64, rels []string) (pid int, ns uint64, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.known == nil {
		n.known, n.used = map[uint64]nsProc{}, map[uint64]bool{}
	}
	n.used[id] = true
	if k, found := n.known[id]; found {
		if k.polled > 0 || k.polled == 0 && n.running(k) {
			return k.pid, k.ns, true
		}
		n.forget(id)
	}
	for _, rel := range rels {
		pids, err := podid.PIDs(filepath.Join(n.V2Root, rel))
		if err != nil {
			continue
		}
		for _, p := range pids {
			// The pidfd first: if the process is still running after the stat, the stat
			// was of its namespace and not of a process that reused the pid.
			fd, err := unix.PidfdOpen(p, 0)
			if err != nil {
				fd = -1
			}
			k := nsProc{pid: p, pidfd: fd}
			if k.ns, err = cgroupfs.Inode(n.nsPath(p)); err == nil && n.running(k) {
				n.known[id] = k
				return p, k.ns, true
			}
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	return 0, 0, false
}

// Begin starts a collection: it checks every remembered process with one poll of all their
// pidfds, which Find then answers from until the collection ends with the Prune that Begin
// returns. One system call per collection instead of one per pod (110 pods: 110 ppoll calls of
// iface's and as many of filesystem's, each a few µs on this host). A process that exits after
// the poll is as one that exits right after Find's own check.
func (n *NSProcs) Begin() (end func()) {
	n.poll()
	return n.Prune
}

func (n *NSProcs) poll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []uint64
	var fds []unix.PollFd
	for id, k := range n.known {
		if k.pidfd >= 0 {
			ids = append(ids, id)
			fds = append(fds, unix.PollFd{Fd: int32(k.pidfd), Events: unix.POLLIN})
		}
	}
	if len(fds) == 0 {
		return
	}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // each Find polls on its own
		}
		break
	}
	for i, f := range fds {
		k := n.known[ids[i]]
		k.polled = 1
		if f.Revents != 0 { // readable (or an error) once the process has exited
			k.polled = -1
		}
		n.known[ids[i]] = k
	}
}

// running reports whether k's process has not exited (a zombie has: its namespaces are gone).
func (n *NSProcs) running(k nsProc) bool {
	if k.pidfd < 0 {
		ino, err := cgroupfs.Inode(n.nsPath(k.pid))
		return err == nil && ino == k.ns
	}
	fds := []unix.PollFd{{Fd: int32(k.pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 0 // readable once the process has exited
	}
}

func (n *NSProcs) forget(id uint64) {
	k, ok := n.known[id]
	if !ok {
		return
	}
	if k.pidfd >= 0 {
		unix.Close(k.pidfd)
	}
	for _, f := range k.files {
		f.Close()
	}
	delete(n.known, id)
}

// ReadFile reads <ProcRoot>/<pid>/<name> of the process Find last returned for id, through a
// descriptor kept open until that process is forgotten (it exits, or id is pruned): a pread
// instead of open, read, read and close at every collection. A procfs file stays bound to
// what it showed when opened (net/dev: the namespace), which is that process's as long as
// Find keeps finding it running. Not to be called for id concurrently with Find or Prune. The
// file's path is returned too, for the caller's errors about what it read.
func (n *NSProcs) ReadFile(id uint64, name string) ([]byte, string, error) {
	n.mu.Lock()
	k, ok := n.known[id]
	f := k.files[name]
	n.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("no process found for target %d", id)
	}
	if f == nil {
		var err error
		if f, err = cgroupfs.OpenProcFile(filepath.Join(n.ProcRoot, strconv.Itoa(k.pid), name)); err != nil {
			return nil, "", err
		}
		n.mu.Lock()
		if k.files == nil {
			k.files = map[string]*cgroupfs.ProcFile{}
			n.known[id] = k
		}
		k.files[name] = f
		n.mu.Unlock()
	}
	b, err := f.Read()
	return b, f.Path(), err
}

// Prune forgets the targets not asked for since the previous Prune (removed cgroups).
func (n *NSProcs) Prune() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, k := range n.known {
		if !n.used[id] {
			n.forget(id)
		} else if k.polled != 0 {
			k.polled = 0
			n.known[id] = k
		}
	}
	n.used = map[uint64]bool{}
}

// Close forgets every process (their pidfds are closed).
func (n *NSProcs) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id := range n.known {
		n.forget(id)
	}
}

func (n *NSProcs) nsPath(pid int) string {
	return filepath.Join(n.ProcRoot, strconv.Itoa(pid), "ns", n.Kind)
}
