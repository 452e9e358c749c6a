package topology

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A pod's namespace as the kernel prints it: eth0 10.244.0.7/24 and fd00::7, loopback.
const podFibTrie = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.244.0.0/24 2 0 2
        |-- 10.244.0.0
           /24 link UNICAST
        |-- 10.244.0.7
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.244.0.7
        /32 host LOCAL
`

const podIfInet6 = `fd000000000000000000000000000007 02 40 00 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
`

func TestProcAddrs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("fib_trie", podFibTrie)
	got, err := procAddrs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr("10.244.0.7")}; !slices.Equal(got, want) {
		t.Errorf("without if_inet6 (IPv6 off): %v, want %v", got, want)
	}
	write("if_inet6", podIfInet6)
	got, err = procAddrs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr("10.244.0.7"), netip.MustParseAddr("fd00::7")}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	for _, tc := range []struct{ file, content, want string }{
		{"fib_trie", "Main:\n     |-- 10.244.0.x\n        /32 host LOCAL\n", `fib_trie: line 2: "|-- 10.244.0.x" is not an IPv4 leaf`},
		{"fib_trie", "Main:\n        /32 host LOCAL\n", "fib_trie: line 2: a route before any leaf"},
		{"if_inet6", "fd00 02 40 00 80 eth0\n", `if_inet6: line 1: "fd00 02 40 00 80 eth0" is not an if_inet6 entry`},
	} {
		write("fib_trie", podFibTrie)
		write("if_inet6", podIfInet6)
		write(tc.file, tc.content)
		if _, err := procAddrs(dir); err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want one ending in %q", tc.file, tc.content, err, tc.want)
		}
	}
	if err := os.Remove(filepath.Join(dir, "net", "fib_trie")); err != nil {
		t.Fatal(err)
	}
	if _, err := procAddrs(dir); err == nil || !strings.Contains(err.Error(), "fib_trie") {
		t.Errorf("without fib_trie: error %v, want one naming the file", err)
	}
}

// The running kernel's own files give this namespace's addresses as netlink does.
func TestProcAddrsSelf(t *testing.T) {
	got, err := procAddrs("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var want []netip.Addr
	for _, ia := range ifaddrs {
		if a, ok := netip.AddrFromSlice(ia.(*net.IPNet).IP); ok && !a.Unmap().IsLoopback() {
			want = append(want, a.Unmap())
		}
	}
	slices.SortFunc(got, netip.Addr.Compare)
	slices.SortFunc(want, netip.Addr.Compare)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("from /proc/self/net: %v; netlink: %v", got, want)
	}
}

// TestExitedProcessNamespace: a process found for a pod that exits before its namespace is
// read gives fs.ErrNotExist through each way of reading addresses, which the collection
// skips as churn (TestRealRuntimeBadInput met it once as a scrape error).
func TestExitedProcessNamespace(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid))
	if _, err := os.Stat(filepath.Join(dir, "ns", "net")); err != nil {
		t.Fatalf("positive control: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := (&Collector{}).addresses(filepath.Join(dir, "ns", "net")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("entering the namespace: %v, want fs.ErrNotExist", err)
	}
	if _, err := procAddrs(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reading /proc/<pid>/net: %v, want fs.ErrNotExist", err)
	}
}
