package cgroupfs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	mountinfoDir = "../../testdata/mountinfo"
	fixtureDir   = "../../testdata/cgroupfs"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		file  string
		n     int
		check map[int]Mount // index → expected mount
	}{
		{"hybrid.txt", 20, map[int]Mount{
			5:  {Root: "/", MountPoint: "/", FSType: "ext4", Source: "/dev/vda", SuperOpts: "rw,discard"},
			10: {Root: "/", MountPoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Source: "cgroup", SuperOpts: "rw,memory"},
			15: {Root: "/", MountPoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", Source: "cgroup", SuperOpts: "rw,name=systemd"},
			16: {Root: "/", MountPoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", Source: "cgroup2", SuperOpts: "rw"},
			// optional field "shared:1" before the separator
			19: {Root: "/run/netns", MountPoint: "/run/netns", FSType: "ext4", Source: "/dev/vda", SuperOpts: "rw,discard"},
		}},
		{"pure-v2.txt", 7, map[int]Mount{
			4: {Root: "/", MountPoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup2", SuperOpts: "rw,nsdelegate,memory_recursiveprot"},
		}},
		{"escaped.txt", 3, map[int]Mount{
			1: {Root: "/", MountPoint: "/run/kpod cgroups", FSType: "cgroup2", Source: "cgroup2", SuperOpts: "rw"},
			2: {Root: "/srv/my data\ttab", MountPoint: `/mnt/back\slash`, FSType: "ext4", Source: "/dev/vda1", SuperOpts: "rw"},
		}},
		{"nonroot-v2.txt", 6, map[int]Mount{
			3: {Root: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e41b9d0_53a2_4f6e_8c1d_2b9a0e4f7c13.slice/cri-containerd-d36e10ff75e90c25debb66426b0ec69d1766914e5b9ae47cb41a5383b14f1404.scope",
				MountPoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup", SuperOpts: "rw,nsdelegate,memory_recursiveprot"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(mountinfoDir, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			mounts, err := ParseMountinfo(path, data)
			if err != nil {
				t.Fatal(err)
			}
			if len(mounts) != tc.n {
				t.Fatalf("%d mounts, want %d", len(mounts), tc.n)
			}
			for i, want := range tc.check {
				if mounts[i] != want {
					t.Errorf("mount %d = %+v, want %+v", i, mounts[i], want)
				}
			}
		})
	}
}

func TestParseMountinfoMalformed(t *testing.T) {
	tests := []struct {
		name, data, wantIn string
	}{
		{"no separator", "22 27 0:21 / /proc rw,relatime proc proc rw\n", "mountinfo:1"},
		{"too few fields after separator", "27 1 254:0 / / rw,relatime - ext4 /dev/vda\n", "mountinfo:1"},
		{"separator too early", "22 27 0:21 / - proc proc rw\n", "mountinfo:1"},
		{"bad second line", "22 27 0:21 / /proc rw,relatime - proc proc rw\ngarbage\n", "mountinfo:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mounts, err := ParseMountinfo("/proc/self/mountinfo", []byte(tc.data))
			if err == nil {
				t.Fatalf("no error, got %+v", mounts)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not name %q", err, tc.wantIn)
			}
		})
	}
	// Blank lines are not mounts and not errors.
	mounts, err := ParseMountinfo("x", []byte("\n22 27 0:21 / /proc rw - proc proc rw\n\n"))
	if err != nil || len(mounts) != 1 {
		t.Errorf("blank lines: %v, %d mounts", err, len(mounts))
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:        "/plain",
		`/a\040b`:       "/a b",
		`/end\040`:      "/end ",
		`/nl\012x`:      "/nl\nx",
		`/bs\134`:       `/bs\`,
		`/short\04`:     `/short\04`,     // not three octal digits: kept
		`/notoctal\089`: `/notoctal\089`, // 8 and 9 are not octal
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDiscoverFixtures runs Discover on mountinfo files shaped like real hosts. Their mount
// points are host paths, so V2Controllers (read from the host) is not compared here.
func TestDiscoverFixtures(t *testing.T) {
	tests := []struct {
		file string
		v2   string
		v1   map[string]string
	}{
		{"hybrid.txt", "/sys/fs/cgroup/unified", map[string]string{
			"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "cpuset": "/sys/fs/cgroup/cpuset",
			"memory": "/sys/fs/cgroup/memory", "devices": "/sys/fs/cgroup/devices", "freezer": "/sys/fs/cgroup/freezer",
			"blkio": "/sys/fs/cgroup/blkio", "pids": "/sys/fs/cgroup/pids",
		}},
		// systemd's hybrid layout: joint hierarchies, and flags (xattr, clone_children) that are
		// options of the hierarchy, not controllers.
		{"hybrid-systemd.txt", "/sys/fs/cgroup/unified", map[string]string{
			"net_cls": "/sys/fs/cgroup/net_cls,net_prio", "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
			"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
			"memory": "/sys/fs/cgroup/memory", "blkio": "/sys/fs/cgroup/blkio", "cpuset": "/sys/fs/cgroup/cpuset",
			"pids": "/sys/fs/cgroup/pids", "rdma": "/sys/fs/cgroup/rdma", "hugetlb": "/sys/fs/cgroup/hugetlb",
			"freezer": "/sys/fs/cgroup/freezer", "devices": "/sys/fs/cgroup/devices", "perf_event": "/sys/fs/cgroup/perf_event",
		}},
		{"pure-v2.txt", "/sys/fs/cgroup", map[string]string{}},
		{"escaped.txt", "/run/kpod cgroups", map[string]string{}},
		// The container's own /sys/fs/cgroup shows only its cgroup (root is not "/"): it must
		// lose to the host's full tree although /sys/fs/cgroup is the conventional place.
		{"nonroot-v2.txt", "/host/sys/fs/cgroup", map[string]string{}},
		// A DaemonSet pod in a private cgroup namespace: its own /sys/fs/cgroup is only its
		// subtree (root "/"); the hostPath mount of the host's tree shows as "/../../../..".
		{"cgroupns-v2.txt", "/host/sys/fs/cgroup", map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			l, err := Discover(filepath.Join(mountinfoDir, tc.file), "")
			if err != nil {
				t.Fatal(err)
			}
			if l.V2 != tc.v2 {
				t.Errorf("V2 = %q, want %q", l.V2, tc.v2)
			}
			if !reflect.DeepEqual(l.V1, tc.v1) {
				t.Errorf("V1 = %v\nwant %v", l.V1, tc.v1)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	t.Run("no cgroup2", func(t *testing.T) {
		_, err := Discover(filepath.Join(mountinfoDir, "no-cgroup2.txt"), "")
		if !errors.Is(err, ErrNoCgroup2) {
			t.Errorf("err = %v, want ErrNoCgroup2", err)
		}
	})
	t.Run("only a sub-tree cgroup2", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "mountinfo")
		line := "1426 1425 0:30 /kubepods.slice/x.scope /sys/fs/cgroup ro,relatime - cgroup2 cgroup rw\n"
		if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Discover(p, ""); !errors.Is(err, ErrNoCgroup2) {
			t.Errorf("err = %v, want ErrNoCgroup2", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Discover(filepath.Join(t.TempDir(), "mountinfo"), "")
		if err == nil || !strings.Contains(err.Error(), "mountinfo") {
			t.Errorf("err = %v, want an error naming the file", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "mountinfo")
		if err := os.WriteFile(p, []byte("1 2 3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Discover(p, "")
		if err == nil || !strings.Contains(err.Error(), p+":1") {
			t.Errorf("err = %v, want an error naming %s:1", err, p)
		}
	})
	t.Run("cgroup_root not a cgroup2 mount", func(t *testing.T) {
		dir := filepath.Join(fixtureDir, "v2-systemd-containerd")
		_, err := Discover(filepath.Join(mountinfoDir, "pure-v2.txt"), dir)
		if err == nil || !strings.Contains(err.Error(), "cgroup_root") || !strings.Contains(err.Error(), "not a cgroup2 mount") {
			t.Errorf("err = %v, want cgroup_root ... not a cgroup2 mount", err)
		}
	})
	t.Run("cgroup_root missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		_, err := Discover(filepath.Join(mountinfoDir, "pure-v2.txt"), dir)
		if err == nil || !strings.Contains(err.Error(), "cgroup_root") {
			t.Errorf("err = %v, want an error naming cgroup_root", err)
		}
	})
}

// writeMountinfo writes a mountinfo whose cgroup mounts point at fixture directories, so that
// Discover also reads cgroup.controllers from the fixture.
func writeMountinfo(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDiscoverOnFixtureTrees(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		root := abs(t, filepath.Join(fixtureDir, "v2-systemd-containerd"))
		mi := writeMountinfo(t,
			"26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
			"28 21 0:26 / "+root+" rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate")
		l, err := Discover(mi, "")
		if err != nil {
			t.Fatal(err)
		}
		want := Layout{V2: root, V1: map[string]string{},
			V2Controllers: map[string]bool{"cpu": true, "io": true, "memory": true, "pids": true}}
		if !reflect.DeepEqual(l, want) {
			t.Errorf("layout = %+v\nwant %+v", l, want)
		}
		if l.Mode() != ModeV2 {
			t.Errorf("Mode = %s, want v2", l.Mode())
		}
	})
	t.Run("hybrid", func(t *testing.T) {
		root := abs(t, filepath.Join(fixtureDir, "hybrid-cgroupfs"))
		mi := writeMountinfo(t,
			"32 31 0:29 / "+root+"/memory rw,relatime - cgroup cgroup rw,memory",
			"33 31 0:30 / "+root+"/blkio rw,relatime - cgroup cgroup rw,blkio",
			"34 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
			"41 31 0:38 / "+root+"/unified rw,relatime - cgroup2 cgroup2 rw")
		l, err := Discover(mi, "")
		if err != nil {
			t.Fatal(err)
		}
		want := Layout{V2: root + "/unified", V1: map[string]string{"memory": root + "/memory", "blkio": root + "/blkio"},
			V2Controllers: map[string]bool{"hugetlb": true}}
		if !reflect.DeepEqual(l, want) {
			t.Errorf("layout = %+v\nwant %+v", l, want)
		}
		if l.Mode() != ModeHybrid {
			t.Errorf("Mode = %s, want hybrid", l.Mode())
		}
	})
	t.Run("escaped mount point", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "my cgroup")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("memory io\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mi := writeMountinfo(t, "40 22 0:38 / "+strings.ReplaceAll(dir, " ", `\040`)+" rw - cgroup2 cgroup2 rw")
		l, err := Discover(mi, "")
		if err != nil {
			t.Fatal(err)
		}
		if l.V2 != dir || !l.V2Controllers["memory"] || !l.V2Controllers["io"] || len(l.V2Controllers) != 2 {
			t.Errorf("layout = %+v, want V2 %q with memory and io", l, dir)
		}
	})
	t.Run("first mount of a v1 controller wins", func(t *testing.T) {
		// the same hierarchy bind-mounted again later (a hostPath of the host's cgroups)
		mi := writeMountinfo(t,
			"35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
			"41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
			"90 27 0:32 / /host/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory")
		l, err := Discover(mi, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"memory": "/sys/fs/cgroup/memory"}; !reflect.DeepEqual(l.V1, want) {
			t.Errorf("V1 = %v, want %v", l.V1, want)
		}
	})
	t.Run("prefers the conventional mount", func(t *testing.T) {
		mi := writeMountinfo(t,
			"40 22 0:38 / /run/other rw - cgroup2 cgroup2 rw",
			"41 22 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw")
		l, err := Discover(mi, "")
		if err != nil {
			t.Fatal(err)
		}
		if l.V2 != "/sys/fs/cgroup" {
			t.Errorf("V2 = %q, want /sys/fs/cgroup", l.V2)
		}
	})
}

func TestLayoutModeAndControllerDir(t *testing.T) {
	v2root := "/fx/v2"
	v2 := FixtureLayout(v2root, []string{"cpu", "io", "memory", "pids"}, nil)
	hyb := FixtureLayout("/fx/h/unified", []string{"hugetlb"}, map[string]string{"memory": "/fx/h/memory", "blkio": "/fx/h/blkio"})
	bare := FixtureLayout("/fx/bare", nil, nil) // v2 with no controller enabled at the root

	if v2.Mode() != ModeV2 || hyb.Mode() != ModeHybrid || bare.Mode() != ModeV2 {
		t.Errorf("modes: v2=%s hybrid=%s bare=%s", v2.Mode(), hyb.Mode(), bare.Mode())
	}
	// memory in v2 wins even if v1 mounts exist (a v2 host with a leftover named hierarchy)
	mixed := FixtureLayout("/fx/m", []string{"memory"}, map[string]string{"blkio": "/fx/m1/blkio"})
	if mixed.Mode() != ModeV2 {
		t.Errorf("mode with memory in v2 and v1 blkio = %s, want v2", mixed.Mode())
	}

	const rel = "kubepods/burstable/podx/ctr"
	tests := []struct {
		name   string
		l      Layout
		ctrl   string
		dir    string
		isV2   bool
		wantOK bool
	}{
		{"v2 memory", v2, "memory", v2root + "/" + rel, true, true},
		{"v2 blkio is io", v2, "blkio", v2root + "/" + rel, true, true},
		{"v2 io", v2, "io", v2root + "/" + rel, true, true},
		{"v2 missing controller", v2, "hugetlb", "", false, false},
		{"hybrid memory", hyb, "memory", "/fx/h/memory/" + rel, false, true},
		{"hybrid blkio", hyb, "blkio", "/fx/h/blkio/" + rel, false, true},
		{"hybrid hugetlb in v2", hyb, "hugetlb", "/fx/h/unified/" + rel, true, true},
		{"hybrid cpu not mounted", hyb, "cpu", "", false, false},
		{"bare memory", bare, "memory", "", false, false},
		{"mixed blkio from v1", mixed, "blkio", "/fx/m1/blkio/" + rel, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, isV2, ok := tc.l.ControllerDir(tc.ctrl, rel)
			if dir != tc.dir || isV2 != tc.isV2 || ok != tc.wantOK {
				t.Errorf("ControllerDir(%s) = (%q, %v, %v), want (%q, %v, %v)", tc.ctrl, dir, isV2, ok, tc.dir, tc.isV2, tc.wantOK)
			}
		})
	}
	// The root of the hierarchy itself.
	if dir, _, ok := hyb.ControllerDir("memory", ""); !ok || dir != "/fx/h/memory" {
		t.Errorf("ControllerDir(memory, \"\") = %q %v", dir, ok)
	}
}

func TestRootRank(t *testing.T) {
	for root, want := range map[string]int{"/": 0, "/..": 1, "/../../..": 3, "/kubepods": -1, "/../kubepods": -1, "/..x": -1} {
		got, ok := rootRank(root)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("rootRank(%q) = %d, want %d", root, got, want)
		}
	}
}
