package fakepod

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace made by a test (ip netns), removed when the test ends.
type NetNS struct {
	Name string
	Path string // /run/netns/<name>, joinable with setns
	t    testing.TB
}

// NewNetNS creates an empty network namespace with loopback up.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	RequireRoot(t)
	n := &NetNS{Name: "kpod-" + RandHex(4), t: t}
	n.Path = "/run/netns/" + n.Name
	run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() {
		if out, err := runErr("ip", "netns", "del", n.Name); err != nil {
			t.Errorf("removing netns %s: %v %s", n.Name, err, out)
		}
	})
	n.Exec("ip", "link", "set", "lo", "up")
	return n
}

// Exec runs a command inside the namespace and fails the test on error.
func (n *NetNS) Exec(args ...string) string {
	n.t.Helper()
	return run(n.t, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Veth is a veth pair between two test namespaces, addressed 10.213.<k>.1/30 and .2/30.
type Veth struct {
	A, B         *NetNS
	IfA, IfB     string
	AddrA, AddrB string
}

var vethCounter int

// NewVeth joins two namespaces with a veth pair. IPv6 is off and the neighbour entries are
// static, so the only packets on the link are the ones a test sends (no ARP, no ND, no MLD).
func NewVeth(t testing.TB, a, b *NetNS) *Veth {
	t.Helper()
	vethCounter++
	k := vethCounter%250 + 1
	v := &Veth{A: a, B: b, IfA: "kpa" + RandHex(3), IfB: "kpb" + RandHex(3),
		AddrA: fmt.Sprintf("10.213.%d.1", k), AddrB: fmt.Sprintf("10.213.%d.2", k)}
	run(t, "ip", "link", "add", v.IfA, "netns", a.Name, "type", "veth", "peer", "name", v.IfB, "netns", b.Name)
	for _, side := range []struct {
		ns        *NetNS
		ifc, addr string
	}{{a, v.IfA, v.AddrA}, {b, v.IfB, v.AddrB}} {
		side.ns.Exec("sysctl", "-qw", "net.ipv6.conf."+side.ifc+".disable_ipv6=1")
		side.ns.Exec("ip", "addr", "add", side.addr+"/30", "dev", side.ifc)
		side.ns.Exec("ip", "link", "set", side.ifc, "up")
	}
	macA := strings.TrimSpace(a.Exec("cat", "/sys/class/net/"+v.IfA+"/address"))
	macB := strings.TrimSpace(b.Exec("cat", "/sys/class/net/"+v.IfB+"/address"))
	a.Exec("ip", "neigh", "replace", v.AddrB, "lladdr", macB, "dev", v.IfA, "nud", "permanent")
	b.Exec("ip", "neigh", "replace", v.AddrA, "lladdr", macA, "dev", v.IfB, "nud", "permanent")
	return v
}

// LoopDevice is a loop block device over a sparse file, detached when the test ends.
type LoopDevice struct {
	Path         string // /dev/loopN
	Name         string // loopN
	Major, Minor uint32
}

// NewLoopDevice creates a loop device of sizeMiB.
func NewLoopDevice(t testing.TB, sizeMiB int) *LoopDevice {
	t.Helper()
	RequireRoot(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() {
		if out, err := runErr("losetup", "-d", dev); err != nil {
			t.Errorf("detaching %s: %v %s", dev, err, out)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	return &LoopDevice{Path: dev, Name: filepath.Base(dev), Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
}

// MountNS is a persistent mount namespace (a private copy of the host's mounts) that
// container workloads can join through Container.SetNS.
type MountNS struct {
	Path string
	t    testing.TB
}

// NewMountNS creates a mount namespace; it is unmounted and removed when the test ends.
func NewMountNS(t testing.TB) *MountNS {
	t.Helper()
	RequireRoot(t)
	dir := "/run/kpod-test-ns"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// unshare --mount=<file> needs the file on a private mount, like ip netns does for /run/netns.
	if !isMountPoint(dir) {
		run(t, "mount", "--bind", dir, dir)
	}
	run(t, "mount", "--make-private", dir)
	m := &MountNS{Path: filepath.Join(dir, "mnt-"+RandHex(4)), t: t}
	if err := os.WriteFile(m.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "unshare", "--mount="+m.Path, "--propagation", "private", "true")
	t.Cleanup(func() {
		if out, err := runErr("umount", m.Path); err != nil {
			t.Errorf("unmounting %s: %v %s", m.Path, err, out)
		}
		_ = os.Remove(m.Path)
	})
	return m
}

// Exec runs a command inside the mount namespace.
func (m *MountNS) Exec(args ...string) string {
	m.t.Helper()
	return run(m.t, "nsenter", append([]string{"--mount=" + m.Path, "--"}, args...)...)
}

// Ext4 is an ext4 filesystem on a loop device of its own, mounted at Dir.
type Ext4 struct {
	Dev *LoopDevice
	Dir string // the mount point (in MountNS, if one was given)
}

// Ext4Options say where NewExt4 mounts the filesystem.
type Ext4Options struct {
	// MountNS mounts it in this mount namespace instead of the host's.
	MountNS *MountNS
	// Dir is the mount point, created if missing; default a new temporary directory.
	Dir string
}

// NewExt4 makes an ext4 filesystem of sizeMiB on a new loop device and mounts it. It is made
// for exact counts: 4 KiB blocks (mke2fs picks 1 KiB for a small filesystem, which makes a
// page four buffers) and lazy initialisation off (otherwise an ext4lazyinit kernel thread
// zeroes inode tables and the journal in the background after the mount, writing to the
// device and dirtying pages while a test counts). It is unmounted and the device detached
// when the test ends, also when a step here fails.
func NewExt4(t testing.TB, sizeMiB int, opts Ext4Options) *Ext4 {
	t.Helper()
	dev := NewLoopDevice(t, sizeMiB)
	run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev.Path)
	e := &Ext4{Dev: dev, Dir: opts.Dir}
	if e.Dir == "" {
		e.Dir = filepath.Join(t.TempDir(), "mnt")
	}
	argv := func(args ...string) []string { // args, run in opts.MountNS if set
		if opts.MountNS != nil {
			return append([]string{"nsenter", "--mount=" + opts.MountNS.Path, "--"}, args...)
		}
		return args
	}
	for _, a := range [][]string{argv("mkdir", "-p", e.Dir), argv("mount", "-t", "ext4", dev.Path, e.Dir)} {
		run(t, a[0], a[1:]...)
	}
	t.Cleanup(func() { // runs before the device's detach (cleanups run last-registered first)
		a := argv("umount", e.Dir)
		if out, err := runErr(a[0], a[1:]...); err != nil {
			t.Errorf("unmounting %s: %v %s", e.Dir, err, out)
		}
	})
	return e
}

func isMountPoint(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func runErr(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
