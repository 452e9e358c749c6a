package tcp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestTCPPodProcessExits: the process kpod found in a pod (its sandbox's) exits between the
// scan and the socket iterator's entering of the pod's network namespace, so that
// /proc/<pid>/ns/net is gone when the family opens it (what a pod that is being deleted, or
// whose sandbox restarts, does to a cycle). The family takes another process of the pod in
// the same namespace: the connection the client holds open has its exact bytes, and the
// cycle has no error. Before, the cycle failed with "open /proc/<pid>/ns/net: no such file
// or directory" (seen under churn in test/reliability's TestLeastPrivilege).
func TestTCPPodProcessExits(t *testing.T) {
	fakepod.RequireRoot(t)
	const total = 1 << 20
	p := fakepod.NewPair(t)
	sb := p.Client.AddSandbox()
	p.Live[sb.CgroupID] = true
	b, err := os.ReadFile(filepath.Join(sb.V2Dir(), "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("the sandbox's cgroup has processes %v, want one", f)
	}
	pause, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, variant{PathSocket, "tp_btf", "namespaces"}) // the iterator enters the namespace at each collection
	srv := p.SrvCtr.Start("tcpserver", strconv.Itoa(port), "1")
	srv.WaitReady()
	cli := p.CliCtr.Start("tcpclient", p.Veth.AddrB, strconv.Itoa(port), "1", strconv.Itoa(total), "hold")
	if sent := fakepod.Count(t, cli.ReadLine(), "sent"); sent != total {
		t.Fatalf("client sent %d, want %d", sent, total)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cs, ss := ssSocket(t, p.Client.NetNS), ssSocket(t, p.Server.NetNS)
		if cs["bytes_sent"]-cs["bytes_retrans"] == total && ss["bytes_received"] == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection not idle: client %v, server %v", cs, ss)
		}
	}

	want := fmt.Sprintf("/proc/%d/ns/net", pause)
	var entered []string
	beforeIterate = func(path string) {
		entered = append(entered, path)
		if path != want || slicesCount(entered, want) > 1 {
			return
		}
		if err := unix.Kill(pause, unix.SIGKILL); err != nil {
			t.Errorf("killing the sandbox's process %d: %v", pause, err)
			return
		}
		// Reaped by fakepod's goroutine: then its /proc entry is gone.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pause)); errors.Is(err, fs.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("process %d still in /proc 10 s after SIGKILL", pause)
				return
			}
		}
	}
	defer func() { beforeIterate = nil }()
	st := collect(t, c, p.Live) // fails the test on a cycle error
	beforeIterate = nil
	if slicesCount(entered, want) != 1 {
		t.Fatalf("the family entered %v; want the sandbox's namespace path %s once (the process to kill)", entered, want)
	}
	cli1, srv1 := st[p.CliCtr.CgroupID], st[p.SrvCtr.CgroupID]
	if cli1.BytesSent != total || srv1.BytesReceived != total {
		t.Errorf("client sent %d, server received %d; want %d each (entered %v)", cli1.BytesSent, srv1.BytesReceived, total, entered)
	}
	idleHasNothing(t, p, st)
}

func slicesCount(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
