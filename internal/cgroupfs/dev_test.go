package cgroupfs

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestKernelDev(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want Dev
	}{
		{7<<20 | 3, Dev{Major: 7, Minor: 3}},
		{254 << 20, Dev{Major: 254}},
		{259<<20 | 1<<19, Dev{Major: 259, Minor: 1 << 19}},
	} {
		if got := KernelDev(tc.in); got != tc.want {
			t.Errorf("KernelDev(%#x) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDeviceNames(t *testing.T) {
	sys := t.TempDir()
	block := filepath.Join(sys, "dev", "block")
	if err := os.MkdirAll(block, 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(d, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(block, d)); err != nil {
			t.Fatal(err)
		}
	}
	link("254:0", "../../devices/pci0000:00/0000:00:05.0/virtio2/block/vda")
	link("254:1", "../../devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1")
	link("7:3", "../../devices/virtual/block/loop3")

	n := &DeviceNames{SysRoot: sys}
	for d, want := range map[Dev]string{Dev{254, 0}: "vda", Dev{254, 1}: "vda1", Dev{7, 3}: "loop3", Dev{259, 7}: "259:7"} {
		if got := n.Name(d); got != want {
			t.Errorf("Name(%v) = %q, want %q", d, got, want)
		}
	}
	// The fallback is not remembered: a device that appears later gets its name.
	link("259:7", "../../devices/pci0000:00/0000:00:06.0/nvme/nvme0/nvme0n1")
	if got := n.Name(Dev{259, 7}); got != "nvme0n1" {
		t.Errorf("Name after the device appeared = %q, want nvme0n1", got)
	}
	// Names found are remembered.
	if err := os.Remove(filepath.Join(block, "254:0")); err != nil {
		t.Fatal(err)
	}
	if got := n.Name(Dev{254, 0}); got != "vda" {
		t.Errorf("cached Name = %q, want vda", got)
	}
	// Safe for concurrent use (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := n.Name(Dev{7, 3}); got != "loop3" {
				t.Errorf("concurrent Name = %q", got)
			}
		}()
	}
	wg.Wait()
	// The zero value works (relative to a directory without dev/block).
	var z DeviceNames
	if got := z.Name(Dev{8, 0}); got != "8:0" {
		t.Errorf("zero DeviceNames: %q", got)
	}
}
