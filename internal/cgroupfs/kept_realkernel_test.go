package cgroupfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// cgroupDir creates an empty cgroup below the v2 root, removed at the end of the test.
func cgroupDir(t *testing.T) string {
	t.Helper()
	fakepod.RequireRoot(t)
	dir := filepath.Join(fakepod.HostLayout(t).V2, "kpod-test-"+fakepod.RandHex(4))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Children first: the walker test nests.
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := fakepod.RemoveCgroup(dirs[i]); err != nil {
				t.Error(err)
			}
		}
	})
	return dir
}

// openCount is how many of this process's descriptors are open on path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	return fakepod.OpenFiles(t, 0, func(target string) bool { return target == path })
}

func write(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatal(err)
	}
}

func readKept(t *testing.T, path, want string) {
	t.Helper()
	b, err := cgroupfs.ReadKept(path)
	if err != nil || string(b) != want {
		t.Fatalf("ReadKept(%s) = %q, %v; want %q", path, b, err, want)
	}
}

// TestRealReadKept: a cgroup file read with ReadKept stays open, each read sees what the file
// says now, a removed cgroup's file is opened afresh (and the new cgroup at the same path is
// read), a file of a removed cgroup reads as not existing, and CloseUnread closes what two
// collections in a row did not read.
func TestRealReadKept(t *testing.T) {
	dir := cgroupDir(t)
	file := filepath.Join(dir, "cgroup.max.depth") // writable: the test changes what it says
	readKept(t, file, "max\n")
	if n := openCount(t, file); n != 1 {
		t.Fatalf("%d descriptors open on %s after a read, want 1 (kept)", n, file)
	}
	write(t, file, "5")
	readKept(t, file, "5\n")
	if n := openCount(t, file); n != 1 {
		t.Fatalf("%d descriptors open on %s after a second read, want the same 1", n, file)
	}

	// The same path, another cgroup: the kept descriptor reads ENODEV and is replaced.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, file, "7")
	readKept(t, file, "7\n")
	if n := openCount(t, file); n != 1 {
		t.Fatalf("%d descriptors open on %s after the cgroup was created again, want 1", n, file)
	}

	// Gone: not-exist, and nothing left open.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := cgroupfs.ReadKept(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadKept of a removed cgroup's file: %v, want not-exist", err)
	}
	if n := openCount(t, file); n != 0 {
		t.Fatalf("%d descriptors still open on %s after its cgroup was removed", n, file)
	}

	// CloseUnread: kept through the collection that read it, closed after one that did not.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	readKept(t, file, "max\n")
	cgroupfs.CloseUnread()
	if n := openCount(t, file); n != 1 {
		t.Fatalf("%d descriptors open on %s after the collection that read it, want 1", n, file)
	}
	cgroupfs.CloseUnread()
	if n := openCount(t, file); n != 0 {
		t.Fatalf("%d descriptors open on %s after a collection that did not read it, want 0", n, file)
	}

	// Elsewhere than a cgroup file system nothing is kept: a file replaced by a rename is
	// read anew (a kept descriptor would read the old one).
	tmp := filepath.Join(t.TempDir(), "f")
	write(t, tmp, "1\n")
	readKept(t, tmp, "1\n")
	if n := openCount(t, tmp); n != 0 {
		t.Fatalf("%d descriptors kept open on %s, not on a cgroup file system", n, tmp)
	}
	write(t, tmp+".new", "2\n")
	if err := os.Rename(tmp+".new", tmp); err != nil {
		t.Fatal(err)
	}
	readKept(t, tmp, "2\n")
}

// TestRealWalker: a Walker that keeps the directories open lists, walk after walk, exactly
// what a fresh walk of the tree finds (names and inodes), through a child added to a leaf,
// a cgroup removed and created again at the same path, and removals; it keeps one
// descriptor per directory and closes those of removed directories.
func TestRealWalker(t *testing.T) {
	root := cgroupDir(t)
	mk := func(rels ...string) {
		for _, rel := range rels {
			if err := os.Mkdir(filepath.Join(root, rel), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	rm := func(rels ...string) {
		for _, rel := range rels {
			if err := os.Remove(filepath.Join(root, rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	watched, unwatched := &cgroupfs.Walker{}, cgroupfs.NewUnwatchedWalker()
	defer watched.Close()
	defer unwatched.Close()
	// listed: how many directories each walker lists (getdents) at this step. The watched one
	// lists those with a subdirectory created or removed since its last walk, and new ones;
	// the other lists every directory with subdirectories (a leaf's link count says it has
	// none).
	check := func(step string, wantDirs, listedWatched, listedUnwatched int) {
		t.Helper()
		want := reference(t, root)
		for _, c := range []struct {
			name   string
			w      *cgroupfs.Walker
			listed int
		}{{"watched", watched, listedWatched}, {"unwatched", unwatched, listedUnwatched}} {
			before := c.w.Listed()
			got, err := c.w.Walk(root)
			if err != nil {
				t.Fatalf("%s, %s: %v", step, c.name, err)
			}
			sortDirs(got)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: the kept walk (%s) lists\n%v\na fresh walk\n%v", step, c.name, got, want)
			}
			kept := wantDirs // watched directories keep no descriptor
			if c.w == watched {
				kept = 0
			}
			if len(got) != wantDirs || c.w.Kept() != kept {
				t.Fatalf("%s, %s: %d directories, %d kept open; want %d, %d", step, c.name, len(got), c.w.Kept(), wantDirs, kept)
			}
			if n := c.w.Listed() - before; n != c.listed {
				t.Fatalf("%s, %s: %d directories listed; want %d", step, c.name, n, c.listed)
			}
		}
	}
	mk("p1", "p1/c1", "p2")
	check("first walk", 4, 4, 2)                                         // root, p1
	check("unchanged", 4, 0, 2)                                          // cgroupfs notifies kpod of nothing it did itself
	write(t, filepath.Join(root, "p1", "cgroup.max.descendants"), "max") // a file written: no event asked for
	check("a file written", 4, 0, 2)
	mk("p2/c2")                             // p2 was a leaf: its link count now says it has a child
	check("child added to a leaf", 5, 2, 3) // p2, c2 (new) | root, p1, p2
	rm("p1/c1")
	mk("p1/c1")                                 // same path, another cgroup (another inode)
	check("removed and created again", 5, 2, 3) // p1, the new c1
	mk("p1/c1/n1")
	check("nested below the new one", 6, 2, 4) // c1, n1 | root, p1, p2, c1
	rm("p2/c2", "p2", "p1/c1/n1")
	check("removed", 3, 2, 2) // root, c1 | root, p1
}

// reference lists the tree with a fresh stat of every directory, as Walk reports it.
func reference(t *testing.T, root string) []cgroupfs.Dir {
	t.Helper()
	var out []cgroupfs.Dir
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		out = append(out, cgroupfs.Dir{Rel: rel, ID: cgroupfstest.Inode(t, p)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sortDirs(out)
	return out
}

func sortDirs(d []cgroupfs.Dir) { sort.Slice(d, func(i, j int) bool { return d[i].Rel < d[j].Rel }) }
