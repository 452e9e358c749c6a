package syscall

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Latency is sampled in time, not call by call: with latency_sample n > 1 the enter program,
// the only one that times, is attached for Window at a random point of every n×Window and
// detached the rest of the time, so that the calls outside the windows cost no enter program
// at all (an enter program that only drew a random number still cost a program run on every
// tracked call: bench/, "syscall: ways to count the tracked calls"). A call is timed when it
// enters inside a window, whatever it lasts: its exit, always attached, finds the stamp. The
// window's place in each period is drawn anew, so a periodic workload is not seen at the same
// phase every time.
const Window = 250 * time.Millisecond

// Windows runs the schedule: attach at a random point of each period, detach Window later.
// Attach and detach errors are kept for Err (the family reports them at collection); the
// schedule goes on.
type Windows struct {
	n              uint32
	attach, detach func() error
	rng            *rand.Rand
	stop, done     chan struct{}

	mu  sync.Mutex
	err error
}

// StartWindows starts the schedule of a 1-in-n sample (n > 1) with the hooks detached.
func StartWindows(n uint32, attach, detach func() error) *Windows {
	w := &Windows{n: n, attach: attach, detach: detach, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Offset is where the window opens in a period: uniform over the period minus the window.
func (w *Windows) Offset() time.Duration {
	return time.Duration(w.rng.Int64N(int64(w.n-1)*int64(Window) + 1))
}

func (w *Windows) run() {
	defer close(w.done)
	period := time.Duration(w.n) * Window
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
		open := w.sleep(time.Until(start.Add(off + Window)))
		w.keep(w.detach())
		if !open || !w.sleep(time.Until(start.Add(period))) {
			return
		}
	}
}

func (w *Windows) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	}
}

func (w *Windows) keep(err error) {
	if err != nil {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
}

// Err returns the last attach or detach error since the previous call, and forgets it.
func (w *Windows) Err() error {
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
func (w *Windows) Stop() {
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
