package iface

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"
)

// A pod's /proc/<pid>/net/dev: loopback, the pod's veth end and a second (Multus) interface.
const podNetDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456    1520    0    0    0     0          0         0   123456    1520    0    0    0     0       0          0
  eth0: 98765432   65432    1    2    3     4          5         6  1234567    9876    7    8    9    10      11         12
  net1:18446744073709551615 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
`

func TestParse(t *testing.T) {
	got, err := Parse("/proc/4242/net/dev", []byte(podNetDev))
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		"eth0": {RxBytes: 98765432, RxPackets: 65432, RxErrors: 1, RxDrops: 2, TxBytes: 1234567, TxPackets: 9876, TxErrors: 7, TxDrops: 8},
		"net1": {RxBytes: 18446744073709551615, RxPackets: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n %+v\nwant\n %+v", got, want)
	}

	onlyLo := strings.Join(strings.Split(podNetDev, "\n")[:3], "\n") + "\n"
	if got, err := Parse("x", []byte(onlyLo)); err != nil || len(got) != 0 {
		t.Errorf("loopback only: %v, %v; want no interfaces", got, err)
	}
}

func TestParseMalformed(t *testing.T) {
	const path = "/proc/4242/net/dev"
	header := strings.Join(strings.Split(podNetDev, "\n")[:2], "\n") + "\n"
	tests := []struct{ name, data, want string }{
		{"empty", "", "not a net/dev file"},
		{"no header", "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", "not a net/dev file"},
		{"too few fields", header + "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n", path + ":3"},
		{"too many fields", header + "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", path + ":3"},
		{"non-numeric counter", header + "    lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  eth0: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n", path + ":4"},
		{"negative counter", header + "  eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", path + ":3"},
		{"no interface name", header + "  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", path + ":3"},
		// a malformed loopback line is still a malformed file
		{"malformed loopback", header + "    lo: 1 2 3\n", path + ":3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(path, []byte(tc.data))
			if err == nil {
				t.Fatalf("no error, got %v", got)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to name %s and say %q", err, path, tc.want)
			}
		})
	}
}

// TestCollect runs the collector over a fake /proc and cgroup tree: namespaces are files whose
// inodes stand for namespace identities (a hostNetwork pod's is the host's file, hard-linked).
func TestCollect(t *testing.T) {
	proc, v2 := t.TempDir(), t.TempDir()
	cgroupfstest.Write(t, filepath.Join(proc, "2", "comm"), "kthreadd\n")
	cgroupfstest.Write(t, filepath.Join(proc, "2", "ns", "net"), "")

	type pod struct {
		id   uint64
		rels []string
	}
	// pod 1: the sandbox (pid 100) holds the namespace; the app container has pid 101
	cgroupfstest.Write(t, filepath.Join(v2, "p1/sb/cgroup.procs"), "100\n")
	cgroupfstest.Write(t, filepath.Join(v2, "p1/app/cgroup.procs"), "101\n")
	cgroupfstest.Write(t, filepath.Join(proc, "100", "ns", "net"), "")
	cgroupfstest.Write(t, filepath.Join(proc, "100", "net", "dev"), podNetDev)
	// pod 2: no sandbox process; found through its second container (the first is empty)
	cgroupfstest.Write(t, filepath.Join(v2, "p2/a/cgroup.procs"), "")
	cgroupfstest.Write(t, filepath.Join(v2, "p2/b/cgroup.procs"), "200\n201\n")
	cgroupfstest.Write(t, filepath.Join(proc, "200", "ns", "net"), "")
	cgroupfstest.Write(t, filepath.Join(proc, "200", "net", "dev"), strings.Replace(podNetDev, "eth0", "eth9", 1))
	// pod 3: hostNetwork
	cgroupfstest.Write(t, filepath.Join(v2, "p3/app/cgroup.procs"), "300\n")
	if err := os.MkdirAll(filepath.Join(proc, "300", "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(proc, "2", "ns", "net"), filepath.Join(proc, "300", "ns", "net")); err != nil {
		t.Fatal(err)
	}
	cgroupfstest.Write(t, filepath.Join(proc, "300", "net", "dev"), podNetDev)
	// pod 4: no processes at all
	cgroupfstest.Write(t, filepath.Join(v2, "p4/app/cgroup.procs"), "")
	// pod 5: its process exited (no /proc entry)
	cgroupfstest.Write(t, filepath.Join(v2, "p5/app/cgroup.procs"), "500\n")
	// pod 6: a malformed net/dev
	cgroupfstest.Write(t, filepath.Join(v2, "p6/app/cgroup.procs"), "600\n")
	cgroupfstest.Write(t, filepath.Join(proc, "600", "ns", "net"), "")
	cgroupfstest.Write(t, filepath.Join(proc, "600", "net", "dev"), "garbage\n")

	pods := []PodTarget{
		{ID: 1, Rel: "p1", ContainerRels: []string{"p1/sb", "p1/app"}},
		{ID: 2, Rel: "p2", ContainerRels: []string{"p2/a", "p2/b"}},
		{ID: 3, Rel: "p3", ContainerRels: []string{"p3/app"}},
		{ID: 4, Rel: "p4", ContainerRels: []string{"p4/app"}},
		{ID: 5, Rel: "p5", ContainerRels: []string{"p5/app"}},
		{ID: 6, Rel: "p6", ContainerRels: []string{"p6/app"}},
	}
	res := New(proc, v2).CollectPods(context.Background(), pods)
	if len(res.Errs) != 1 || !strings.Contains(res.Errs[0].Error(), filepath.Join(proc, "600", "net", "dev")) {
		t.Errorf("errors %v, want one naming pid 600's net/dev", res.Errs)
	}
	if len(res.Values) != 2 {
		t.Errorf("values for pods %v, want 1 and 2", keys(res.Values))
	}
	if got := res.Values[1]["eth0"]; got.RxBytes != 98765432 || got.TxDrops != 8 {
		t.Errorf("pod 1 eth0 = %+v", got)
	}
	if _, ok := res.Values[2]["eth9"]; !ok {
		t.Errorf("pod 2 interfaces %v, want eth9 from pid 200", res.Values[2])
	}

	// Without the host's namespace every pod fails with the same explanation.
	res = New(t.TempDir(), v2).CollectPods(context.Background(), pods[:2])
	if len(res.Errs) != 2 || !strings.Contains(res.Errs[0].Error(), "hostPID") {
		t.Errorf("errors without host /proc: %v", res.Errs)
	}
}

func keys(m map[uint64]Stats) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	return out
}
