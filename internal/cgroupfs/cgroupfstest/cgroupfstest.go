// Package cgroupfstest holds what the unit tests of the cgroup-file families share: the
// fixture trees of testdata/cgroupfs, their container cgroups, and helpers to copy, change
// and address them.
package cgroupfstest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

// Fixtures is testdata/cgroupfs relative to a package two levels below the repository root
// (internal/<name>), where go test runs its tests.
const Fixtures = "../../testdata/cgroupfs"

// The fixture trees used by the family tests (see testdata/cgroupfs/README.md).
const (
	V2Tree     = "v2-systemd-containerd"
	HybridTree = "hybrid-cgroupfs"
)

// Container cgroups of the fixture trees: sandboxes (Sb) and app containers (App) of pods A,
// B, C (v2) and A, G (hybrid).
const (
	V2PodA = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c5a3f2e_1b7d_4c19_9e2a_6f8d1c3b5a70.slice"
	V2PodB = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e41b9d0_53a2_4f6e_8c1d_2b9a0e4f7c13.slice"
	V2PodC = "kubepods.slice/kubepods-podd3f8a2c1_6b4e_4a09_b7d5_91e0c2f4a863.slice"
	V2SbA  = V2PodA + "/cri-containerd-c5e1748c83322244a289165adef73c68c7c6cca396fdc5266d90377b74795b75.scope"
	V2AppA = V2PodA + "/cri-containerd-deb43f6f0a91228c0e312ae8dc8a046e8fe30539f912829856968db716bdc481.scope"
	V2SbB  = V2PodB + "/cri-containerd-9e5616a364a8a837301d378899971a9f16a71d2ded9f9ccee5ce32820fa1595f.scope"
	V2AppB = V2PodB + "/cri-containerd-d36e10ff75e90c25debb66426b0ec69d1766914e5b9ae47cb41a5383b14f1404.scope"
	V2SbC  = V2PodC + "/cri-containerd-9d3b51ab7459e13037801572595c079f713a18b64da1d2eae71b5a65cb1d9160.scope"
	V2AppC = V2PodC + "/cri-containerd-78e0654d2cfef3ca680523a75edcd89f26056924c70dff7ff346faf7d7e77ee9.scope"
	HySbA  = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05/48877a0826f4c3f1479c87d32b739c46716806dd07868b92e9f903d09b2da291"
	HyAppA = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05/7575cbf70158515553323a60a9126437bdbcb00598572642a3efc44fef5868c9"
	HyAppG = "kubepods/poda91c7e3d-24f5-4b8a-8e06-c3d5f1b2e947/63f1f9fd5166f82fed77535f2940bd43ac5e88abb67071d3572d64c66996af93"
)

// V2Layout is the layout of a pure v2 tree at root (controllers cpu, io, memory, pids).
func V2Layout(root string) cgroupfs.Layout {
	return cgroupfs.FixtureLayout(root, []string{"cpu", "io", "memory", "pids"}, nil)
}

// HybridLayout is the layout of a hybrid tree at root: v2 in unified/ with hugetlb only,
// memory and blkio on v1.
func HybridLayout(root string) cgroupfs.Layout {
	return cgroupfs.FixtureLayout(filepath.Join(root, "unified"), []string{"hugetlb"},
		map[string]string{"memory": filepath.Join(root, "memory"), "blkio": filepath.Join(root, "blkio")})
}

// Inode is the inode number of path (a cgroup id, on a real cgroupfs).
func Inode(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Targets are the cgroups rels below v2, with their directories' inodes as ids.
func Targets(t testing.TB, v2 string, rels ...string) []cgroupfs.Target {
	t.Helper()
	var out []cgroupfs.Target
	for _, rel := range rels {
		out = append(out, cgroupfs.Target{ID: Inode(t, filepath.Join(v2, rel)), Rel: rel})
	}
	return out
}

// CopyTree copies a fixture tree (directories and regular files) to a new temporary
// directory the test may change.
func CopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// Write writes content to path, creating its directory.
func Write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
