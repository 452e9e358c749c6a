//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchmark is one workload of the kernel-overhead suite. ns/op is what every ratio is
// computed from (for redis: ns per request, the inverse of throughput).
type benchmark struct {
	Name string
	Op   string // what one operation is
	// Events names the kernel events one operation makes (for reading the per-event tables).
	Events string
}

var benchmarks = []benchmark{
	{"redis-set", "one SET request: wall time (1 / throughput) of redis-benchmark -c 50 over loopback", "syscalls, TCP send/recv, wakeups, context switches"},
	{"redis-get", "one GET request: wall time (1 / throughput), as above", "as above"},
	{"redis-cpu", "CPU time (redis-server + redis-benchmark) per request, SET and GET together", "as above"},
	{"redisp-set", "one SET request, pipelined: wall time (1 / throughput) of redis-benchmark -c 50 -P 16 over loopback (16 requests per read and write)", "syscalls (one per 16 requests), TCP send/recv, wakeups"},
	{"redisp-get", "one GET request, pipelined, as above", "as above"},
	{"redisp-cpu", "CPU time (redis-server + redis-benchmark) per pipelined request, SET and GET together", "as above"},
	{"http", "one HTTP/1.1 keep-alive GET and its 200 response over a 127.0.0.1 TCP connection (client and server processes both pinned to CPU 1: wall time is their CPU time)", "2 writes, 2 reads, 2 wakeups, TCP send/recv"},
	{"pingpong", "one 1-byte round trip over two pipes between two processes, both pinned to CPU 1", "4 syscalls, 2 wakeups, 2 context switches"},
	{"getppid", "one getppid(2) (raw syscall)", "1 syscall (enter+exit)"},
	{"tcp", "one 4 KiB write on a 127.0.0.1 TCP stream (reader in a second process)", "send, recv, TCP segments and ACKs (tcp_probe)"},
	{"forkexec", "fork + exec of a static binary + exit + wait", "fork, exec, exit, wakeups, syscalls"},
	{"dread", "one 4 KiB O_DIRECT read of a loop device (backed by /dev/shm)", "bio queue, request start/complete, loop worker wakeup"},
	{"vdread", "one 4 KiB O_DIRECT read of a file on the VM's disk (virtio-blk, ext4)", "bio queue, request start/complete, a disk interrupt (hard IRQ) and the block softirq, wakeup"},
	{"bufwrite", "one buffered 4 KiB write to a page not yet cached (a file on the VM's ext4, truncated between inner rounds: nothing is written back)", "page-cache add, folio dirtied, buffer head dirtied, 1 syscall"},
	{"tcprst", "one connect() to a 127.0.0.1 port nothing listens on (refused), socket and close", "3 syscalls, socket state changes, a SYN dropped for want of a socket (kfree_skb), a reset"},
}

// statsOnly are benchmarks of the BPF statistics pass only: one operation is so long that
// the programs it runs are far below the noise of a pair.
var statsOnly = []benchmark{
	{"oomkill", "one memory-cgroup OOM kill: a child joins a container limited to 16 MiB and touches memory until killed; waited for", "oom/mark_victim, fork, exit, page faults, reclaim"},
}

func benchNames() []string {
	var out []string
	for _, b := range benchmarks {
		out = append(out, b.Name)
	}
	return out
}

// suite runs the benchmarks inside fake pods.
type suite struct {
	kbench    string
	bench     *benchContainer // micro-benchmarks run here
	client    *benchContainer // redis-benchmark runs here
	loop      *loopDevice
	disk      *diskFiles      // files on the VM's disk (vdread, bufwrite)
	oom       *benchContainer // memory-limited container of the oomkill benchmark
	redisPort int
	redisN    int // requests per redis test
	redisPN   int // requests per pipelined redis test (redisp)
	redis     *exec.Cmd
	// Wall time spent running each benchmark, and how many runs (for the report's timing).
	timeSpent map[string]float64
	timeRuns  map[string]int
	// kbench parameters: ops per inner round and inner rounds.
	getppid, pingpong, http, tcp, forkexec, dread, vdread, bufwrite, tcprst, oomkill [2]int
}

func (s *suite) startRedis(server *benchContainer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.redisPort = l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(s.kbench, "exec", "redis-server", "--port", strconv.Itoa(s.redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
	cmd.Env = append(server.env(), "KBENCH_CPU=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	notePID(cmd.Process.Pid)
	s.redis = cmd
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.redisPort))
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("redis-server did not start listening")
}

func (s *suite) stopRedis() {
	if s.redis != nil {
		_ = s.redis.Process.Kill()
		_ = s.redis.Wait()
	}
}

// sample is one run of some benchmarks: ns/op by benchmark name.
type sample map[string]float64

// run runs the named benchmarks (all when names is empty) once each and returns ns/op and
// the wall time each took.
func (s *suite) run(names ...string) (sample, map[string]time.Duration, error) {
	if len(names) == 0 {
		names = benchNames()
	}
	out, took := sample{}, map[string]time.Duration{}
	for _, n := range names {
		if p, ok := redisPrefix(n); ok && n != p+"-set" && out[p+"-set"] != 0 {
			continue // one redis run gives all three
		}
		t0 := time.Now()
		var err error
		switch n {
		case "redis-set", "redis-get", "redis-cpu":
			err = s.runRedis(out, "redis", s.redisN, 1)
		case "redisp-set", "redisp-get", "redisp-cpu":
			err = s.runRedis(out, "redisp", s.redisPN, redisPipeline)
		case "http":
			out[n], err = s.kb("http", s.http)
		case "getppid":
			out[n], err = s.kb("getppid", s.getppid)
		case "pingpong":
			out[n], err = s.kb("pingpong", s.pingpong)
		case "tcp":
			out[n], err = s.kb("tcp", s.tcp, "4096")
		case "forkexec":
			out[n], err = s.kb("forkexec", s.forkexec)
		case "dread":
			out[n], err = s.kbDev("dread", s.dread)
		case "vdread":
			out[n], err = s.kbench1([]string{"dread", s.disk.Data, strconv.Itoa(s.vdread[0]), strconv.Itoa(s.vdread[1]), "4096"})
		case "bufwrite":
			out[n], err = s.kbench1([]string{"bufwrite", s.disk.Buf, strconv.Itoa(s.bufwrite[0]), strconv.Itoa(s.bufwrite[1])})
		case "tcprst":
			out[n], err = s.kb("tcprst", s.tcprst)
		case "oomkill":
			out[n], err = s.kbench1([]string{"oomkill", s.oom.procsFiles(), strconv.Itoa(s.oomkill[0]), strconv.Itoa(s.oomkill[1])})
		default:
			err = fmt.Errorf("unknown benchmark %s", n)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", n, err)
		}
		took[n] = time.Since(t0)
		if s.timeSpent == nil {
			s.timeSpent, s.timeRuns = map[string]float64{}, map[string]int{}
		}
		s.timeSpent[n] += took[n].Seconds()
		s.timeRuns[n]++
	}
	return out, took, nil
}

// spent is the wall time of every benchmark run so far, and how many there were.
func (s *suite) spent() (sec float64, runs int) {
	for b, v := range s.timeSpent {
		sec += v
		runs += s.timeRuns[b]
	}
	return sec, runs
}

// ops is how many operations one run of a benchmark performs (for per-op BPF statistics).
func (s *suite) ops(name string) float64 {
	p := map[string][2]int{"getppid": s.getppid, "pingpong": s.pingpong, "http": s.http, "tcp": s.tcp, "forkexec": s.forkexec, "dread": s.dread,
		"vdread": s.vdread, "bufwrite": s.bufwrite, "tcprst": s.tcprst, "oomkill": s.oomkill}
	if strings.HasPrefix(name, "redisp") {
		return float64(2 * s.redisPN)
	}
	if strings.HasPrefix(name, "redis") {
		return float64(2 * s.redisN)
	}
	v := p[name]
	return float64(v[0] * v[1])
}

func (s *suite) kb(mode string, p [2]int, extra ...string) (float64, error) {
	args := append([]string{mode, strconv.Itoa(p[0]), strconv.Itoa(p[1])}, extra...)
	if mode == "pingpong" || mode == "http" {
		return s.kbench1(args, "KBENCH_CPU=1")
	}
	return s.kbench1(args)
}

func (s *suite) kbDev(mode string, p [2]int) (float64, error) {
	return s.kbench1([]string{mode, s.loop.Dev, strconv.Itoa(p[0]), strconv.Itoa(p[1]), "4096"})
}

func (s *suite) kbench1(args []string, env ...string) (float64, error) {
	cmd := exec.Command(s.kbench, args...)
	cmd.Env = append(s.bench.env(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("kbench %v: %v: %s", args, err, stderr.String())
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "min_ns="); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("kbench %v: no result in %q", args, out)
}

// redisPipeline is the pipeline depth of the redisp benchmarks (redis-benchmark -P).
const redisPipeline = 16

// redisPrefix is "redis" or "redisp" for the names of those benchmarks.
func redisPrefix(name string) (string, bool) {
	p, _, ok := strings.Cut(name, "-")
	return p, ok && (p == "redis" || p == "redisp")
}

// runRedis runs redis-benchmark (50 connections, n requests, pipeline depth pipe) for SET,
// then for GET, in the client container, pinned to CPU 1 (redis-server is on CPU 0). It
// records ns per request of each (1 / throughput) as <prefix>-set and <prefix>-get, and the
// CPU time both processes spent per request as <prefix>-cpu: the server's from its threads'
// schedstat, the client's from its rusage.
func (s *suite) runRedis(out sample, prefix string, n, pipe int) error {
	var cpu time.Duration
	for _, test := range []string{"set", "get"} {
		srv0, err := threadsCPU(s.redis.Process.Pid)
		if err != nil {
			return err
		}
		cmd := exec.Command(s.kbench, "exec", "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(s.redisPort),
			"-t", test, "-n", strconv.Itoa(n), "-c", "50", "-P", strconv.Itoa(pipe), "-q", "--csv")
		cmd.Env = append(s.client.env(), "KBENCH_CPU=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		res, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("redis-benchmark: %v: %s", err, stderr.String())
		}
		srv1, err := threadsCPU(s.redis.Process.Pid)
		if err != nil {
			return err
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu += srv1 - srv0 + time.Duration(ru.Utime.Nano()+ru.Stime.Nano())
		rps := 0.0
		sc := bufio.NewScanner(bytes.NewReader(res))
		for sc.Scan() {
			f := strings.Split(sc.Text(), ",")
			if len(f) >= 2 && strings.EqualFold(strings.Trim(f[0], `"`), test) {
				rps, _ = strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
			}
		}
		if rps <= 0 {
			return fmt.Errorf("redis-benchmark: no %s result in %q", test, res)
		}
		out[prefix+"-"+test] = 1e9 / rps
	}
	out[prefix+"-cpu"] = float64(cpu.Nanoseconds()) / float64(2*n)
	return nil
}

// threadsCPU is the CPU time of all threads of a process (sum_exec_runtime, ns exact).
func threadsCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of %d: %v", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			sum += v
		}
	}
	return time.Duration(sum), nil
}
