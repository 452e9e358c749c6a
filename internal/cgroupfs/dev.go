package cgroupfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// KernelDev decodes a dev_t as BPF programs read it from the kernel (major << 20 | minor).
func KernelDev(d uint32) Dev { return Dev{Major: d >> 20, Minor: d & (1<<20 - 1)} }

// DeviceNames resolves major:minor to the kernel's device name through /sys/dev/block,
// remembering answers (devices rarely change) and falling back to "major:minor".
type DeviceNames struct {
	SysRoot string
	mu      sync.Mutex
	names   map[Dev]string
}

// Name returns the device's name, e.g. "vda" or "loop3".
func (n *DeviceNames) Name(d Dev) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := n.names[d]; ok {
		return name
	}
	if n.names == nil {
		n.names = map[Dev]string{}
	}
	name := d.String()
	if target, err := os.Readlink(filepath.Join(n.SysRoot, "dev", "block", fmt.Sprintf("%d:%d", d.Major, d.Minor))); err == nil {
		name = filepath.Base(target)
		n.names[d] = name // only cache hits: a device may appear later
	}
	return name
}
