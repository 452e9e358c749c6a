package pagefaults

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	. "github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"
)

func TestMajorFaults(t *testing.T) {
	v2 := V2Layout(filepath.Join(Fixtures, V2Tree))
	hy := HybridLayout(filepath.Join(Fixtures, HybridTree))
	for _, tc := range []struct {
		l    cgroupfs.Layout
		rel  string
		want uint64
	}{
		{v2, V2AppA, 37}, {v2, V2AppB, 2}, {v2, V2AppC, 412}, {v2, V2SbA, 0},
		{hy, HyAppA, 112}, {hy, HyAppG, 9}, {hy, HySbA, 0},
	} {
		if got, err := Read(tc.l, tc.rel); err != nil || got != tc.want {
			t.Errorf("Read(%s) = %d, %v; want %d", filepath.Base(tc.rel), got, err, tc.want)
		}
	}

	ts := Targets(t, v2.V2, V2AppA, V2AppC)
	res := mustNew(t, v2).CollectTargets(context.Background(), nil, ts)
	if res.Err() != nil || res.Values[ts[0].ID] != 37 || res.Values[ts[1].ID] != 412 || len(res.Values) != 2 {
		t.Errorf("FaultCollector = %v, %v", res.Values, res.Err())
	}

	root := CopyTree(t, filepath.Join(Fixtures, V2Tree))
	l := V2Layout(root)
	Write(t, filepath.Join(root, V2AppA, "memory.stat"), "anon 1\nfile 2\n")
	if _, err := Read(l, V2AppA); err == nil || !strings.Contains(err.Error(), `no "pgmajfault"`) {
		t.Errorf("missing pgmajfault: err = %v", err)
	}
	Write(t, filepath.Join(root, V2AppA, "memory.stat"), "pgmajfault many\n")
	if _, err := Read(l, V2AppA); err == nil || !strings.Contains(err.Error(), filepath.Join(root, V2AppA, "memory.stat")) {
		t.Errorf("malformed pgmajfault: err = %v", err)
	}
	if err := os.Remove(filepath.Join(root, V2AppA, "memory.stat")); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(l, V2AppA); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing memory.stat: err = %v", err)
	}
}

func TestNoMemoryController(t *testing.T) {
	l := cgroupfs.FixtureLayout(filepath.Join(Fixtures, V2Tree), []string{"cpu", "io"}, map[string]string{"blkio": "/x"})
	if _, err := Read(l, V2AppA); err == nil || !strings.Contains(err.Error(), "no memory controller") {
		t.Errorf("Read err = %v", err)
	}
	if _, err := New(l, nil); err == nil || !strings.Contains(err.Error(), "no memory cgroup controller") {
		t.Errorf("New err = %v", err)
	}
}

func mustNew(t *testing.T, l cgroupfs.Layout) *Collector {
	t.Helper()
	c, err := New(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
