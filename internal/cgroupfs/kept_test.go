package cgroupfs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestWalkerKeepsAtMost: past the limit of kept descriptors a Walker opens the other
// directories for one listing only: the walk is complete, exactly the limit stays open,
// and Close gives every place back.
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
	var w Walker
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
