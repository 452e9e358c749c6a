package kpodreceiver

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
)

// TestRealRuntimeBadInput: what a busy node does to a cycle, all in one cycle of the
// comprehensive profile: a pod removed between discovery and the families' reads, a pod
// removed while one of its cgroup files is open (the read then fails with ENODEV), and the
// oom family's map full (shrunk to one entry, two pods OOM-killed). None of it panics or
// fails the cycle: the removed pods are not read errors (the pod is gone, nothing was lost),
// the lost map update is counted exactly (kpod.bpf.map.update.errors: the node's OOM kills
// less the one stored), and the rest of the cycle is emitted: a steady pod has every series
// it had before.
func TestRealRuntimeBadInput(t *testing.T) {
	fakepod.RequireRoot(t)
	defer bpfload.ShrinkMapForTest("oom", "kpod_oom", 1)()
	cfg := createDefaultConfig().(*Config)
	cfg.Profile = ProfileComprehensive
	cfg.NodeName = "test-node"
	s := startScraper(t, cfg)
	steady := fakepod.New(t, fakepod.Options{})
	sc := steady.AddContainer()
	sc.Start("sleep").WaitReady()
	before := scrape(t, s)
	rm, ok := resourceOf(before, steady.UID, sc.ID)
	if !ok {
		t.Fatal("no series for the steady pod")
	}
	wantNames, _, _ := seriesOf(rm)

	oomBefore := fakepod.HostOOMKills(t)
	killed := fakepod.OOMKill(t, 2) // two cgroups' kills for a map of one
	vanish := fakepod.New(t, fakepod.Options{})
	vanish.AddContainer().Start("sleep").WaitReady()
	during := fakepod.New(t, fakepod.Options{})
	dc := during.AddContainer()
	dc.Start("sleep").WaitReady()

	var (
		mu       sync.Mutex
		readPath string // the file of the pod removed while it was open
		goneErr  error  // what a stat of its directory said right after
	)
	restoreHook := func() {}
	t.Cleanup(func() { restoreHook() })
	realScan := s.scan
	s.scan = func() (*podid.Index, error) {
		idx, err := realScan()
		if err != nil {
			return idx, err
		}
		found := 0
		for _, p := range idx.Pods {
			if p.UID == vanish.UID || p.UID == during.UID {
				found++
			}
		}
		if found != 2 {
			t.Errorf("discovery found %d of the two pods to remove", found)
		}
		vanish.Remove() // after discovery, before any family reads
		// The first memory file of the other pod that the memory family opens (it reads
		// through collector.ForEach, as every cgroup-file family): the pod is removed
		// between the open and the read.
		restoreHook = cgroupfs.BetweenOpenAndReadForTest(func(path string) {
			mu.Lock()
			first := readPath == "" && strings.Contains(path, dc.ID) && strings.HasPrefix(filepath.Base(path), "memory.")
			if first {
				readPath = path
			}
			mu.Unlock()
			if !first {
				return
			}
			during.Remove() // reads cgroup.procs itself: this hook runs again, and returns
			_, err := os.Stat(dc.V2Dir())
			mu.Lock()
			goneErr = err
			mu.Unlock()
		})
		return idx, nil
	}
	md, err := s.scrape(context.Background())
	kills := fakepod.HostOOMKills(t) - oomBefore
	restoreHook()
	s.scan = realScan
	failDump(t, md)
	if err != nil {
		t.Errorf("the cycle failed: %v", err)
	}
	mu.Lock()
	if readPath == "" {
		t.Errorf("no family opened a cgroup file of container %s: the removal during a read was not tested", dc.ID)
	} else if !errors.Is(goneErr, fs.ErrNotExist) {
		t.Errorf("%s was open when its pod was removed, but the cgroup is still there (%v)", readPath, goneErr)
	} else {
		t.Logf("pod removed while %s was open", readPath)
	}
	mu.Unlock()

	node := nodeResource(t, md)
	cannot, _ := unavailableHere(t)
	for _, r := range s.runners {
		if _, ok := cannot[r.info.name]; ok || r.f == nil {
			checkUnavailable(t, r, cannot)
			continue
		}
		c := map[string]string{"collector": r.info.name}
		if got := intValue(t, node, "kpod.cgroup.read.errors", c); got != 0 {
			t.Errorf("%s: %d cgroup read errors, want 0 (a removed pod is not an error)", r.info.name, got)
		}
		if got := intValue(t, node, "kpod.collector.errors", c); got != 0 {
			t.Errorf("%s: %d collector errors, want 0", r.info.name, got)
		}
	}
	if kills != len(killed) {
		t.Errorf("the node counted %d OOM kills during the test, want the %d of its pods", kills, len(killed))
	}
	if got := intValue(t, node, "kpod.bpf.map.update.errors", map[string]string{"map": "kpod_oom"}); got != int64(kills-1) {
		t.Errorf("the full kpod_oom map counted %d lost updates, want %d (the node's %d OOM kills less the one stored)", got, kills-1, kills)
	}
	// At least: discovery sees every pod of the node, other processes' test pods included.
	if got := intValue(t, node, "kpod.discovery.pods", nil); got < 5 {
		t.Errorf("kpod.discovery.pods = %d, want the 5 pods discovered in that cycle", got)
	}
	rm, ok = resourceOf(md, steady.UID, sc.ID)
	if !ok {
		t.Fatal("the steady pod is missing from the cycle")
	}
	names, _, _ := seriesOf(rm)
	for _, n := range wantNames {
		if !slices.Contains(names, n) {
			t.Errorf("the steady pod lost %s in the disturbed cycle", n)
		}
	}

	// The next cycle no longer sees the removed pods, and is clean as well.
	md = scrape(t, s)
	for _, uid := range []string{vanish.UID, during.UID} {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			if v, ok := md.ResourceMetrics().At(i).Resource().Attributes().Get("k8s.pod.uid"); ok && v.Str() == uid {
				t.Errorf("removed pod %s is still reported a cycle later", uid)
			}
		}
	}
}
