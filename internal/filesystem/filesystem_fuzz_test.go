package filesystem

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/fuzzseed"
)

// FuzzStorageMounts: the mount points a container's mountinfo gives kpod to statfs. A
// malformed file is the parser's error; otherwise every mount point is listed once, in the
// order of its first mount, exactly when its last mount is storage-backed; and each is an
// absolute clean path, so that /proc/<pid>/root joined with it stays inside the container.
func FuzzStorageMounts(f *testing.F) {
	const dir = "../../testdata/mountinfo"
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			f.Add(b)
		}
	}
	for _, b := range fuzzseed.Proc("/proc", "mountinfo", 8) {
		f.Add(b)
	}
	const path = "/proc/4242/mountinfo"
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := StorageMounts(path, data)
		mounts, perr := cgroupfs.ParseMountinfo(path, data)
		if perr != nil {
			if err == nil || err.Error() != perr.Error() {
				t.Fatalf("StorageMounts = %q, %v; want the parser's error %v", got, err, perr)
			}
			return
		}
		if err != nil {
			t.Fatalf("StorageMounts: %v", err)
		}
		last := map[string]string{}
		var order []string
		for _, m := range mounts {
			if _, seen := last[m.MountPoint]; !seen {
				order = append(order, m.MountPoint)
			}
			last[m.MountPoint] = m.FSType
		}
		var want []string
		for _, mp := range order {
			if !skipTypes[last[mp]] {
				want = append(want, mp)
			}
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
			t.Fatalf("StorageMounts = %q, want %q", got, want)
		}
		const root = "/proc/4242/root"
		for _, mp := range got {
			if j := filepath.Join(root, mp); !strings.HasPrefix(j+"/", root+"/") || filepath.Clean(mp) != mp || !filepath.IsAbs(mp) {
				t.Fatalf("mount point %q is not an absolute clean path (statfs would look at %s)", mp, j)
			}
		}
	})
}

// TestStorageMountsFuzzFindings: a mount point that is not an absolute clean path was
// listed, and statfs looked at /proc/<pid>/root joined with it: "0" below the container's
// root, "/../../.." at the node's own root, reported as the container's. The kernel never
// writes one, so the line is malformed.
func TestStorageMountsFuzzFindings(t *testing.T) {
	const path = "/proc/4242/mountinfo"
	for _, mp := range []string{"0", "/../../..", "/data/../../etc", "/data/", "//data", "/./x", "", `\040`} {
		data := "1520 1430 0:145 / " + mp + " rw - ext4 /dev/vda1 rw\n"
		if mp == "" {
			data = "1520 1430 0:145 /  rw - ext4 /dev/vda1 rw\n"
		}
		got, err := StorageMounts(path, []byte(data))
		if err == nil || !strings.Contains(err.Error(), path+":1") {
			t.Errorf("mount point %q: %q, %v; want an error naming %s:1", mp, got, err, path)
		}
	}
}
