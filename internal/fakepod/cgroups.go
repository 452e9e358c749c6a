package fakepod

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/podid"
)

// The cgroup-tree primitives below return errors instead of taking a testing.TB, so that
// code outside tests (the benchmarks' pod sets, bench/pods.go) lays out and removes pods
// exactly as the test harness does. Pod and Container call them and fail the test on error.

// CgroupRoots are the hierarchies a pod directory is created in: the cgroup2 mount first,
// then every distinct v1 controller mount, sorted (cpu and cpuacct may share one).
func CgroupRoots(l cgroupfs.Layout) []string {
	seen := map[string]bool{l.V2: true}
	var v1 []string
	for _, m := range l.V1 {
		if !seen[m] {
			seen[m] = true
			v1 = append(v1, m)
		}
	}
	sort.Strings(v1)
	return append([]string{l.V2}, v1...)
}

// MkdirCgroup creates the directory rel (relative to every root, its parent already there)
// in every hierarchy of l, as the kubelet does: a v1 cpuset directory starts empty and takes
// no tasks, so it inherits its parent's cpus and mems; on a pure cgroup v2 host the parent
// delegates the memory, io, cpu and pids controllers to it (best effort: a controller the
// host lacks is left out).
func MkdirCgroup(l cgroupfs.Layout, rel string) error {
	for _, root := range CgroupRoots(l) {
		dir := filepath.Join(root, rel)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup: %w", err)
		}
		if root != l.V1["cpuset"] {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0)
			}
			if err != nil {
				return fmt.Errorf("cpuset of %s: %w", dir, err)
			}
		}
	}
	if l.Mode() == cgroupfs.ModeV2 && rel != "" {
		parent := filepath.Join(l.V2, filepath.Dir(rel))
		for _, c := range []string{"+memory", "+io", "+cpu", "+pids"} {
			_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte(c), 0)
		}
	}
	return nil
}

// RemoveCgroup kills every process of the cgroup directory dir (its child cgroups already
// removed) and removes it, retrying for up to 20 s while dying tasks leave (EBUSY). A
// directory that is already gone is not an error.
func RemoveCgroup(dir string) error {
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) // Linux >= 5.14
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids, err := podid.PIDs(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err == nil && len(pids) == 0 {
			err = os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s: %v (processes %v)", dir, err, pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RandHex returns n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandUID returns a random version-4 UUID, as the API server assigns pod UIDs.
func RandUID() string {
	s := RandHex(16)
	return s[0:8] + "-" + s[8:12] + "-4" + s[13:16] + "-a" + s[17:20] + "-" + s[20:32]
}
