// Package fakepod creates real pod cgroups laid out like the kubelet's, runs deterministic
// workloads in them and removes everything afterwards, for kpod's real-kernel tests.
//
// A fake pod lives under a per-test prefix directory (kind-style nesting, which kpod's path
// parser accepts), so a real kubelet's "kubepods" tree and parallel tests are never touched.
// On a hybrid host the same relative path is created in every v1 controller hierarchy, as
// the kubelet does, and workloads are moved into all of them.
package fakepod

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/podid"
)

// RequireRoot skips a test that needs root and a BTF kernel, and fails it instead when CI=true:
// in CI a skipped real-kernel test would hide a broken build.
func RequireRoot(t testing.TB) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "needs root"
	case !exists("/sys/kernel/btf/vmlinux"):
		why = "needs a kernel with BTF (/sys/kernel/btf/vmlinux)"
	}
	if why == "" {
		serialize(t)
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real-kernel test %s; CI must run it (CI=true)", why)
	}
	t.Skipf("real-kernel test %s", why)
}

// Unmet skips a test whose precondition does not hold here, saying why; under CI=true, where
// every precondition must hold, it fails instead.
func Unmet(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("precondition not met: %s; CI must run this test (CI=true)", why)
	}
	t.Skip(why)
}

var (
	lockOnce sync.Once
	lockErr  error
)

// serialize makes real-kernel tests of different packages (go test runs packages in
// parallel) take turns, for the life of the test binary: attaching BPF programs to a
// tracepoint while another test counts events on it can make the kernel skip a few of them.
func serialize(t testing.TB) {
	lockOnce.Do(func() {
		f, err := os.OpenFile("/run/kpod-realkernel-tests.lock", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			lockErr = err
			return
		}
		// Kept open (and locked) until the process exits.
		lockErr = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	})
	if lockErr != nil {
		t.Fatalf("taking the real-kernel test lock: %v", lockErr)
	}
}

var (
	layoutOnce sync.Once
	hostLayout cgroupfs.Layout
	layoutErr  error
)

// HostLayout returns the cgroup layout of this machine.
func HostLayout(t testing.TB) cgroupfs.Layout {
	t.Helper()
	layoutOnce.Do(func() { hostLayout, layoutErr = cgroupfs.Discover("/proc/self/mountinfo", "") })
	if layoutErr != nil {
		t.Fatalf("cgroup layout: %v", layoutErr)
	}
	return hostLayout
}

// Options shape a fake pod.
type Options struct {
	QoS    podid.QoS    // default BestEffort
	Driver podid.Driver // default Cgroupfs (the kubelet's driver on this machine)
	// NetNS gives the pod its own network namespace, joined by all its workloads.
	NetNS bool
	// MemoryLimit, if > 0, is set on the pod's memory cgroup (memory.max or memory.limit_in_bytes).
	MemoryLimit int64
	// UID is the pod's UID; default random. Tests with an API server use the UID it assigned.
	UID string
}

// Pod is a fake pod: a pod cgroup with container cgroups below it.
type Pod struct {
	UID        string
	QoS        podid.QoS
	Rel        string // pod directory below every hierarchy root
	CgroupID   uint64
	NetNS      *NetNS
	Containers []*Container

	t      testing.TB
	layout cgroupfs.Layout
	prefix string   // the per-test top directory
	dirs   []string // created relative dirs, parents first
	driver podid.Driver
}

// Container is a container cgroup of a fake pod.
type Container struct {
	ID       string
	Rel      string
	CgroupID uint64
	Pod      *Pod
	// SetNS lists extra namespace files (e.g. a mount namespace) its workloads join.
	SetNS []string
	// Env is added to the environment of its workloads (KPOD_CPU=n pins them to CPU n).
	Env []string
	// AtGate, if set, is called with a workload's pid once it is in the container's cgroups
	// and before its gate opens: where a test starts the kernel's own record of what the
	// workload does in the pod.
	AtGate func(pid int)
	procs  []*Proc
}

// New creates a fake pod. Everything is removed when the test ends, also when it fails.
func New(t testing.TB, opts Options) *Pod {
	t.Helper()
	RequireRoot(t)
	if opts.QoS == "" {
		opts.QoS = podid.BestEffort
	}
	if opts.Driver == "" {
		opts.Driver = podid.Cgroupfs
	}
	if opts.UID == "" {
		opts.UID = RandUID()
	}
	p := &Pod{UID: opts.UID, QoS: opts.QoS, t: t, layout: HostLayout(t), driver: opts.Driver}
	tag := p.freeTag()
	var rels []string
	if opts.Driver == podid.Systemd {
		u := strings.ReplaceAll(p.UID, "-", "_")
		p.prefix = "kpodtest" + tag + ".slice"
		rels = append(rels, p.prefix, p.prefix+"/kubepods.slice")
		podDir := p.prefix + "/kubepods.slice/kubepods-pod" + u + ".slice"
		if opts.QoS != podid.Guaranteed {
			q := "kubepods-" + string(opts.QoS)
			rels = append(rels, p.prefix+"/kubepods.slice/"+q+".slice")
			podDir = p.prefix + "/kubepods.slice/" + q + ".slice/" + q + "-pod" + u + ".slice"
		}
		rels = append(rels, podDir)
	} else {
		p.prefix = "kpodtest-" + tag
		rels = append(rels, p.prefix, p.prefix+"/kubepods")
		podDir := p.prefix + "/kubepods/pod" + p.UID
		if opts.QoS != podid.Guaranteed {
			rels = append(rels, p.prefix+"/kubepods/"+string(opts.QoS))
			podDir = p.prefix + "/kubepods/" + string(opts.QoS) + "/pod" + p.UID
		}
		rels = append(rels, podDir)
	}
	t.Cleanup(p.cleanup)
	for _, r := range rels {
		p.mkdir(r)
	}
	p.Rel = rels[len(rels)-1]
	p.CgroupID = p.id(p.Rel)
	if opts.MemoryLimit > 0 {
		dir, v2, ok := p.layout.ControllerDir("memory", p.Rel)
		if !ok {
			t.Fatalf("no memory controller to set a limit on")
		}
		file := "memory.limit_in_bytes"
		if v2 {
			file = "memory.max"
		}
		writeFile(t, filepath.Join(dir, file), strconv.FormatInt(opts.MemoryLimit, 10))
	}
	if opts.NetNS {
		p.NetNS = NewNetNS(t)
	}
	return p
}

// AddContainer creates a container cgroup with a random 64-hex id.
func (p *Pod) AddContainer() *Container {
	p.t.Helper()
	c := &Container{ID: RandHex(32), Pod: p}
	name := c.ID
	if p.driver == podid.Systemd {
		name = "cri-containerd-" + c.ID + ".scope"
	}
	c.Rel = p.Rel + "/" + name
	p.mkdir(c.Rel)
	c.CgroupID = p.id(c.Rel)
	p.Containers = append(p.Containers, c)
	return c
}

// AddSandbox creates the pod's pause container and starts a process named "pause" in it
// (kpod recognises sandboxes by that name). It holds the pod's network namespace.
func (p *Pod) AddSandbox() *Container {
	p.t.Helper()
	c := p.AddContainer()
	pr := c.start(pauseBinary(p.t), "sleep")
	pr.Go()
	pr.WaitReady()
	return c
}

// V2Dir is the container's directory in the cgroup2 tree.
func (c *Container) V2Dir() string { return filepath.Join(c.Pod.layout.V2, c.Rel) }

// ControllerDir is where the container's files of controller ctrl live.
func (c *Container) ControllerDir(ctrl string) string {
	dir, _, ok := c.Pod.layout.ControllerDir(ctrl, c.Rel)
	if !ok {
		c.Pod.t.Fatalf("no %s controller on this host", ctrl)
	}
	return dir
}

func (p *Pod) mkdir(rel string) {
	p.t.Helper()
	p.dirs = append(p.dirs, rel) // first: cleanup removes what exists of it if this fails
	if err := MkdirCgroup(p.layout, rel); err != nil {
		if errors.Is(err, fs.ErrExist) {
			p.dirs = p.dirs[:len(p.dirs)-1] // not this pod's: cleanup must leave it alone
		}
		p.t.Fatal(err)
	}
}

// freeTag draws the random part of the pod's top directory until no hierarchy has a
// directory of that name (TestBackpressure once drew a tag another pod of the run had).
func (p *Pod) freeTag() string {
	for range 16 {
		tag := RandHex(4)
		taken := false
		for _, root := range p.roots() {
			for _, name := range []string{"kpodtest-" + tag, "kpodtest" + tag + ".slice"} {
				if _, err := os.Stat(filepath.Join(root, name)); err == nil {
					taken = true
				}
			}
		}
		if !taken {
			return tag
		}
	}
	p.t.Fatal("no free cgroup name in 16 draws")
	return ""
}

// roots are the hierarchies the pod's directories are in (CgroupRoots).
func (p *Pod) roots() []string { return CgroupRoots(p.layout) }

func (p *Pod) id(rel string) uint64 {
	p.t.Helper()
	id, err := cgroupfs.Inode(filepath.Join(p.layout.V2, rel))
	if err != nil {
		p.t.Fatal(err)
	}
	return id
}

// cleanup kills every process of the pod and removes its directories in all hierarchies.
// It runs once: when the test ends, or earlier through Remove.
func (p *Pod) cleanup() {
	for _, c := range p.Containers {
		c.stopProcs()
	}
	var errs []error
	for i := len(p.dirs) - 1; i >= 0; i-- {
		for _, root := range p.roots() {
			if err := RemoveCgroup(filepath.Join(root, p.dirs[i])); err != nil {
				errs = append(errs, err)
			}
		}
	}
	p.dirs = nil
	if len(errs) > 0 {
		p.t.Errorf("fake pod cleanup: %v", errors.Join(errs...))
	}
}

// Remove deletes the pod now rather than when the test ends, as the kubelet does when a
// pod is deleted: its processes are killed and its cgroups removed in every hierarchy. Tests
// that churn through many pods call it so that nothing of a removed pod is held until the
// end (its processes' pipes included). The pod's cleanup then has nothing left to do.
func (p *Pod) Remove() {
	p.t.Helper()
	p.cleanup()
}

// Remove deletes the container now, as the runtime does when a container exits for good
// (a restarted container is a new one, with a new id and cgroup: AddContainer): its
// processes are killed and its cgroup removed in every hierarchy. The pod stays.
func (c *Container) Remove() {
	p := c.Pod
	p.t.Helper()
	c.stopProcs()
	var errs []error
	for _, root := range p.roots() {
		if err := RemoveCgroup(filepath.Join(root, c.Rel)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		p.t.Errorf("removing container %s: %v", c.ID, errors.Join(errs...))
	}
	p.dirs = slices.DeleteFunc(p.dirs, func(d string) bool { return d == c.Rel })
	p.Containers = slices.DeleteFunc(p.Containers, func(x *Container) bool { return x == c })
}

// stopProcs kills the container's processes that still run and closes what the harness
// holds of each (the read end of its stdout).
func (c *Container) stopProcs() {
	for _, pr := range c.procs {
		pr.kill()
		pr.release()
	}
	c.procs = nil
}

func writeFile(t testing.TB, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// run executes a helper command and fails the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// OpenFiles counts the open descriptors of process pid (0: this process) whose target, what
// /proc/<pid>/fd/<n> links to (a path, "anon_inode:[pidfd]", ...), match accepts.
func OpenFiles(t testing.TB, pid int, match func(target string) bool) int {
	t.Helper()
	dir := "/proc/self/fd"
	if pid != 0 {
		dir = fmt.Sprintf("/proc/%d/fd", pid)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && match(target) {
			n++
		}
	}
	return n
}
