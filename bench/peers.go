//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// peerTool is a non-kpod BPF tool attached instead of kpod: a bpftrace script from
// bench/peers or a libbpf-tools program from Debian.
type peerTool struct {
	Name   string // shown in tables
	Family string // the kpod family it is the equivalent of
	Argv   []string
	// Streaming tools send every event to their userspace through a perf buffer.
	Streaming bool
}

// peerProc is a running peer tool.
type peerProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 { // per-event tools print a line per event: keep the start only
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bpftracePeers(dir string) []peerTool {
	bt := func(family, script string) peerTool {
		return peerTool{Name: "bpftrace " + script, Family: family, Argv: []string{"bpftrace", filepath.Join(dir, script)}}
	}
	return []peerTool{
		bt("cpu", "cpu.bt"),
		bt("syscall", "syscount.bt"),
		bt("syscall", "syscall.bt"),
		bt("tcp", "tcp.bt"),
		bt("tcpdrop", "tcpdrop.bt"),
		bt("biolatency", "biolatency.bt"),
		bt("diskio", "diskio.bt"),
		bt("cachestat", "cachestat.bt"),
		bt("proc", "proc.bt"),
		bt("hardirqs", "hardirqs.bt"),
		bt("softirqs", "softirqs.bt"),
	}
}

// libbpfPeers are the Debian libbpf-tools equivalents that attach on this kernel (cachestat,
// tcprtt and oomkill need kprobes or fentry and are listed as not runnable). stdbuf makes
// their stdout line-buffered, so that the header they print once attached is seen at once.
func libbpfPeers() []peerTool {
	t := func(family string, argv ...string) peerTool {
		return peerTool{Name: "libbpf-tools " + joinArgs(argv), Family: family, Argv: append([]string{"stdbuf", "-oL", "/usr/sbin/" + argv[0]}, argv[1:]...)}
	}
	return []peerTool{
		t("cpu", "runqlat"),
		t("syscall", "syscount", "-L"),
		t("biolatency", "biolatency", "-D"),
		t("hardirqs", "hardirqs", "-d"),
		t("softirqs", "softirqs", "-d"),
		stream(t("proc", "execsnoop")),
		stream(t("proc", "exitsnoop")),
		stream(t("tcp", "tcplife")),
	}
}

func stream(t peerTool) peerTool { t.Streaming = true; return t }

// notRunnablePeers are tried once and reported with their error.
func notRunnablePeers() []peerTool {
	t := func(family string, argv ...string) peerTool {
		return peerTool{Name: "libbpf-tools " + joinArgs(argv), Family: family, Argv: append([]string{"stdbuf", "-oL", "/usr/sbin/" + argv[0]}, argv[1:]...)}
	}
	return []peerTool{t("cachestat", "cachestat"), t("tcp", "tcprtt"), t("oom", "oomkill")}
}

func joinArgs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}

// start runs the tool and returns once its programs are attached: it has printed its first
// line (libbpf-tools print their header after attaching; bpftrace prints "Attaching N
// probes" and then attaches) and the number of BPF programs it holds has stopped growing.
func (t peerTool) start() (*peerProc, error) {
	cmd := exec.Command(t.Argv[0], t.Argv[1:]...)
	p := &peerProc{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	notePID(cmd.Process.Pid)
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	last, stable := -1, 0
	for {
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("%s exited: %v\n%s", t.Name, err, p.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		progs, _, _ := bpfObjects(cmd.Process.Pid)
		n := len(progs)
		if n > 0 && n == last && bytes.ContainsRune([]byte(p.out.String()), '\n') {
			stable++
		} else {
			stable = 0
		}
		last = n
		if stable >= 3 {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s: not attached after 60 s (%d programs)\n%s", t.Name, n, p.out.String())
		}
	}
}

func (p *peerProc) pid() int { return p.cmd.Process.Pid }

// stop interrupts the tool (it prints its maps and detaches) and waits for it.
func (p *peerProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
