// Package window samples an event stream in time: the programs that time events (the
// syscall family's enter program, the softirqs family's two programs) are attached for Length
// at a random point of every n×Length and detached the rest of the time, so that the events
// outside the windows cost no program run at all (a program that only drew a random number
// would still cost a run on every event: bench/, "syscall: ways to count the tracked calls").
// An event is timed when it starts inside a window. The window's place in each period is
// drawn anew, so a periodic workload is not seen at the same phase every time.
package window

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Length is how long a window stays open.
const Length = 250 * time.Millisecond

// DefaultSample is the families' default latency_sample: windows open 1/16 of the time.
const DefaultSample = 16

// MaxSample bounds a latency_sample.
const MaxSample = 1 << 20

// Schedule runs the windows: attach at a random point of each period, detach Length later.
// Attach and detach errors are kept for Err (the family reports them at collection); the
// schedule goes on.
type Schedule struct {
	n              uint32
	attach, detach func() error
	rng            *rand.Rand
	stop, done     chan struct{}

	mu  sync.Mutex
	err error
}

// Start starts the schedule of a 1-in-n sample (n > 1) with the hooks detached.
func Start(n uint32, attach, detach func() error) *Schedule {
	w := &Schedule{n: n, attach: attach, detach: detach, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Offset is where the window opens in a period: uniform over the period minus the window.
func (w *Schedule) Offset() time.Duration {
	return time.Duration(w.rng.Int64N(int64(w.n-1)*int64(Length) + 1))
}

func (w *Schedule) run() {
	defer close(w.done)
	period := time.Duration(w.n) * Length
	// Deadlines from the period's start, so that the time attaching and detaching take
	// (detaching waits for the kernel's RCU grace periods: ~0.3 s here) does not stretch it.
	for start := time.Now(); ; start = start.Add(period) {
		if now := time.Now(); now.After(start) {
			start = now // a slow detach ran past the period: no catching up
		}
		off := w.Offset()
		if !w.sleep(time.Until(start.Add(off))) {
			return
		}
		w.keep(w.attach())
		open := w.sleep(time.Until(start.Add(off + Length)))
		w.keep(w.detach())
		if !open || !w.sleep(time.Until(start.Add(period))) {
			return
		}
	}
}

func (w *Schedule) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	}
}

func (w *Schedule) keep(err error) {
	if err != nil {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
}

// Err returns the last attach or detach error since the previous call, and forgets it.
func (w *Schedule) Err() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	w.err = nil
	if err != nil {
		return fmt.Errorf("latency window: %w", err)
	}
	return nil
}

// Stop ends the schedule, with the hooks detached.
func (w *Schedule) Stop() {
	if w == nil {
		return
	}
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
