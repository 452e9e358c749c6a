// Package cgroupfs finds the cgroup hierarchies of a host and reads their files.
//
// kpod keys every kernel event by the cgroup v2 id (the inode of the v2 directory), so the
// cgroup2 mount is mandatory. Controller files (memory, io/blkio) live in the v2 tree on a
// pure v2 host and in the v1 controller mounts on a hybrid host; Layout hides the difference.
package cgroupfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Layout says where each hierarchy of the host is mounted.
type Layout struct {
	// V2 is the cgroup2 mount point: the ids BPF sees are inodes of directories below it.
	V2 string
	// V1 maps a v1 controller name (memory, blkio, cpu, ...) to its mount point.
	V1 map[string]string
	// V2Controllers are the controllers enabled at the v2 root (cgroup.controllers).
	V2Controllers map[string]bool
}

// Mode is how the host arranges cgroups.
type Mode string

const (
	ModeV2     Mode = "v2"     // unified: every controller in the cgroup2 tree
	ModeHybrid Mode = "hybrid" // cgroup2 for ids, controllers in v1 mounts
)

// Mode reports whether memory and io statistics come from v2 or v1 files.
func (l Layout) Mode() Mode {
	if l.V2Controllers["memory"] || len(l.V1) == 0 {
		return ModeV2
	}
	return ModeHybrid
}

// ControllerDir returns the directory holding controller ctrl's files for the cgroup at rel
// (a path relative to the hierarchy roots) and whether it is a v2 directory. The kubelet
// creates the same relative path in every hierarchy, which is what makes this lookup work.
func (l Layout) ControllerDir(ctrl, rel string) (dir string, v2 bool, ok bool) {
	v2name := ctrl
	if ctrl == "blkio" {
		v2name = "io"
	}
	if l.V2Controllers[v2name] {
		return filepath.Join(l.V2, rel), true, true
	}
	if m, found := l.V1[ctrl]; found {
		return filepath.Join(m, rel), false, true
	}
	return "", false, false
}

// ErrNoCgroup2 is returned when no cgroup2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 hierarchy is mounted (kpod needs cgroup v2 or a hybrid host with /sys/fs/cgroup/unified)")

// Discover reads a mountinfo file (normally /proc/self/mountinfo) and returns the layout. If
// v2Root is not empty it overrides the discovered cgroup2 mount (config key cgroup_root).
func Discover(mountinfo, v2Root string) (Layout, error) {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		return Layout{}, fmt.Errorf("reading mounts: %w", err)
	}
	mounts, err := ParseMountinfo(mountinfo, data)
	if err != nil {
		return Layout{}, err
	}
	l := Layout{V1: map[string]string{}}
	v1Rank := map[string]int{}
	v2Rank := -1
	for _, m := range mounts {
		rank, ok := rootRank(m.Root)
		if !ok {
			continue
		}
		switch m.FSType {
		case "cgroup2":
			// The highest mount wins; among equals, the conventional location.
			if rank > v2Rank || rank == v2Rank && (m.MountPoint == "/sys/fs/cgroup" || m.MountPoint == "/sys/fs/cgroup/unified") {
				l.V2, v2Rank = m.MountPoint, rank
			}
		case "cgroup":
			for _, opt := range strings.Split(m.SuperOpts, ",") {
				if notController[opt] || strings.Contains(opt, "=") {
					continue
				}
				if r, dup := v1Rank[opt]; !dup || rank > r {
					l.V1[opt], v1Rank[opt] = m.MountPoint, rank
				}
			}
		}
	}
	switch {
	case v2Root != "":
		if err := checkCgroup2(v2Root); err != nil {
			return Layout{}, err
		}
		l.V2 = v2Root
	case v2Rank < 0:
		return Layout{}, ErrNoCgroup2
	}
	l.V2Controllers = map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(l.V2, "cgroup.controllers")); err == nil {
		for _, c := range strings.Fields(string(b)) {
			l.V2Controllers[c] = true
		}
	}
	return l, nil
}

// notController are the super options of a v1 cgroup mount that are not controller names:
// the mount's read-only flag, the SELinux label flag, and the hierarchy flags the kernel
// shows (cgroup1_show_options); name=, release_agent= and LSM context= have a '='.
var notController = map[string]bool{
	"": true, "rw": true, "ro": true, "seclabel": true,
	"noprefix": true, "xattr": true, "cpuset_v2_mode": true, "favordynmods": true, "clone_children": true,
}

// FixtureLayout describes a fake cgroupfs tree on an ordinary filesystem (unit tests): v2 at
// root, with the given v2 controllers, and v1 controllers at root/../<controller>.
func FixtureLayout(v2 string, v2Controllers []string, v1 map[string]string) Layout {
	l := Layout{V2: v2, V1: v1, V2Controllers: map[string]bool{}}
	if l.V1 == nil {
		l.V1 = map[string]string{}
	}
	for _, c := range v2Controllers {
		l.V2Controllers[c] = true
	}
	return l
}

func checkCgroup2(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("cgroup_root %q: %w", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("cgroup_root %q is not a cgroup2 mount (filesystem magic %#x)", dir, st.Type)
	}
	return nil
}

// rootRank tells how much of a hierarchy a mount shows, from its root field. "/" is the whole
// hierarchy as this process sees it. Inside a cgroup namespace that is only the namespace's
// subtree, and the host's hierarchy (a hostPath mount of /sys/fs/cgroup) shows as "/..",
// "/../..", ...: the more "..", the higher up. A root naming a path ("/kubepods/...") is a
// bind of one sub-tree and cannot show other pods.
func rootRank(root string) (int, bool) {
	if root == "/" {
		return 0, true
	}
	n := 0
	for _, part := range strings.Split(strings.TrimPrefix(root, "/"), "/") {
		if part != ".." {
			return 0, false
		}
		n++
	}
	return n, true
}

// Mount is one line of proc(5) mountinfo.
type Mount struct {
	Root, MountPoint, FSType, Source, SuperOpts string
}

// ParseMountinfo parses a mountinfo file; a malformed line is an error, not a skipped mount.
// Fields are separated by spaces only: the kernel escapes space, tab, newline and backslash
// in paths and writes any other white space (a no-break space, a carriage return) as it is.
func ParseMountinfo(path string, data []byte) ([]Mount, error) {
	var out []Mount
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
		sep := -1
		for j, x := range f {
			if x == "-" {
				sep = j
				break
			}
		}
		if sep < 6 || len(f) < sep+4 {
			return nil, fmt.Errorf("%s:%d: malformed mountinfo line %q", path, i+1, line)
		}
		// The kernel writes mount points as absolute clean paths; anything else joined
		// below /proc/<pid>/root ("/../..") would name a path outside the container.
		mp := unescapeMount(f[4])
		if !filepath.IsAbs(mp) || filepath.Clean(mp) != mp {
			return nil, fmt.Errorf("%s:%d: mount point %q is not an absolute clean path", path, i+1, mp)
		}
		out = append(out, Mount{
			Root:       unescapeMount(f[3]),
			MountPoint: mp,
			FSType:     f[sep+1],
			Source:     unescapeMount(f[sep+2]),
			SuperOpts:  f[sep+3],
		})
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for space, ...) mountinfo uses. An escape
// is one byte, \000 to \377; "\400" and above are not escapes and are kept as they are.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] <= '3' && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
