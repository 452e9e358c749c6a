package fakepod

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

func TestCgroupRoots(t *testing.T) {
	l := cgroupfs.Layout{V2: "/sys/fs/cgroup/unified", V1: map[string]string{
		"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"blkio": "/sys/fs/cgroup/blkio"}}
	want := []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/blkio", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory"}
	if got := CgroupRoots(l); !slices.Equal(got, want) {
		t.Errorf("CgroupRoots = %q, want %q", got, want)
	}
	if got := CgroupRoots(cgroupfs.Layout{V2: "/sys/fs/cgroup"}); !slices.Equal(got, []string{"/sys/fs/cgroup"}) {
		t.Errorf("pure v2: CgroupRoots = %q", got)
	}
}

func TestRandUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := RandUID(), RandUID()
	if !re.MatchString(a) || a == b {
		t.Errorf("RandUID: %q, %q", a, b)
	}
	if h := RandHex(32); len(h) != 64 {
		t.Errorf("RandHex(32) = %q", h)
	}
}

// TestMkdirCgroupLayouts runs MkdirCgroup on plain directories shaped like the two layouts:
// a pure v2 host delegates controllers from the parent, a v1 cpuset inherits cpus and mems.
func TestMkdirCgroupLayouts(t *testing.T) {
	write := func(path, v string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	v2 := t.TempDir()
	write(filepath.Join(v2, "cgroup.subtree_control"), "")
	if err := MkdirCgroup(cgroupfs.Layout{V2: v2}, "pod"); err != nil {
		t.Fatal(err)
	}
	// Each controller is a write of its own (a real cgroup file takes them one by one); a
	// plain file keeps the last.
	if got := read(filepath.Join(v2, "cgroup.subtree_control")); got != "+pids" {
		t.Errorf("pure v2: parent's cgroup.subtree_control = %q, want the delegation writes (+pids last)", got)
	}

	u, cpuset := t.TempDir(), t.TempDir()
	write(filepath.Join(cpuset, "cpuset.cpus"), "0-1\n")
	write(filepath.Join(cpuset, "cpuset.mems"), "0\n")
	write(filepath.Join(u, "cgroup.subtree_control"), "")
	l := cgroupfs.Layout{V2: u, V1: map[string]string{"cpuset": cpuset}}
	if err := MkdirCgroup(l, "pod"); err != nil {
		t.Fatal(err)
	}
	if got := read(filepath.Join(cpuset, "pod", "cpuset.cpus")) + read(filepath.Join(cpuset, "pod", "cpuset.mems")); got != "0-1\n0\n" {
		t.Errorf("v1 cpuset of the new directory: %q, want the parent's", got)
	}
	if got := read(filepath.Join(u, "cgroup.subtree_control")); got != "" {
		t.Errorf("hybrid: controllers delegated in the v2 tree (%q)", got)
	}
	if err := MkdirCgroup(l, "pod"); err == nil {
		t.Errorf("MkdirCgroup of an existing directory: no error")
	}
}

// TestCgroupTree: on this host's real hierarchies, a directory made by MkdirCgroup takes a
// process in every hierarchy (a v1 cpuset would refuse it without cpus), and RemoveCgroup
// kills the process and removes the directory; a second RemoveCgroup is no error.
func TestCgroupTree(t *testing.T) {
	RequireRoot(t)
	l := HostLayout(t)
	rel := "kpodtest-" + RandHex(4)
	t.Cleanup(func() {
		for _, root := range CgroupRoots(l) {
			_ = RemoveCgroup(filepath.Join(root, rel))
		}
	})
	if err := MkdirCgroup(l, rel); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, root := range CgroupRoots(l) {
		if err := os.WriteFile(filepath.Join(root, rel, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			_ = cmd.Process.Kill()
			t.Fatalf("moving a process into %s: %v", filepath.Join(root, rel), err)
		}
	}
	for _, root := range CgroupRoots(l) {
		dir := filepath.Join(root, rel)
		if err := RemoveCgroup(dir); err != nil {
			t.Errorf("RemoveCgroup(%s): %v", dir, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", dir, err)
		}
		if err := RemoveCgroup(dir); err != nil {
			t.Errorf("RemoveCgroup of a removed directory: %v", err)
		}
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the process in the cgroup was not killed: %v", err)
	}
}

// TestNewExt4: 4 KiB blocks, mounted where asked (host or mount namespace), and unmounted
// and detached when the test that made it ends.
func TestNewExt4(t *testing.T) {
	RequireRoot(t)
	var host, inNS *Ext4
	var ns *MountNS
	t.Run("make", func(t *testing.T) {
		host = NewExt4(t, 32, Ext4Options{})
		if got := strings.TrimSpace(run(t, "stat", "-f", "-c", "%T %S", host.Dir)); got != "ext2/ext3 4096" {
			t.Errorf("stat -f %s: %q, want an ext4 with 4096-byte blocks", host.Dir, got)
		}
		ns = NewMountNS(t)
		inNS = NewExt4(t, 32, Ext4Options{MountNS: ns, Dir: filepath.Join(t.TempDir(), "in-ns")})
		if got := strings.TrimSpace(ns.Exec("stat", "-f", "-c", "%T %S", inNS.Dir)); got != "ext2/ext3 4096" {
			t.Errorf("in the namespace, stat -f %s: %q", inNS.Dir, got)
		}
		if isMountPoint(inNS.Dir) {
			t.Errorf("%s is mounted in the host's namespace too", inNS.Dir)
		}
	})
	if isMountPoint(host.Dir) {
		t.Errorf("%s still mounted after the test", host.Dir)
	}
	list := run(t, "losetup", "-l", "-n", "-O", "NAME")
	for _, d := range []*LoopDevice{host.Dev, inNS.Dev} {
		if slices.Contains(strings.Fields(list), d.Path) {
			t.Errorf("%s still attached after the test", d.Path)
		}
	}
}

// TestRemove: Container.Remove kills the container's processes and removes its directory in
// every hierarchy while the pod stays; Pod.Remove does the same for the whole pod, and the
// cleanup at the end of the test then finds nothing left (and reports no error).
func TestRemove(t *testing.T) {
	RequireRoot(t)
	var pod *Pod
	var gone []string
	t.Run("remove", func(t *testing.T) {
		pod = New(t, Options{})
		a, b := pod.AddContainer(), pod.AddContainer()
		pa, pb := a.Start("sleep"), b.Start("sleep")
		pa.WaitReady()
		pb.WaitReady()
		a.Remove()
		if exited, _ := pa.Exited(); !exited {
			t.Errorf("the removed container's process still runs")
		}
		if exited, _ := pb.Exited(); exited {
			t.Errorf("the other container's process was killed")
		}
		for _, root := range pod.roots() {
			if exists(filepath.Join(root, a.Rel)) {
				t.Errorf("%s is still there", filepath.Join(root, a.Rel))
			}
			if !exists(filepath.Join(root, b.Rel)) {
				t.Errorf("%s was removed with its sibling", filepath.Join(root, b.Rel))
			}
		}
		if len(pod.Containers) != 1 || pod.Containers[0] != b {
			t.Errorf("pod.Containers = %v, want only the remaining container", pod.Containers)
		}
		for _, root := range pod.roots() {
			gone = append(gone, filepath.Join(root, pod.prefix))
		}
		pod.Remove()
		if exited, _ := pb.Exited(); !exited {
			t.Errorf("the pod's process still runs after Pod.Remove")
		}
		for _, dir := range gone {
			if exists(dir) {
				t.Errorf("%s is still there after Pod.Remove", dir)
			}
		}
	})
	if len(pod.dirs) != 0 {
		t.Errorf("the pod still lists directories after its cleanup: %v", pod.dirs)
	}
}
