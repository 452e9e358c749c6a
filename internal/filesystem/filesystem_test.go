package filesystem

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

func TestStorageMounts(t *testing.T) {
	path := "../../testdata/mountinfo/container.txt"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := StorageMounts(path, data)
	if err != nil {
		t.Fatal(err)
	}
	// overlay root and the volumes; the kubelet's single-file bind mounts are storage-backed
	// too (statfs drops them later, they are not directories); tmpfs, proc, sysfs, cgroup2,
	// devpts, mqueue are not storage; /data is mounted twice and listed once.
	want := []string{"/", "/data", "/etc/hosts", "/dev/termination-log", "/etc/hostname", "/etc/resolv.conf", "/cache dir"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StorageMounts =\n %q\nwant\n %q", got, want)
	}

	if _, err := StorageMounts("/proc/1/mountinfo", []byte("1520 1430 0:145 / / rw - overlay\n")); err == nil ||
		!strings.Contains(err.Error(), "/proc/1/mountinfo:1") {
		t.Errorf("malformed mountinfo: err = %v", err)
	}
	if got, err := StorageMounts("x", []byte("1 0 0:1 / /proc rw - proc proc rw\n")); err != nil || len(got) != 0 {
		t.Errorf("no storage mounts: %q, %v", got, err)
	}
}

// TestCollect reads a container through a fake /proc: its root is a directory of the test's
// filesystem, so the expected numbers are that filesystem's.
func TestCollect(t *testing.T) {
	proc, v2 := t.TempDir(), t.TempDir()
	cgroupfstest.Write(t, filepath.Join(proc, "2", "comm"), "kthreadd\n")
	cgroupfstest.Write(t, filepath.Join(proc, "2", "ns", "mnt"), "")

	cgroupfstest.Write(t, filepath.Join(v2, "pod/app/cgroup.procs"), "100\n")
	cgroupfstest.Write(t, filepath.Join(proc, "100", "ns", "mnt"), "")
	mi, err := os.ReadFile("../../testdata/mountinfo/container.txt")
	if err != nil {
		t.Fatal(err)
	}
	cgroupfstest.Write(t, filepath.Join(proc, "100", "mountinfo"), string(mi))
	root := filepath.Join(proc, "100", "root")
	cgroupfstest.Write(t, filepath.Join(root, "data", "f"), "x")
	cgroupfstest.Write(t, filepath.Join(root, "etc", "hosts"), "127.0.0.1 localhost\n") // a file: not reported
	// /dev/termination-log, /etc/hostname, /etc/resolv.conf and /cache dir do not exist: skipped

	cgroupfstest.Write(t, filepath.Join(v2, "host/app/cgroup.procs"), "200\n")
	cgroupfstest.Write(t, filepath.Join(proc, "200", "mountinfo"), string(mi))
	if err := os.MkdirAll(filepath.Join(proc, "200", "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(proc, "2", "ns", "mnt"), filepath.Join(proc, "200", "ns", "mnt")); err != nil {
		t.Fatal(err)
	}
	cgroupfstest.Write(t, filepath.Join(v2, "idle/app/cgroup.procs"), "")
	cgroupfstest.Write(t, filepath.Join(v2, "bad/app/cgroup.procs"), "300\n")
	cgroupfstest.Write(t, filepath.Join(proc, "300", "ns", "mnt"), "")
	cgroupfstest.Write(t, filepath.Join(proc, "300", "mountinfo"), "not a mountinfo line\n")

	targets := []struct {
		id  uint64
		rel string
	}{{1, "pod/app"}, {2, "host/app"}, {3, "idle/app"}, {4, "bad/app"}}
	var ts []cgroupfs.Target
	for _, tg := range targets {
		ts = append(ts, cgroupfs.Target{ID: tg.id, Rel: tg.rel})
	}
	res := New(proc, v2).CollectTargets(context.Background(), ts)
	if len(res.Errs) != 1 || !strings.Contains(res.Errs[0].Error(), filepath.Join(proc, "300", "mountinfo")) {
		t.Errorf("errors %v, want one naming pid 300's mountinfo", res.Errs)
	}
	if len(res.Values) != 1 {
		t.Fatalf("values %v, want only target 1 (host namespace, idle and broken skipped)", res.Values)
	}
	got := res.Values[1]
	if len(got) != 2 {
		t.Fatalf("mount points %v, want / and /data", got)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	bs := uint64(st.Frsize)
	for _, mp := range []string{"/", "/data"} {
		u, ok := got[mp]
		if !ok {
			t.Errorf("no usage for %s", mp)
			continue
		}
		if u.Capacity != st.Blocks*bs {
			t.Errorf("%s capacity %d, want %d", mp, u.Capacity, st.Blocks*bs)
		}
		if u.Used > u.Capacity || u.Available > u.Capacity || u.Used+u.Available > u.Capacity || u.Capacity == 0 {
			t.Errorf("%s usage inconsistent: %+v", mp, u)
		}
	}
}

// TestStorageMountsOvermount: the last mount on a point is the visible one.
func TestStorageMountsOvermount(t *testing.T) {
	data := []byte(`1 0 254:1 / / rw - ext4 /dev/vda rw
2 1 254:2 / /data rw - ext4 /dev/vdb rw
3 2 0:40 / /data rw - tmpfs tmpfs rw
4 1 0:41 / /cache rw - tmpfs tmpfs rw
5 4 254:3 / /cache rw - xfs /dev/vdc rw
`)
	got, err := StorageMounts("mountinfo", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/cache"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v (a tmpfs over /data hides the ext4 volume; xfs over tmpfs on /cache is storage)", got, want)
	}
}
