//go:build bench

package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/tcp"
)

// The tcp family's per-socket path costs nothing per segment; what it costs instead is, at
// every collection, one walk of the sockets it knows (kpod_twalk, every namespace at once;
// internal/tcp: walk), or, where that cannot load, a BPF iterator over the TCP sockets of each
// pod's network namespace (internal/tcp: iterate). Both are userspace-driven, once per
// collection, so they are measured here per run at a number of established sockets, not in
// pairs.

type iterPoint struct {
	Conns     int       // loopback connections held open by kbench conns (two sockets each)
	Records   int       // records the iterator wrote (established sockets of the namespace, the host's own included)
	First     float64   // s: the first run (it creates the socket storage of every socket)
	Runs      []float64 // s per run after that
	ProgRuns  float64   // program runs per iterator run (BPF statistics): sockets visited
	ProgNsRun float64   // ns per program run
	// The walk of the known sockets (kpod_twalk) after the iterator's runs: s per run, and
	// the entries it met (the sockets the family knows then, every namespace's).
	Walks     []float64 `json:",omitempty"`
	WalkMet   int       `json:",omitempty"`
	WalkError string    `json:",omitempty"`
}

type iterResult struct {
	Points []*iterPoint
	// The iterator in new network namespaces holding no socket, as a pod's that has none:
	// with the established hash all namespaces share, and with one of its own.
	Empty []*nsIterPoint `json:",omitempty"`
	Error string
}

// nsIterPoint is the iterator run in a new network namespace with no sockets. ChildEhash 0:
// the namespace uses the established hash every namespace shares; > 0: it was created with
// net.ipv4.tcp_child_ehash_entries at that value (6.1+) and has a hash of its own.
type nsIterPoint struct {
	ChildEhash int
	Runs       []float64 // s per run
	// The host's "TCP:" line of /proc/net/sockstat before the runs: the host's sockets are in
	// the shared hash too, and a walk from another namespace passes over each of them.
	HostTCP string `json:",omitempty"`
	Error   string `json:",omitempty"`
}

const childEhashSysctl = "/proc/sys/net/ipv4/tcp_child_ehash_entries"

// iterInNewNS runs the iterator (once) runs times in a new network namespace, on a thread of
// its own that ends with it (and the namespace with the thread).
func iterInNewNS(once func() (int, time.Duration, error), childEhash, runs int) *nsIterPoint {
	p := &nsIterPoint{ChildEhash: childEhash, HostTCP: hostTCP()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unshareNet(childEhash); err != nil {
			p.Error = err.Error()
			return
		}
		for i := 0; i < runs; i++ {
			recs, d, err := once()
			if err == nil && recs != 0 {
				err = fmt.Errorf("%d records in a namespace with no sockets", recs)
			}
			if err != nil {
				p.Error = err.Error()
				return
			}
			p.Runs = append(p.Runs, d.Seconds())
		}
	}()
	<-done
	return p
}

// hostTCP is the "TCP:" line of this process's network namespace's sockstat (the host's).
func hostTCP() string {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "TCP: "); ok {
			return rest
		}
	}
	return ""
}

// unshareNet moves the calling thread into a new network namespace; with childEhash > 0 the
// host's tcp_child_ehash_entries is that value while the namespace is created, and restored
// right after (through a descriptor opened in the host's namespace: /proc/sys/net is the
// opener's).
func unshareNet(childEhash int) error {
	if childEhash == 0 {
		return unix.Unshare(unix.CLONE_NEWNET)
	}
	f, err := os.OpenFile(childEhashSysctl, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	old := make([]byte, 32)
	n, err := f.ReadAt(old, 0)
	if err != nil && err != io.EOF {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(childEhash)), 0); err != nil {
		return fmt.Errorf("%s: %w", childEhashSysctl, err)
	}
	uerr := unix.Unshare(unix.CLONE_NEWNET)
	if _, err := f.WriteAt(bytes.TrimSpace(old[:n]), 0); err != nil {
		return fmt.Errorf("restoring %s: %w", childEhashSysctl, err)
	}
	return uerr
}

// runIterCost loads the tcp family's per-socket object (tcp.SocketSpec) and runs its
// iterator in this process's (the host's) network namespace with n loopback connections
// open, for each n.
func runIterCost(kbench string, c *benchContainer, counts []int, runs int) *iterResult {
	res := &iterResult{}
	obj, err := bpfload.Load(tcp.SocketSpec())
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer obj.Close()
	it, ok := obj.Iter("kpod_titer")
	if !ok {
		res.Error = "tcp.SocketSpec has no kpod_titer iterator"
		return res
	}
	var prog *ebpf.Program
	for _, p := range obj.Programs {
		if p.Name == "kpod_titer_i" {
			prog = p.Prog
		}
	}
	size := binary.Size(tcp.TcpTcpRec{})
	once := func() (int, time.Duration, error) {
		t0 := time.Now()
		rd, err := it.Open()
		if err != nil {
			return 0, 0, err
		}
		b, err := io.ReadAll(rd)
		rd.Close()
		return len(b) / size, time.Since(t0), err
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer stats.Close()
	for _, n := range counts {
		pt := &iterPoint{Conns: n}
		res.Points = append(res.Points, pt)
		stop, err := holdConns(kbench, c, n)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		recs, d, err := once()
		pt.Records, pt.First = recs, d.Seconds()
		var st0 *ebpf.ProgramStats
		if prog != nil {
			st0, _ = prog.Stats()
		}
		for i := 0; i < runs && err == nil; i++ {
			_, d, err = once()
			pt.Runs = append(pt.Runs, d.Seconds())
		}
		if prog != nil && st0 != nil && len(pt.Runs) > 0 {
			if st1, e := prog.Stats(); e == nil && st1.RunCount > st0.RunCount {
				pt.ProgRuns = float64(st1.RunCount-st0.RunCount) / float64(len(pt.Runs))
				pt.ProgNsRun = float64(st1.Runtime-st0.Runtime) / float64(st1.RunCount-st0.RunCount)
			}
		}
		for i := 0; i < runs && err == nil; i++ {
			t0 := time.Now()
			met, werr := obj.Run("kpod_twalk", uint64(i+1))
			if werr != nil {
				pt.WalkError = werr.Error()
				break
			}
			pt.Walks, pt.WalkMet = append(pt.Walks, time.Since(t0).Seconds()), int(met)
		}
		stop()
		if err != nil {
			res.Error = err.Error()
			return res
		}
	}
	for _, ce := range []int{0, 1024} {
		res.Empty = append(res.Empty, iterInNewNS(once, ce, runs))
	}
	logf("iterator cost measured at %v connections and in empty namespaces", counts)
	return res
}

// holdConns runs `kbench conns n` in container c until stop is called.
func holdConns(kbench string, c *benchContainer, n int) (stop func(), err error) {
	if n == 0 {
		return func() {}, nil
	}
	cmd := exec.Command(kbench, "conns", strconv.Itoa(n))
	cmd.Env = c.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	notePID(cmd.Process.Pid)
	stop = func() { in.Close(); _ = cmd.Wait() }
	if err := waitReady(out, n, fmt.Sprintf("kbench conns %d", n)); err != nil {
		_ = cmd.Process.Kill()
		stop()
		return nil, fmt.Errorf("%w %s", err, strings.TrimSpace(stderr.String()))
	}
	return stop, nil
}
