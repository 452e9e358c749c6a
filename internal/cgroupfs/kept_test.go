package cgroupfs

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestWalkerKeepsAtMost: past the limit of kept descriptors a Walker without watches opens
// the other directories for one listing only: the walk is complete, exactly the limit stays
// open, and Close gives every place back.
func TestWalkerKeepsAtMost(t *testing.T) {
	root := t.TempDir()
	for _, rel := range []string{"a/b/c", "d/e", "f"} {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want, err := Walk(root) // every directory opened for this walk only
	if err != nil || len(want) != 7 {
		t.Fatalf("Walk: %d directories, %v; want 7", len(want), err)
	}
	saved := keptMax
	limit := keptCount.Load() + 3
	keptMax = func() int64 { return limit }
	defer func() { keptMax = saved }()
	before, count := openFDs(t), keptCount.Load()
	w := Walker{noWatch: true}
	for i := range 2 {
		got, err := w.Walk(root)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("walk %d with a limit of 3 kept: %v, %v; want %v", i, got, err, want)
		}
		if w.Kept() != 3 || openFDs(t)-before != 3 || keptCount.Load()-count != 3 {
			t.Fatalf("walk %d: %d kept, %d more descriptors open, %d more counted; want 3 each", i, w.Kept(), openFDs(t)-before, keptCount.Load()-count)
		}
	}
	w.Close()
	if openFDs(t) != before || keptCount.Load() != count {
		t.Fatalf("after Close: %d more descriptors open, %d more counted; want 0", openFDs(t)-before, keptCount.Load()-count)
	}
}

// TestWalkerWatches: a watched directory is listed again only after a change of its
// subdirectories (mkdir, rmdir, rename in it; not a file written), every walk lists the tree
// as it is, an overflowed event queue makes every directory be listed again, and a walker
// whose inotify descriptor failed lists every directory at every walk.
func TestWalkerWatches(t *testing.T) {
	root := t.TempDir()
	for _, rel := range []string{"a/b/c", "d/e", "f"} {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fds, count := openFDs(t), keptCount.Load()
	var w Walker
	defer w.Close()
	step := func(name string, wantListed int) {
		t.Helper()
		before := w.Listed()
		got, err := w.Walk(root)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := Walk(root)
		if err != nil || !reflect.DeepEqual(sorted(got), sorted(want)) {
			t.Fatalf("%s: the watched walk lists\n%v\na fresh walk\n%v (%v)", name, got, want, err)
		}
		if n := w.Listed() - before; n != wantListed {
			t.Fatalf("%s: %d directories listed, want %d", name, n, wantListed)
		}
		// watched directories keep no descriptor: the walker holds its inotify descriptor
		if w.inotify >= 0 && (w.Kept() != 0 || openFDs(t)-fds != 1 || keptCount.Load() != count) {
			t.Fatalf("%s: %d kept, %d more descriptors open, %d more counted; want 0, 1 (inotify), 0", name, w.Kept(), openFDs(t)-fds, keptCount.Load()-count)
		}
	}
	mk := func(rel string) {
		if err := os.Mkdir(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(root, "a", "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("first walk", 7)
	step("unchanged", 0)
	if err := os.WriteFile(file, []byte("y"), 0o644); err != nil { // as kubelet writes cgroup files
		t.Fatal(err)
	}
	step("a file written", 0)
	mk("a/b/c/g")
	step("a leaf's first child", 2) // c and the new g
	if err := os.Rename(filepath.Join(root, "d", "e"), filepath.Join(root, "d", "e2")); err != nil {
		t.Fatal(err)
	}
	step("renamed", 2) // d, and e2 (a path not kept)
	if err := os.Remove(filepath.Join(root, "f")); err != nil {
		t.Fatal(err)
	}
	mk("f")
	step("removed and created again", 2) // root, and the new f
	if err := os.RemoveAll(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	step("subtree removed", 1) // root
	w.mu.Lock()
	overflow := make([]byte, unix.SizeofInotifyEvent)
	(*unix.InotifyEvent)(unsafe.Pointer(&overflow[0])).Wd, (*unix.InotifyEvent)(unsafe.Pointer(&overflow[0])).Mask = -1, unix.IN_Q_OVERFLOW
	w.handle(overflow)
	w.mu.Unlock()
	step("after a queue overflow", 4) // root, d, d/e2, f
	step("unchanged after the overflow", 0)
	w.mu.Lock()
	unix.Close(w.inotify) // the next read fails: watching stops
	w.mu.Unlock()
	step("inotify failed", 4)
	mk("d/e2/h")
	step("unwatched", 5)
	if w.inotify != -1 || len(w.byWD) != 0 || w.Kept() != 5 {
		t.Fatalf("after the failure: inotify %d, %d watches, %d kept; want -1, 0, 5", w.inotify, len(w.byWD), w.Kept())
	}
}

func sorted(d []Dir) []Dir {
	sort.Slice(d, func(i, j int) bool { return d[i].Rel < d[j].Rel })
	return d
}

// TestWalkerCloseUnstarted: Close of a Walker that never walked closes no descriptor (its
// zero inotify field is not a descriptor).
func TestWalkerCloseUnstarted(t *testing.T) {
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wr.Close()
	fd0, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Dup2(fd0, 0); unix.Close(fd0) }()
	if err := unix.Dup2(int(r.Fd()), 0); err != nil { // descriptor 0 is now the pipe
		t.Fatal(err)
	}
	var w Walker
	w.Close()
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err != nil {
		t.Fatalf("descriptor 0 after Close of an unstarted Walker: %v", err)
	}
}

// TestWalkerNoWatchAdded: where no watch can be added (here: no /proc/self/fd), every
// directory is kept open and listed at every walk, exactly, and the watch is not tried again.
func TestWalkerNoWatchAdded(t *testing.T) {
	root := t.TempDir()
	for _, rel := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	saved := procSelfFD
	procSelfFD = filepath.Join(root, "no-proc") + "/"
	defer func() { procSelfFD = saved }()
	var w Walker
	defer w.Close()
	for i, mk := range []string{"", "a/d", ""} {
		if mk != "" {
			if err := os.Mkdir(filepath.Join(root, mk), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		before := w.Listed()
		got, err := w.Walk(root)
		want, err2 := Walk(root)
		if err != nil || err2 != nil || !reflect.DeepEqual(sorted(got), sorted(want)) {
			t.Fatalf("walk %d: %v (%v); a fresh walk %v (%v)", i, got, err, want, err2)
		}
		if n := w.Listed() - before; n != len(want) || w.Kept() != len(want) || w.inotify < 0 || len(w.byWD) != 0 {
			t.Fatalf("walk %d: %d listed, %d kept, inotify %d, %d watches; want %d, %d, open, 0", i, n, w.Kept(), w.inotify, len(w.byWD), len(want), len(want))
		}
		for p, d := range w.dirs {
			if !d.nowd {
				t.Fatalf("walk %d: %s not marked as unwatchable", i, p)
			}
		}
	}
}
