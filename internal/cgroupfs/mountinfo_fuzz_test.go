package cgroupfs

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/fuzzseed"
)

// escapeMount escapes a path the way the kernel writes it into mountinfo (fs/proc_namespace.c
// mangle and seq_path_root: space, tab, newline and backslash as \ooo; nothing else).
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeOracle undoes \ooo escapes of one byte (\000 to \377); anything else is literal.
func unescapeOracle(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' &&
			s[i+2] >= '0' && s[i+2] <= '7' && s[i+3] >= '0' && s[i+3] <= '7' {
			b = append(b, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// mountinfoOracle reads mountinfo as proc(5) and the kernel write it: fields separated by
// single spaces (white space other than space, tab and newline is not escaped and belongs
// to its field: a mount point may hold a no-break space or a carriage return); six fixed
// fields (never "-": they are numbers, paths and options), optional fields, a "-" separator,
// then file system type, source and super options. Mount points are absolute clean paths
// (d_path).
func mountinfoOracle(data string) ([]Mount, int) {
	var out []Mount
	for i, line := range strings.Split(data, "\n") {
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
			return nil, i + 1
		}
		mp := unescapeOracle(f[4])
		if !path.IsAbs(mp) || path.Clean(mp) != mp {
			return nil, i + 1
		}
		out = append(out, Mount{Root: unescapeOracle(f[3]), MountPoint: mp,
			FSType: f[sep+1], Source: unescapeOracle(f[sep+2]), SuperOpts: f[sep+3]})
	}
	return out, 0
}

// renderMountinfo writes mounts back in the kernel's format.
func renderMountinfo(mounts []Mount) string {
	var b strings.Builder
	for i, m := range mounts {
		fmt.Fprintf(&b, "%d 1 0:%d %s %s rw,relatime shared:%d - %s %s %s\n", i+2, i, escapeMount(m.Root),
			escapeMount(m.MountPoint), i, m.FSType, escapeMount(m.Source), m.SuperOpts)
	}
	return b.String()
}

// addMountinfoSeeds adds the fixtures and this host's mountinfo files (one per namespace).
func addMountinfoSeeds(f *testing.F) {
	ents, _ := os.ReadDir(mountinfoDir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(mountinfoDir, e.Name())); err == nil {
			f.Add(b)
		}
	}
	for _, b := range fuzzseed.Proc("/proc", "mountinfo", 8) {
		f.Add(b)
	}
}

// FuzzParseMountinfo: a file the oracle accepts parses to its mounts, and the mounts written
// back the kernel's way parse to themselves; any other is an error naming the file and the
// first bad line.
func FuzzParseMountinfo(f *testing.F) {
	addMountinfoSeeds(f)
	const path = "/proc/4242/mountinfo"
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseMountinfo(path, data)
		want, bad := mountinfoOracle(string(data))
		if bad > 0 {
			checkRejected(t, path, bad, got, err)
			return
		}
		if err != nil {
			t.Fatalf("well-formed file rejected: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseMountinfo =\n%q\nwant\n%q", got, want)
		}
		text := renderMountinfo(got)
		if again, err := ParseMountinfo(path, []byte(text)); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("written back as %q the mounts parse to %q, %v; want %q", text, again, err, got)
		}
	})
}

// FuzzUnescapeMount: unescaping undoes the kernel's escaping of any path, decodes exactly
// the one-byte octal escapes, and keeps everything else as it is.
func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/plain`, `/a\040b`, `/end\040`, `/bs\134`, `/short\04`, `/notoctal\089`, "/nbsp\u00a0/cr\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unescapeMount(escapeMount(s)); got != s {
			t.Fatalf("unescapeMount(escapeMount(%q)) = %q", s, got)
		}
		if got, want := unescapeMount(s), unescapeOracle(s); got != want {
			t.Fatalf("unescapeMount(%q) = %q, want %q", s, got, want)
		}
	})
}

// FuzzDiscover: whatever the mountinfo, Discover either fails or returns a layout made of
// what the file says: V2 the mount point of a cgroup2 mount showing a whole hierarchy ("/"
// or "/.."...), the one showing the most of it; each V1 controller the mount point of a v1
// cgroup mount whose super options name it, and never a hierarchy flag or a name= option.
func FuzzDiscover(f *testing.F) {
	addMountinfoSeeds(f)
	f.Add([]byte("40 22 0:38 /.. /a rw - cgroup2 cgroup2 rw\n41 22 0:38 / /b rw - cgroup2 cgroup2 rw\n"))
	f.Add([]byte("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,name=x,xattr,,\n41 31 0:38 / /u rw - cgroup2 cgroup2 rw\n"))
	path := filepath.Join(f.TempDir(), "mountinfo")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Discover(path, "")
		mounts, perr := ParseMountinfo(path, data)
		if perr != nil {
			if err == nil || err.Error() != perr.Error() {
				t.Fatalf("Discover of a malformed file: %v, want %v", err, perr)
			}
			return
		}
		best := -1
		for _, m := range mounts {
			if r, ok := rootRank(m.Root); ok && m.FSType == "cgroup2" && r > best {
				best = r
			}
		}
		if best < 0 {
			if err != ErrNoCgroup2 {
				t.Fatalf("no whole cgroup2 hierarchy, Discover = %+v, %v; want ErrNoCgroup2", l, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		v2ok := false
		for _, m := range mounts {
			if r, ok := rootRank(m.Root); ok && m.FSType == "cgroup2" && r == best && m.MountPoint == l.V2 {
				v2ok = true
			}
		}
		if !v2ok {
			t.Fatalf("V2 = %q is not a cgroup2 mount showing the most of the hierarchy (%d ..)", l.V2, best)
		}
		for ctrl, mp := range l.V1 {
			if notController[ctrl] || strings.Contains(ctrl, "=") {
				t.Fatalf("V1 has %q (%s), not a controller", ctrl, mp)
			}
			found := false
			for _, m := range mounts {
				_, ok := rootRank(m.Root)
				if ok && m.FSType == "cgroup" && m.MountPoint == mp && strings.Contains(","+m.SuperOpts+",", ","+ctrl+",") {
					found = true
				}
			}
			if !found {
				t.Fatalf("V1[%q] = %q is not a cgroup mount naming %s", ctrl, mp, ctrl)
			}
		}
		if l.V2Controllers == nil {
			t.Fatal("V2Controllers is nil")
		}
	})
}

// TestUnescapeMountFuzzFindings: "\700" was decoded as a byte overflowing to 0xc0 ("\400" to
// a NUL byte): the kernel escapes single bytes, \000 to \377, so these are literal text.
func TestUnescapeMountFuzzFindings(t *testing.T) {
	for in, want := range map[string]string{`0\7000`: `0\7000`, `/x\400y`: `/x\400y`, `/big\777`: `/big\777`, `/ok\377`: "/ok\xff"} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
	mounts, err := ParseMountinfo("x", []byte(`41 22 254:1 / /mnt/a\700b rw - ext4 /dev/vda1 rw`+"\n"))
	if err != nil || len(mounts) != 1 || mounts[0].MountPoint != `/mnt/a\700b` {
		t.Errorf("mount point \\700: %q, %v", mounts, err)
	}
}

// TestParseMountinfoFuzzFindings: a mount point holding white space the kernel does not
// escape (a no-break space, a vertical tab, a carriage return: the line below is what 6.18
// wrote for a tmpfs on such a directory) was split there, so the mount point was cut short
// and every later field shifted (file system type "rw,relatime", ...); and a line one field
// short was taken for a whole one.
func TestParseMountinfoFuzzFindings(t *testing.T) {
	for data, want := range map[string]Mount{
		"48 26 0:40 / /tmp/mi.38Gg/a\u00a0b\vc\rd rw,relatime - tmpfs kpodfuzz rw\n": {Root: "/", MountPoint: "/tmp/mi.38Gg/a\u00a0b\vc\rd", FSType: "tmpfs", Source: "kpodfuzz", SuperOpts: "rw"},
		"41 22 254:1 /srv/a\u0085b /mnt rw - ext4 /dev/vda1 rw\n":                    {Root: "/srv/a\u0085b", MountPoint: "/mnt", FSType: "ext4", Source: "/dev/vda1", SuperOpts: "rw"},
	} {
		mounts, err := ParseMountinfo("/proc/self/mountinfo", []byte(data))
		if err != nil || len(mounts) != 1 || mounts[0] != want {
			t.Errorf("ParseMountinfo(%q) = %q, %v; want %q", data, mounts, err, want)
		}
	}
	const short = "0 0 0 0\r0 0 - 0 0 0" // five fields before the separator
	if mounts, err := ParseMountinfo("/proc/self/mountinfo", []byte(short)); err == nil || !strings.Contains(err.Error(), "/proc/self/mountinfo:1") {
		t.Errorf("ParseMountinfo(%q) = %q, %v; want an error naming line 1", short, mounts, err)
	}
}
