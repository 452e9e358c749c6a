package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

func mkdirs(t *testing.T, root string, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// readFile is a typical family read: one number from a file in the cgroup directory.
func readFile(root string) func(cgroupfs.Target) (string, error) {
	return func(t cgroupfs.Target) (string, error) {
		b, err := os.ReadFile(filepath.Join(root, t.Rel, "value"))
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", t.Rel, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

func TestForEach(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a", "b", "c", "nofile", "skip")
	for rel, v := range map[string]string{"a": "1", "b": "2", "c": "3"} {
		if err := os.WriteFile(filepath.Join(root, rel, "value"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	errBroken := errors.New("broken file")
	base := readFile(root)
	read := func(tg cgroupfs.Target) (string, error) {
		switch tg.Rel {
		case "b":
			return "", errBroken
		case "skip":
			return "", fmt.Errorf("container %s has no processes: %w", tg.Rel, ErrSkip)
		}
		return base(tg)
	}
	targets := []cgroupfs.Target{
		{ID: 1, Rel: "a"},
		{ID: 2, Rel: "b"},      // fails: reported
		{ID: 3, Rel: "gone"},   // directory removed after discovery: silent
		{ID: 4, Rel: "nofile"}, // directory there, file missing: a real error
		{ID: 5, Rel: "skip"},   // ErrSkip: silent, no value
		{ID: 6, Rel: "c"},      // after the failures: still read
	}
	res := ForEach(context.Background(), root, targets, read)
	if want := map[uint64]string{1: "1", 6: "3"}; !reflect.DeepEqual(res.Values, want) {
		t.Errorf("Values = %v, want %v", res.Values, want)
	}
	if len(res.Errs) != 2 {
		t.Fatalf("Errs = %v, want 2 (b and nofile)", res.Errs)
	}
	if !errors.Is(res.Errs[0], errBroken) {
		t.Errorf("first error %v, want the broken file", res.Errs[0])
	}
	if !errors.Is(res.Errs[1], fs.ErrNotExist) || !strings.Contains(res.Errs[1].Error(), "nofile") {
		t.Errorf("second error %v, want the missing file of nofile", res.Errs[1])
	}
	joined := res.Err()
	if !errors.Is(joined, errBroken) || !errors.Is(joined, fs.ErrNotExist) {
		t.Errorf("Err() = %v does not wrap both errors", joined)
	}

	ok := ForEach(context.Background(), root, targets[:1], read)
	if ok.Err() != nil || len(ok.Errs) != 0 {
		t.Errorf("no failures: Err() = %v", ok.Err())
	}
	empty := ForEach(context.Background(), root, nil, read)
	if empty.Values == nil || len(empty.Values) != 0 || empty.Err() != nil {
		t.Errorf("no targets: %+v", empty)
	}
}

func TestForEachCancelled(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a", "b", "c")
	targets := []cgroupfs.Target{{ID: 1, Rel: "a"}, {ID: 2, Rel: "b"}, {ID: 3, Rel: "c"}}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	res := ForEach(ctx, root, targets, func(cgroupfs.Target) (int, error) { calls++; return 1, nil })
	if calls != 0 || len(res.Values) != 0 {
		t.Errorf("cancelled before start: %d reads, values %v", calls, res.Values)
	}
	if len(res.Errs) != 1 || !errors.Is(res.Errs[0], context.Canceled) {
		t.Errorf("Errs = %v, want [context.Canceled]", res.Errs)
	}

	// Cancelled (or timed out) during the loop: what was read is kept, the rest is not read.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var read []string
	res = ForEach(ctx, root, targets, func(tg cgroupfs.Target) (int, error) {
		read = append(read, tg.Rel)
		if tg.Rel == "a" {
			cancel()
		}
		return int(tg.ID), nil
	})
	if !reflect.DeepEqual(read, []string{"a"}) {
		t.Errorf("read %v after cancel, want only a", read)
	}
	if !reflect.DeepEqual(res.Values, map[uint64]int{1: 1}) {
		t.Errorf("Values = %v, want {1: 1}", res.Values)
	}
	if len(res.Errs) != 1 || !errors.Is(res.Errs[0], context.Canceled) {
		t.Errorf("Errs = %v, want [context.Canceled]", res.Errs)
	}
}

// TestForEachV1DirGone: on a hybrid host a family reads a v1 file (memory.stat below
// /sys/fs/cgroup/memory) of a pod whose v1 directory the runtime removed while its v2
// directory is still there: the pod is going away, not a read error. A missing file in a
// directory that is still there stays an error.
func TestForEachV1DirGone(t *testing.T) {
	v2, v1 := t.TempDir(), t.TempDir()
	mkdirs(t, v2, "pod/ctr", "pod/other")
	mkdirs(t, v1, "pod/other")
	read := func(tg cgroupfs.Target) (int, error) {
		b, err := os.ReadFile(filepath.Join(v1, tg.Rel, "memory.stat"))
		if err != nil {
			return 0, fmt.Errorf("memory: %w", err)
		}
		return len(b), nil
	}
	res := ForEach(context.Background(), v2, []cgroupfs.Target{{ID: 1, Rel: "pod/ctr"}, {ID: 2, Rel: "pod/other"}}, read)
	if len(res.Values) != 0 || len(res.Errs) != 1 || !strings.Contains(res.Errs[0].Error(), filepath.Join("pod", "other", "memory.stat")) {
		t.Errorf("Values %v, Errs %v; want only the missing file of pod/other as an error", res.Values, res.Errs)
	}
}

func TestGone(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "here")
	if Gone(root, "here") {
		t.Error("Gone(here) = true")
	}
	if !Gone(root, "there") {
		t.Error("Gone(there) = false")
	}
}

func TestHostNamespace(t *testing.T) {
	write := func(path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("kthreadd\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ino := func(path string) uint64 {
		t.Helper()
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return info.Sys().(*syscall.Stat_t).Ino
	}

	proc := t.TempDir()
	write(filepath.Join(proc, "2", "comm"))
	write(filepath.Join(proc, "2", "ns", "net"))
	write(filepath.Join(proc, "1", "comm"))
	write(filepath.Join(proc, "1", "ns", "net"))
	got, err := HostNamespace(proc, "net")
	if err != nil || got != ino(filepath.Join(proc, "2", "ns", "net")) {
		t.Errorf("HostNamespace = %d, %v; want kthreadd's", got, err)
	}

	// pid 2 is not kthreadd (a /proc of a pid namespace): fall back to pid 1
	if err := os.WriteFile(filepath.Join(proc, "2", "comm"), []byte("bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = HostNamespace(proc, "net")
	if err != nil || got != ino(filepath.Join(proc, "1", "ns", "net")) {
		t.Errorf("HostNamespace with pid 2 not kthreadd = %d, %v; want pid 1's", got, err)
	}

	if _, err := HostNamespace(t.TempDir(), "mnt"); err == nil || !strings.Contains(err.Error(), "hostPID") {
		t.Errorf("empty proc: err = %v", err)
	}
}

// TestForEachDirRemovedAfterRead: the file is missing while its directory still exists, and
// the directory goes a moment later (kernfs removes a cgroup's files first): skipped, not an
// error. A directory that stays is still an error (TestForEach's "nofile").
func TestForEachDirRemovedAfterRead(t *testing.T) {
	v2, v1 := t.TempDir(), t.TempDir()
	mkdirs(t, v2, "pod/ctr")
	mkdirs(t, v1, "pod/ctr")
	read := func(tg cgroupfs.Target) (int, error) {
		_, err := os.ReadFile(filepath.Join(v1, tg.Rel, "memory.stat"))
		go func() {
			time.Sleep(15 * time.Millisecond)
			_ = os.Remove(filepath.Join(v1, tg.Rel))
		}()
		return 0, fmt.Errorf("memory: %w", err)
	}
	res := ForEach(context.Background(), v2, []cgroupfs.Target{{ID: 1, Rel: "pod/ctr"}}, read)
	if len(res.Values) != 0 || len(res.Errs) != 0 {
		t.Errorf("Values %v, Errs %v; want neither (the directory went after the read)", res.Values, res.Errs)
	}
}

// TestForEachRecheckOnce: files missing in cgroups that stay are errors, each one, and a
// cgroup removed while the others are re-checked is not; all are re-checked together.
func TestForEachRecheckOnce(t *testing.T) {
	v2 := t.TempDir()
	mkdirs(t, v2, "stay/a", "stay/b", "going/c")
	read := func(tg cgroupfs.Target) (int, error) {
		_, err := os.ReadFile(filepath.Join(v2, tg.Rel, "memory.stat"))
		if tg.Rel == "going/c" {
			go func() {
				time.Sleep(15 * time.Millisecond)
				_ = os.Remove(filepath.Join(v2, tg.Rel))
			}()
		}
		return 0, fmt.Errorf("memory: %w", err)
	}
	targets := []cgroupfs.Target{{ID: 1, Rel: "stay/a"}, {ID: 2, Rel: "going/c"}, {ID: 3, Rel: "stay/b"}}
	res := ForEach(context.Background(), v2, targets, read)
	if len(res.Values) != 0 || len(res.Errs) != 2 {
		t.Fatalf("Values %v, Errs %v; want the two errors of stay/a and stay/b", res.Values, res.Errs)
	}
	for i, want := range []string{"stay/a", "stay/b"} {
		if !errors.Is(res.Errs[i], fs.ErrNotExist) || !strings.Contains(res.Errs[i].Error(), want) {
			t.Errorf("error %d: %v, want %s's ENOENT", i, res.Errs[i], want)
		}
	}
}

func TestMet(t *testing.T) {
	var m Met
	if m.Before(1) {
		t.Fatal("met before any collection")
	}
	m.Add(1)
	m.Add(2)
	if m.Before(1) {
		t.Fatal("met before the collection that met it ended")
	}
	m.Done()
	if !m.Before(1) || !m.Before(2) || m.Before(3) {
		t.Fatalf("after one collection: %v %v %v, want true true false", m.Before(1), m.Before(2), m.Before(3))
	}
	m.Add(2) // 1 is gone: forgotten, its inode free for a new namespace
	m.Done()
	if m.Before(1) || !m.Before(2) {
		t.Fatalf("after two collections: %v %v, want false true", m.Before(1), m.Before(2))
	}
	m.Done() // a collection that met nothing (or was cancelled before any namespace)
	if m.Before(2) {
		t.Fatal("a namespace not met in the last collection is remembered")
	}
}
