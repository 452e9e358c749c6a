package bpfload_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealReleaseKernelBTF: the kernel BTF a load decoded stays cached while loads may come,
// and once released nothing keeps it (not the loaded family, not cilium/ebpf): the garbage
// collector frees it, and with it the mapping of /sys/kernel/btf/vmlinux.
func TestRealReleaseKernelBTF(t *testing.T) {
	fakepod.RequireRoot(t)
	bpfload.ReleaseKernelBTF() // what earlier loads of this process decoded
	src, err := cpu.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	spec, err := bpfload.KernelSpec() // the copy the load above decoded and cached
	if err != nil {
		t.Fatal(err)
	}
	freed := make(chan struct{})
	runtime.AddCleanup(spec, func(ch chan struct{}) { close(ch) }, freed)
	spec = nil
	collected := func() bool {
		for range 20 {
			runtime.GC()
			select {
			case <-freed:
				return true
			case <-time.After(10 * time.Millisecond):
			}
		}
		return false
	}
	if collected() {
		t.Fatal("the cached kernel BTF was collected before ReleaseKernelBTF")
	}
	bpfload.ReleaseKernelBTF()
	if !collected() {
		t.Fatal("the kernel BTF is still reachable after ReleaseKernelBTF, with the family loaded")
	}
	// A load after the release decodes it again.
	again, err := cpu.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}
