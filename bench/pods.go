//go:build bench

package bench

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

// podPrefix names the top directory of every pod set the benchmarks create (in the v2 tree
// and in every v1 hierarchy), so that a crashed run's leftovers can be found and removed.
const podPrefix = "kpodbench-"

// podSet is a group of fake pods laid out like the kubelet's cgroupfs driver,
//
//	<prefix>/kubepods/besteffort/pod<uid>/<container id>
//
// created in the cgroup2 tree and in every v1 hierarchy (as the kubelet does on a hybrid
// host). It is cheaper than internal/fakepod (one prefix for all pods, no per-test
// bookkeeping), which is what makes 1,000 pods take about a second.
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

// cgroupRoots returns the host's cgroup layout and its hierarchy roots (v2 first, then each
// distinct v1 mount).
func cgroupRoots() (cgroupfs.Layout, []string, error) {
	l, err := cgroupfs.Discover("/proc/self/mountinfo", "")
	if err != nil {
		return l, nil, err
	}
	roots := []string{l.V2}
	seen := map[string]bool{l.V2: true}
	var v1 []string
	for _, m := range l.V1 {
		if !seen[m] {
			seen[m] = true
			v1 = append(v1, m)
		}
	}
	sort.Strings(v1)
	return l, append(roots, v1...), nil
}

func newPodSet() (*podSet, error) {
	l, roots, err := cgroupRoots()
	if err != nil {
		return nil, err
	}
	s := &podSet{layout: l, roots: roots, prefix: podPrefix + randHex(4)}
	for _, rel := range []string{s.prefix, s.prefix + "/kubepods", s.prefix + "/kubepods/besteffort"} {
		if err := s.mkdir(rel); err != nil {
			_ = s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *podSet) mkdir(rel string) error {
	for _, root := range s.roots {
		dir := filepath.Join(root, rel)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup: %w", err)
		}
		if root == s.layout.V1["cpuset"] {
			// A v1 cpuset starts empty and takes no tasks: inherit the parent's.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, f), b, 0)
				}
				if err != nil {
					return err
				}
			}
		}
	}
	s.dirs = append(s.dirs, rel)
	return nil
}

// addPod creates a pod with n containers.
func (s *podSet) addPod(n int) (*benchPod, error) {
	p := &benchPod{UID: randUID()}
	p.Rel = s.prefix + "/kubepods/besteffort/pod" + p.UID
	if err := s.mkdir(p.Rel); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		c := &benchContainer{ID: randHex(32), set: s}
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

// env makes a kbench process join the container (kbench reads $KBENCH_CGROUPS first thing).
func (c *benchContainer) env() []string {
	return append(os.Environ(), "KBENCH_CGROUPS="+c.procsFiles())
}

// startSleepers runs one sleeping process in every container of the set (one kbench that
// forks them; each child joins its container's cgroups and pauses).
func (s *podSet) startSleepers(kbench string) error {
	cmd := exec.Command(kbench, "sleepers")
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
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if l != "ready "+strconv.Itoa(n) {
			return fmt.Errorf("kbench sleepers: %q", l)
		}
	case <-time.After(2 * time.Minute):
		return errors.New("kbench sleepers: not ready after 2 minutes")
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
			if err := removeCgroup(filepath.Join(root, s.dirs[i])); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.dirs = nil
	return errors.Join(errs...)
}

// removeCgroup kills the processes of one cgroup directory (no children) and removes it.
func removeCgroup(dir string) error {
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		pids := strings.Fields(string(b))
		if err == nil && len(pids) == 0 {
			err = os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
		for _, p := range pids {
			if pid, e := strconv.Atoi(p); e == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing %s: %v (processes %v)", dir, err, pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
				if err := removeCgroup(dirs[i]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randUID() string {
	s := randHex(16)
	return s[0:8] + "-" + s[8:12] + "-4" + s[13:16] + "-a" + s[17:20] + "-" + s[20:32]
}

// newSleepingPodSet creates n pods of one container each, with one sleeping process in each
// (the shape the scale phase and the userspace experiments measure). On error nothing of it
// is left.
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
