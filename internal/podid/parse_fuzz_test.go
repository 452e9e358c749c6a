package podid

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/fuzzseed"
)

var (
	canonicalUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	containerID  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// addPathSeeds adds the relative paths of the fixture trees and of this host's cgroups (the
// v2 tree of a hybrid host, the v1 memory tree, or the pure v2 tree), plus one systemd and
// one cgroupfs path of each shape the table tests use.
func addPathSeeds(f *testing.F) {
	for _, root := range []string{fixtures, "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		for _, rel := range fuzzseed.Dirs(root, 200) {
			f.Add(rel)
		}
	}
	sd := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + tUIDs + ".slice"
	for _, p := range []string{
		sd, sd + "/cri-containerd-" + tCID + ".scope", sd + "/crio-" + tCID + ".scope/container", sd + "/docker-" + tCID + ".scope",
		sd + "/crio-conmon-" + tCID + ".scope", "kubepods.slice/kubepods-pod" + tUIDs + ".slice",
		"kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + tUIDs + ".slice",
		"kubepods/burstable/pod" + tUID + "/" + tCID, "kubepods/pod" + tUID + "/crio-" + tCID + "/child",
		"/kubepods/besteffort/pod" + tUID + "/", "docker/" + tCID, "system.slice/containerd.service",
	} {
		f.Add(p)
	}
}

// FuzzParse: whatever the path, what Parse says is what the path says. A pod UID is in the
// canonical 8-4-4-4-12 lower-case hex form and is spelt in the pod directory's name; a
// container ID is 64 lower-case hex digits and is the container directory's name less the
// runtime's prefix and ".scope"; the pod directory is a prefix of the path and the container
// directory is one level below it; the pod directory and the container directory parse to
// the same identity (children of a container belong to it).
func FuzzParse(f *testing.F) {
	addPathSeeds(f)
	f.Fuzz(func(t *testing.T, rel string) {
		info, ok := Parse(rel)
		if !ok {
			if info != (PathInfo{}) {
				t.Fatalf("Parse(%q) = %+v with ok false", rel, info)
			}
			return
		}
		clean := strings.Trim(rel, "/")
		if !canonicalUID.MatchString(info.PodUID) {
			t.Fatalf("Parse(%q): pod UID %q is not canonical", rel, info.PodUID)
		}
		switch info.QoS {
		case Guaranteed, Burstable, BestEffort:
		default:
			t.Fatalf("Parse(%q): QoS %q", rel, info.QoS)
		}
		podDir := info.PodRel[strings.LastIndex(info.PodRel, "/")+1:]
		switch info.Driver {
		case Systemd:
			if !strings.HasSuffix(podDir, "-pod"+strings.ReplaceAll(info.PodUID, "-", "_")+".slice") &&
				!strings.HasSuffix(podDir, "-pod"+info.PodUID+".slice") {
				t.Fatalf("Parse(%q): pod UID %s is not the systemd pod slice %q", rel, info.PodUID, podDir)
			}
		case Cgroupfs:
			if podDir != "pod"+info.PodUID {
				t.Fatalf("Parse(%q): pod UID %s is not the cgroupfs pod directory %q", rel, info.PodUID, podDir)
			}
		default:
			t.Fatalf("Parse(%q): driver %q", rel, info.Driver)
		}
		if info.PodRel != clean && !strings.HasPrefix(clean, info.PodRel+"/") {
			t.Fatalf("Parse(%q): pod directory %q is not a prefix of the path", rel, info.PodRel)
		}
		if (info.ContainerID == "") != (info.ContainerRel == "") || info.ContainerID == "" && info.Runtime != "" {
			t.Fatalf("Parse(%q) = %+v: container fields half set", rel, info)
		}
		pod, ok := Parse(info.PodRel)
		if want := (PathInfo{PodUID: info.PodUID, QoS: info.QoS, Driver: info.Driver, PodRel: info.PodRel}); !ok || pod != want {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v (the pod of %q)", info.PodRel, pod, ok, want, rel)
		}
		if info.ContainerID == "" {
			if clean != info.PodRel {
				t.Fatalf("Parse(%q): a path below the pod directory without a container", rel)
			}
			return
		}
		if !containerID.MatchString(info.ContainerID) {
			t.Fatalf("Parse(%q): container ID %q is not 64 hex digits", rel, info.ContainerID)
		}
		name, found := strings.CutPrefix(info.ContainerRel, info.PodRel+"/")
		if !found || strings.Contains(name, "/") || info.ContainerRel != clean && !strings.HasPrefix(clean, info.ContainerRel+"/") {
			t.Fatalf("Parse(%q): container directory %q is not one level below the pod's %q on the path", rel, info.ContainerRel, info.PodRel)
		}
		prefix := map[string]string{"containerd": "cri-containerd-", "cri-o": "crio-", "docker": "docker-", "": ""}[info.Runtime]
		if name != prefix+info.ContainerID && name != prefix+info.ContainerID+".scope" {
			t.Fatalf("Parse(%q): container %q of runtime %q is not the directory %q", rel, info.ContainerID, info.Runtime, name)
		}
		if ctr, ok := Parse(info.ContainerRel); !ok || ctr != info {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v (the container of %q)", info.ContainerRel, ctr, ok, info, rel)
		}
	})
}

// FuzzParseKubeletPaths: every path the kubelet makes, for any pod UID and container ID, below
// any prefix (kind, a nested runtime) and with any child cgroups below the container, parses
// to exactly its pod and container.
func FuzzParseKubeletPaths(f *testing.F) {
	uid, _ := hex.DecodeString(strings.ReplaceAll(tUID, "-", ""))
	cid, _ := hex.DecodeString(tCID)
	f.Add(uid, cid, uint8(0), "", "")
	f.Add(uid, cid, uint8(0x1f), "kubelet.slice", "worker/deeper")
	f.Add(uid, cid, uint8(0x26), "docker/"+tCID, "")
	f.Fuzz(func(t *testing.T, uidBytes, cidBytes []byte, shape uint8, prefix, children string) {
		if len(uidBytes) < 16 || len(cidBytes) < 32 {
			return
		}
		h := hex.EncodeToString(uidBytes[:16])
		uid := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
		cid := hex.EncodeToString(cidBytes[:32])
		qos := []QoS{Guaranteed, Burstable, BestEffort}[int(shape&3)%3]
		driver := []Driver{Systemd, Cgroupfs}[shape>>2&1]
		runtime := []string{"containerd", "cri-o", "docker", "containerd"}[shape>>3&3]
		withContainer := shape&0x20 == 0
		kind := shape&0x40 != 0 && driver == Systemd

		// The prefix and the children are any directory names; a name the kubelet's own
		// top-level cgroup could have (kubepods, *-kubepods.slice) would start the pod
		// hierarchy there, and the child of a container is always a child.
		var pre []string
		for _, c := range strings.Split(prefix, "/") {
			if c != "" && c != "kubepods" && c != "kubepods.slice" && !strings.HasSuffix(c, "-kubepods.slice") {
				pre = append(pre, c)
			}
		}
		var kids []string
		for _, c := range strings.Split(children, "/") {
			if c != "" {
				kids = append(kids, c)
			}
		}

		parts := pre
		var podRel, ctrRel, runtimeWant string
		if driver == Systemd {
			top := "kubepods"
			if kind {
				parts = append(parts, "kubelet.slice")
				top = "kubelet-kubepods"
			}
			parts = append(parts, top+".slice")
			slice := top
			if qos != Guaranteed {
				slice = top + "-" + string(qos)
				parts = append(parts, slice+".slice")
			}
			parts = append(parts, slice+"-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
			podRel = strings.Join(parts, "/")
			if withContainer {
				name := map[string]string{"containerd": "cri-containerd-", "cri-o": "crio-", "docker": "docker-"}[runtime] + cid + ".scope"
				parts, runtimeWant = append(parts, name), runtime
			}
		} else {
			parts = append(parts, "kubepods")
			if qos != Guaranteed {
				parts = append(parts, string(qos))
			}
			parts = append(parts, "pod"+uid)
			podRel = strings.Join(parts, "/")
			if withContainer {
				name := cid // containerd and docker name the directory after the bare id
				if runtime == "cri-o" {
					name, runtimeWant = "crio-"+cid, "cri-o"
				}
				parts = append(parts, name)
			}
		}
		if withContainer {
			ctrRel = strings.Join(parts, "/")
			parts = append(parts, kids...)
		}
		rel := strings.Join(parts, "/")
		want := PathInfo{PodUID: uid, QoS: qos, Driver: driver, PodRel: podRel}
		if withContainer {
			want.ContainerID, want.Runtime, want.ContainerRel = cid, runtimeWant, ctrRel
		}
		if got, ok := Parse(rel); !ok || got != want {
			t.Fatalf("Parse(%q) =\n  %+v, %v\nwant\n  %+v", rel, got, ok, want)
		}
	})
}

// FuzzPIDs: cgroup.procs, one process id per line. Every line that is a process id (a
// positive decimal number) is returned, in order; nothing else is: a process id is never 0 or
// negative (/proc/-1 is no process, and a container whose only "process" it were would be
// asked about forever).
func FuzzPIDs(f *testing.F) {
	for _, s := range []string{"12\n7\n\n300\n", "", "1\n", "007\n", "4194304\n", "x\n12\n"} {
		f.Add([]byte(s))
	}
	for _, root := range []string{fixtures, "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		for _, b := range fuzzseed.Files(root, 8, "cgroup.procs") {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := PIDs(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range got {
			if p <= 0 {
				t.Fatalf("PIDs(%q) = %v: %d is not a process id", data, got, p)
			}
		}
		var want []int
		for _, line := range strings.Split(string(data), "\n") {
			if s := strings.TrimSpace(line); s != "" && strings.Trim(s, "0123456789") == "" && s[0] != '0' && len(s) < 10 {
				n, _ := strconv.Atoi(s)
				want = append(want, n)
			}
		}
		// want is what the kernel writes; got may hold more (PIDs skips only what is not a
		// number), but the kernel's ones in order.
		i := 0
		for _, p := range got {
			if i < len(want) && p == want[i] {
				i++
			}
		}
		if i != len(want) {
			t.Fatalf("PIDs(%q) = %v, missing some of %v", data, got, want)
		}
	})
}

// TestPIDsFuzzFindings: cgroup.procs holds 0 for a process in a pid namespace the reader
// cannot see (task_pid_vnr), and 0 came back as a process id: /proc/0 is no process, so the
// sandbox check of such a container stayed undecided. Nor is -1.
func TestPIDsFuzzFindings(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0\n12\n0\n-1\n300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := PIDs(dir); err != nil || len(got) != 2 || got[0] != 12 || got[1] != 300 {
		t.Errorf("PIDs = %v, %v; want [12 300]", got, err)
	}
}
