//go:build bench

package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// podPrefix names the top directory of every pod set the benchmarks create (in the v2 tree
// and in every v1 hierarchy), so that a crashed run's leftovers can be found and removed.
const podPrefix = "kpodbench-"

// podSet is a group of fake pods laid out like the kubelet's cgroupfs driver,
//
//	<prefix>/kubepods/besteffort/pod<uid>/<container id>
//
// created in the cgroup2 tree and in every v1 hierarchy (as the kubelet does on a hybrid
// host) with fakepod's cgroup primitives (MkdirCgroup, RemoveCgroup). It is cheaper than a
// fakepod.Pod each (one prefix for all pods, no per-test bookkeeping), which is what makes
// 1,000 pods take about a second.
type podSet struct {
	layout cgroupfs.Layout
	roots  []string
	prefix string
	dirs   []string // relative to every root, parents first
	pods   []*benchPod

	sleepers *exec.Cmd
	sleepIn  io.WriteCloser
}

type benchPod struct {
	UID        string
	Rel        string
	Containers []*benchContainer
}

type benchContainer struct {
	ID       string
	Rel      string
	CgroupID uint64
	set      *podSet
}

// cgroupRoots returns the host's cgroup layout and its hierarchy roots (fakepod.CgroupRoots:
// v2 first, then each distinct v1 mount).
func cgroupRoots() (cgroupfs.Layout, []string, error) {
	l, err := cgroupfs.Discover("/proc/self/mountinfo", "")
	if err != nil {
		return l, nil, err
	}
	return l, fakepod.CgroupRoots(l), nil
}

func newPodSet() (*podSet, error) {
	l, roots, err := cgroupRoots()
	if err != nil {
		return nil, err
	}
	s := &podSet{layout: l, roots: roots, prefix: podPrefix + fakepod.RandHex(4)}
	for _, rel := range []string{s.prefix, s.prefix + "/kubepods", s.prefix + "/kubepods/besteffort"} {
		if err := s.mkdir(rel); err != nil {
			_ = s.close()
			return nil, err
		}
	}
	return s, nil
}

// mkdir creates rel in every hierarchy as fakepod does (cpuset copied, controllers delegated
// on a pure v2 host); close removes what exists of it even if this fails half way.
func (s *podSet) mkdir(rel string) error {
	s.dirs = append(s.dirs, rel)
	return fakepod.MkdirCgroup(s.layout, rel)
}

// addPod creates a pod with n containers.
func (s *podSet) addPod(n int) (*benchPod, error) {
	p := &benchPod{UID: fakepod.RandUID()}
	p.Rel = s.prefix + "/kubepods/besteffort/pod" + p.UID
	if err := s.mkdir(p.Rel); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		c := &benchContainer{ID: fakepod.RandHex(32), set: s}
		c.Rel = p.Rel + "/" + c.ID
		if err := s.mkdir(c.Rel); err != nil {
			return nil, err
		}
		id, err := cgroupfs.Inode(filepath.Join(s.layout.V2, c.Rel))
		if err != nil {
			return nil, err
		}
		c.CgroupID = id
		p.Containers = append(p.Containers, c)
	}
	s.pods = append(s.pods, p)
	return p, nil
}

// procsFiles are the container's cgroup.procs files in every hierarchy.
func (c *benchContainer) procsFiles() string {
	var out []string
	for _, root := range c.set.roots {
		out = append(out, filepath.Join(root, c.Rel, "cgroup.procs"))
	}
	return strings.Join(out, ":")
}

// limitMemory sets the container's memory limit (memory.max on cgroup v2, else the v1
// memory controller's memory.limit_in_bytes), as the kubelet does for a container limit.
func (c *benchContainer) limitMemory(bytes uint64) error {
	dir, v2, ok := c.set.layout.ControllerDir("memory", c.Rel)
	if !ok {
		return errors.New("no memory controller")
	}
	file := "memory.limit_in_bytes"
	if v2 {
		file = "memory.max"
	}
	return os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatUint(bytes, 10)), 0o644)
}

// env makes a kbench process join the container (kbench reads $KBENCH_CGROUPS first thing).
func (c *benchContainer) env() []string {
	return append(os.Environ(), "KBENCH_CGROUPS="+c.procsFiles())
}

// startSleepers runs one sleeping process in every container of the set (one kbench that
// forks them; each child joins its container's cgroups and a network namespace of its own, as
// a pod's sandbox has, and pauses).
func (s *podSet) startSleepers(kbench string) error {
	cmd := exec.Command(kbench, "sleepers", "netns")
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	notePID(cmd.Process.Pid)
	s.sleepers, s.sleepIn = cmd, in
	n := 0
	w := bufio.NewWriter(in)
	for _, p := range s.pods {
		for _, c := range p.Containers {
			fmt.Fprintln(w, c.procsFiles())
			n++
		}
	}
	fmt.Fprintln(w)
	if err := w.Flush(); err != nil {
		return err
	}
	return waitReady(out, n, "kbench sleepers")
}

// waitReady reads the first line of a kbench helper's output, which must be "ready <n>".
func waitReady(out io.Reader, n int, what string) error {
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if l != "ready "+strconv.Itoa(n) {
			return fmt.Errorf("%s: %q", what, l)
		}
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("%s: not ready after 2 minutes", what)
	}
	return nil
}

// close stops the sleepers, kills whatever else runs in the set's cgroups and removes them.
func (s *podSet) close() error {
	if s.sleepers != nil {
		_ = s.sleepIn.Close()
		done := make(chan error, 1)
		go func() { done <- s.sleepers.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = s.sleepers.Process.Kill()
			<-done
		}
		s.sleepers = nil
	}
	var errs []error
	for i := len(s.dirs) - 1; i >= 0; i-- {
		for _, root := range s.roots {
			if err := fakepod.RemoveCgroup(filepath.Join(root, s.dirs[i])); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.dirs = nil
	return errors.Join(errs...)
}

// removeStalePods removes what an interrupted earlier run left: every kpodbench-* tree.
func removeStalePods() error {
	_, roots, err := cgroupRoots()
	if err != nil {
		return err
	}
	var errs []error
	for _, root := range roots {
		tops, _ := filepath.Glob(filepath.Join(root, podPrefix+"*"))
		for _, top := range tops {
			var dirs []string
			_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- { // children first
				if err := fakepod.RemoveCgroup(dirs[i]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// newSleepingPodSet creates n pods of one container each, with one sleeping process in each,
// in a network namespace of its own (the shape the scale phase and the userspace experiments
// measure: the families that read per network namespace — tcp's live sockets, iface — do so
// once per pod, as on a node). On error nothing of it is left.
func newSleepingPodSet(kbench string, n int) (*podSet, error) {
	ps, err := newPodSet()
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if _, err := ps.addPod(1); err != nil {
			ps.close()
			return nil, err
		}
	}
	if err := ps.startSleepers(kbench); err != nil {
		ps.close()
		return nil, err
	}
	return ps, nil
}
