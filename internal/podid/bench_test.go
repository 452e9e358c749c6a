package podid

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"
)

// BenchmarkScan measures the per-cycle rescan of a node's cgroup2 tree (the scraper scans
// once per collection cycle). The tree is laid out like a systemd-driver containerd node:
// every pod has a sandbox and an application container, QoS classes rotate, and there is the
// usual system.slice noise. The Scanner is reused across iterations, as in the receiver, so
// sandbox decisions are cached after the first scan.
func BenchmarkScan(b *testing.B) {
	for _, pods := range []int{110, 1000} {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			root, proc := generateTree(b, pods)
			s := NewScanner(root, proc)
			idx, err := s.Scan()
			if err != nil {
				b.Fatal(err)
			}
			if len(idx.Pods) != pods || len(idx.Containers()) != 2*pods {
				b.Fatalf("generated tree scanned as %d pods, %d containers; want %d, %d", len(idx.Pods), len(idx.Containers()), pods, 2*pods)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Scan(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(idx.Dirs), "dirs")
		})
	}
}

func generateTree(b *testing.B, pods int) (root, proc string) {
	root, proc = b.TempDir(), b.TempDir()
	cgroupfstest.Write(b, filepath.Join(root, "cgroup.controllers"), "cpu io memory pids\n")
	for _, d := range []string{"init.scope", "system.slice/containerd.service", "system.slice/kubelet.service",
		"system.slice/systemd-journald.service", "user.slice", "kubepods.slice/kubepods-burstable.slice",
		"kubepods.slice/kubepods-besteffort.slice"} {
		cgroupfstest.Write(b, filepath.Join(root, d, "cgroup.procs"), "")
	}
	pid := 10000
	for i := 0; i < pods; i++ {
		uid := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i%0xffff, i%0xfff, i%0xfff, i)
		us := strings.ReplaceAll(uid, "-", "_")
		var pod string
		switch i % 3 {
		case 0:
			pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + us + ".slice"
		case 1:
			pod = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + us + ".slice"
		default:
			pod = "kubepods.slice/kubepods-pod" + us + ".slice"
		}
		cgroupfstest.Write(b, filepath.Join(root, pod, "cgroup.procs"), "")
		for j, comm := range []string{"pause", "app"} {
			sum := sha256.Sum256([]byte(uid + strconv.Itoa(j)))
			dir := filepath.Join(root, pod, "cri-containerd-"+hex.EncodeToString(sum[:])+".scope")
			cgroupfstest.Write(b, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)+"\n")
			for _, f := range []string{"memory.current", "memory.stat", "io.stat", "cpu.stat"} {
				cgroupfstest.Write(b, filepath.Join(dir, f), "0\n")
			}
			cgroupfstest.Write(b, filepath.Join(proc, strconv.Itoa(pid), "comm"), comm+"\n")
			pid++
		}
	}
	return root, proc
}
