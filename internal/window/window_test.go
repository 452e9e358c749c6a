package window

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// TestWindowOffset: a window opens anywhere in its period that leaves room for the whole
// window, so the hooks are attached Length out of every n×Length.
func TestWindowOffset(t *testing.T) {
	for _, n := range []uint32{2, 16, MaxSample} {
		w := &Schedule{n: n, rng: rand.New(rand.NewPCG(1, uint64(n)))}
		last := (int64(n) - 1) * int64(Length)
		for range 10000 {
			if off := w.Offset(); off < 0 || int64(off) > last {
				t.Fatalf("n=%d: window at %v, want within [0, %v]", n, off, last)
			}
		}
	}
}

// TestWindowsAttachDetach: the schedule attaches, detaches after the window, reports an
// attach error once (and goes on), and Stop returns with the hooks detached.
func TestWindowsAttachDetach(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	attached := make(chan struct{}, 16)
	fail := true
	w := Start(2,
		func() error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, "attach")
			attached <- struct{}{}
			if fail {
				fail = false
				return errors.New("no tracefs")
			}
			return nil
		},
		func() error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, "detach")
			return nil
		})
	<-attached
	<-attached // the second window: the first one's error did not stop the schedule
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(calls, " "); got != "attach detach attach detach" {
		t.Errorf("calls %q, want two windows, each attach then detach", got)
	}
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "latency window: no tracefs") {
		t.Errorf("Err() = %v, want the attach error", err)
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err() again = %v, want nil (reported once)", err)
	}
}
