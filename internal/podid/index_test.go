package podid

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"
)

const (
	fixtures  = "../../testdata/cgroupfs"
	procRoot  = "../../testdata/proc"
	runtimeCD = "containerd"
)

type wantCtr struct {
	id, runtime, rel string
	sandbox          bool
	children         []string // rels of the directories below the container, in walk order
}

type wantPod struct {
	uid    string
	qos    QoS
	driver Driver
	rel    string
	ctrs   []wantCtr
}

type scanCase struct {
	layout string // directory under testdata/cgroupfs
	v2     string // cgroup2 root below the layout directory ("" for the layout directory)
	pods   []wantPod
	noise  []string // directories that exist and must not belong to any pod
}

func scanCases() []scanCase {
	cd := func(id string) string { return "cri-containerd-" + id + ".scope" }
	const (
		cdPodA = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c5a3f2e_1b7d_4c19_9e2a_6f8d1c3b5a70.slice"
		cdPodB = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e41b9d0_53a2_4f6e_8c1d_2b9a0e4f7c13.slice"
		cdPodC = "kubepods.slice/kubepods-podd3f8a2c1_6b4e_4a09_b7d5_91e0c2f4a863.slice"
		cdSbA  = "c5e1748c83322244a289165adef73c68c7c6cca396fdc5266d90377b74795b75"
		cdAppA = "deb43f6f0a91228c0e312ae8dc8a046e8fe30539f912829856968db716bdc481"
		cdSbB  = "9e5616a364a8a837301d378899971a9f16a71d2ded9f9ccee5ce32820fa1595f"
		cdAppB = "d36e10ff75e90c25debb66426b0ec69d1766914e5b9ae47cb41a5383b14f1404"
		cdSbC  = "9d3b51ab7459e13037801572595c079f713a18b64da1d2eae71b5a65cb1d9160"
		cdAppC = "78e0654d2cfef3ca680523a75edcd89f26056924c70dff7ff346faf7d7e77ee9"

		crPodA   = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e3d4c_5b6a_4978_8695_a4b3c2d1e0f9.slice"
		crPodB   = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9a8b7c6d_5e4f_4a3b_9c2d_1e0f9a8b7c6d.slice"
		crInfraA = "0caa7c71f89e2c696b53ea759218d69204036cf3648e359819afe2d06aa02534"
		crAppA   = "21b9ec203dc2a98fb032ad971d28afd6c708d96bd6e3b59587f747b9d3956e45"
		crAppB   = "fcf5b0c1faf8553d3e44a309a86a3886557382852d571b70fd4b56ca3bb9b8a5"

		dkPod   = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2c4e6a8b_0d1f_4e3c_a5b7_c9d1e3f5a7b9.slice"
		dkSb    = "b4465d18329c86a92efb2425efd00c9417c037bd26a3ff5126cebbc5ce1eadcd"
		dkApp   = "29e9e26202eb97feb633717e5d47a4ca4459bed7b4bff068e6c0b7edbc55970f"
		dkAlone = "a43a9f730a6dfa2b2b6d25e708a33664bc8a9b992729f02b3ba8a2e108755939"

		hyPodA = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05"
		hyPodG = "kubepods/poda91c7e3d-24f5-4b8a-8e06-c3d5f1b2e947"
		hySbA  = "48877a0826f4c3f1479c87d32b739c46716806dd07868b92e9f903d09b2da291"
		hyAppA = "7575cbf70158515553323a60a9126437bdbcb00598572642a3efc44fef5868c9"
		hyAppG = "63f1f9fd5166f82fed77535f2940bd43ac5e88abb67071d3572d64c66996af93"

		kdPodBE = "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod3e5a7c9b_1d2f_4a6c_8e0b_2d4f6a8c0e1b.slice"
		kdPodBU = "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod4f6b8d0c_2e3a_4b7d_9f1c_3e5a7b9d1f2c.slice"
		kdPodG  = "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod6a8c0e2d_4f5b_4c9e_a1d3_5f7b9c1e3a4d.slice"
		kdSbBE  = "84ad899c80f43e32310756259242d963461016d556706f32e2f495569b8becd4"
		kdAppBE = "6e64566b0c3ef06255071b8cb7b74b1ce10b45c3eba511f95d0471147beae225"
		kdSbBU  = "4758a3ec212f6f7c0e0c1d1ff9c787b51f87c51cc0057d0a9d29a262472fd767"
		kdAppBU = "77ddffcb855af33d55f99bc1c19bb173e18c3dfe7e2261825c976d2d942c86cd"
		kdAppG  = "4a024b074bc64c81423a71e5ed78b2d3853cfa6737cd7d9dbced2138cf172dac"
		dnNode  = "docker/ffbfd7ae8c8306730e2a2f2cd6ca5fff3e6f9678160d4f52f50ba3425d700608"
		dnOther = "docker/4c0799f703fac456145762ac2b9e45ca4923c7a5a678f45de8221c58d7692922"
		dnPodBE = dnNode + "/kubepods/besteffort/pod8b0d2f4a-6c7e-4d9f-b1a3-7c9e1f3b5d6e"
		dnPodG  = dnNode + "/kubepods/pod9c1e3a5b-7d8f-4e0a-82b4-8d0f2a4c6e7f"
		dnSbBE  = "ea78abf018bacf04c039fc791d17d4a245b41cce7ef322b6c32ae52cdd43be94"
		dnAppBE = "ae9fabaa7929e764d04af632546072127a4ec0aa311a8edd6269edb62aaa6ae8"
		dnAppG  = "125d5a72fcbc780ee5f5271e6fc2d8bc45f355f814277e4ee8910f1faddd363a"
	)
	return []scanCase{
		{
			layout: "v2-systemd-containerd",
			pods: []wantPod{
				{"0c5a3f2e-1b7d-4c19-9e2a-6f8d1c3b5a70", Burstable, Systemd, cdPodA, []wantCtr{
					{cdSbA, runtimeCD, cdPodA + "/" + cd(cdSbA), true, nil},
					{cdAppA, runtimeCD, cdPodA + "/" + cd(cdAppA), false, nil},
				}},
				{"7e41b9d0-53a2-4f6e-8c1d-2b9a0e4f7c13", BestEffort, Systemd, cdPodB, []wantCtr{
					{cdSbB, runtimeCD, cdPodB + "/" + cd(cdSbB), true, nil},
					// processes live only in the child cgroup: not a sandbox, and the child's id counts
					{cdAppB, runtimeCD, cdPodB + "/" + cd(cdAppB), false, []string{cdPodB + "/" + cd(cdAppB) + "/worker"}},
				}},
				{"d3f8a2c1-6b4e-4a09-b7d5-91e0c2f4a863", Guaranteed, Systemd, cdPodC, []wantCtr{
					{cdSbC, runtimeCD, cdPodC + "/" + cd(cdSbC), true, nil},
					{cdAppC, runtimeCD, cdPodC + "/" + cd(cdAppC), false, nil},
				}},
			},
			noise: []string{"", "init.scope", "system.slice", "system.slice/containerd.service", "kubepods.slice",
				"kubepods.slice/kubepods-burstable.slice", "kubepods.slice/kubepods-besteffort.slice"},
		},
		{
			layout: "v2-systemd-crio",
			pods: []wantPod{
				{"1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", Burstable, Systemd, crPodA, []wantCtr{
					{crInfraA, "cri-o", crPodA + "/crio-" + crInfraA + ".scope", true, nil},
					{crAppA, "cri-o", crPodA + "/crio-" + crAppA + ".scope", false, []string{crPodA + "/crio-" + crAppA + ".scope/container"}},
				}},
				{"9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", BestEffort, Systemd, crPodB, []wantCtr{
					{crAppB, "cri-o", crPodB + "/crio-" + crAppB + ".scope", false, nil},
				}},
			},
			noise: []string{"", "init.scope", "system.slice/crio.service",
				crPodA + "/crio-conmon-" + crInfraA + ".scope", crPodA + "/crio-conmon-" + crAppA + ".scope",
				crPodB + "/crio-conmon-" + crAppB + ".scope"},
		},
		{
			layout: "v2-systemd-docker",
			pods: []wantPod{
				{"2c4e6a8b-0d1f-4e3c-a5b7-c9d1e3f5a7b9", BestEffort, Systemd, dkPod, []wantCtr{
					{dkSb, "docker", dkPod + "/docker-" + dkSb + ".scope", true, nil},
					{dkApp, "docker", dkPod + "/docker-" + dkApp + ".scope", false, nil},
				}},
			},
			noise: []string{"", "system.slice/docker.service", "system.slice/cri-docker.service",
				"system.slice/docker-" + dkAlone + ".scope"},
		},
		{
			layout: "hybrid-cgroupfs",
			v2:     "unified",
			pods: []wantPod{
				{"5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05", Burstable, Cgroupfs, hyPodA, []wantCtr{
					{hySbA, "", hyPodA + "/" + hySbA, true, nil},
					{hyAppA, "", hyPodA + "/" + hyAppA, false, nil},
				}},
				{"a91c7e3d-24f5-4b8a-8e06-c3d5f1b2e947", Guaranteed, Cgroupfs, hyPodG, []wantCtr{
					{hyAppG, "", hyPodG + "/" + hyAppG, false, nil},
				}},
			},
			noise: []string{"", "system.slice/docker.service", "kubepods", "kubepods/burstable", "kubepods/besteffort"},
		},
		{
			layout: "kind-nested",
			pods: []wantPod{
				{"3e5a7c9b-1d2f-4a6c-8e0b-2d4f6a8c0e1b", BestEffort, Systemd, kdPodBE, []wantCtr{
					{kdSbBE, runtimeCD, kdPodBE + "/" + cd(kdSbBE), true, nil},
					{kdAppBE, runtimeCD, kdPodBE + "/" + cd(kdAppBE), false, nil},
				}},
				{"4f6b8d0c-2e3a-4b7d-9f1c-3e5a7b9d1f2c", Burstable, Systemd, kdPodBU, []wantCtr{
					{kdSbBU, runtimeCD, kdPodBU + "/" + cd(kdSbBU), true, nil},
					{kdAppBU, runtimeCD, kdPodBU + "/" + cd(kdAppBU), false, nil},
				}},
				{"6a8c0e2d-4f5b-4c9e-a1d3-5f7b9c1e3a4d", Guaranteed, Systemd, kdPodG, []wantCtr{
					{kdAppG, runtimeCD, kdPodG + "/" + cd(kdAppG), false, nil},
				}},
			},
			noise: []string{"", "system.slice/kubelet.service", "system.slice/containerd.service", "kubelet.slice",
				"kubelet.slice/kubelet-kubepods.slice", "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice"},
		},
		{
			layout: "docker-nested-cgroupfs",
			pods: []wantPod{
				{"8b0d2f4a-6c7e-4d9f-b1a3-7c9e1f3b5d6e", BestEffort, Cgroupfs, dnPodBE, []wantCtr{
					{dnSbBE, "", dnPodBE + "/" + dnSbBE, true, nil},
					{dnAppBE, "", dnPodBE + "/" + dnAppBE, false, nil},
				}},
				{"9c1e3a5b-7d8f-4e0a-82b4-8d0f2a4c6e7f", Guaranteed, Cgroupfs, dnPodG, []wantCtr{
					{dnAppG, "", dnPodG + "/" + dnAppG, false, nil},
				}},
			},
			noise: []string{"", "docker", dnOther, dnNode, dnNode + "/system.slice/kubelet.service", dnNode + "/kubepods"},
		},
	}
}

// allDirs lists the inode of every directory below root, independently of cgroupfs.Walk.
func allDirs(t *testing.T, root string) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[cgroupfstest.Inode(t, path)] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScanFixtures(t *testing.T) {
	for _, tc := range scanCases() {
		t.Run(tc.layout, func(t *testing.T) {
			root := filepath.Join(fixtures, tc.layout, tc.v2)
			s := NewScanner(root, procRoot)
			checkScan(t, s, root, tc)
			idx := checkScan(t, s, root, tc) // again, from the paths parsed by the first scan
			if len(s.parsed) != idx.Dirs {
				t.Errorf("%d paths remembered parsed, %d directories in the tree", len(s.parsed), idx.Dirs)
			}
		})
	}
}

// TestScannerParse: a directory's path is parsed once; the same id at another path is
// parsed again; an id no longer in the tree is forgotten at the next scan.
func TestScannerParse(t *testing.T) {
	s := NewScanner(t.TempDir(), procRoot)
	pod := "kubepods/besteffort/pod0a1b2c3d-0000-4000-8000-00000000000a"
	info, ok := s.parse(cgroupfs.Dir{Rel: pod, ID: 7})
	if !ok || info.PodRel != pod {
		t.Fatalf("parse(%s) = %+v, %v", pod, info, ok)
	}
	if p := s.parsed[7]; p.rel != pod || !p.ok {
		t.Fatalf("remembered %+v", p)
	}
	if info, ok := s.parse(cgroupfs.Dir{Rel: "system.slice", ID: 7}); ok || info.PodRel != "" {
		t.Fatalf("id 7 at another path: %+v, %v; want not a pod", info, ok)
	}
	if _, err := s.Scan(); err != nil { // a tree of its root only: id 7 is not live
		t.Fatal(err)
	}
	if _, ok := s.parsed[7]; ok || len(s.parsed) != 1 {
		t.Fatalf("after a scan without id 7: %d remembered (%v); want the root only", len(s.parsed), s.parsed)
	}
}

// checkScan scans root and compares the index with tc, using the inodes of root's directories.
func checkScan(t *testing.T, s *Scanner, root string, tc scanCase) *Index {
	t.Helper()
	idx, err := s.Scan()
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	want := append([]wantPod(nil), tc.pods...)
	sort.Slice(want, func(i, j int) bool { return want[i].uid < want[j].uid })
	if len(idx.Pods) != len(want) {
		var got []string
		for _, p := range idx.Pods {
			got = append(got, p.Rel)
		}
		t.Fatalf("%d pods %q, want %d", len(idx.Pods), got, len(want))
	}
	nCtrs := 0
	for i, wp := range want {
		p := idx.Pods[i]
		if p.UID != wp.uid || p.QoS != wp.qos || p.Driver != wp.driver || p.Rel != wp.rel {
			t.Errorf("pod %d = {%s %s %s %s}, want {%s %s %s %s}", i, p.UID, p.QoS, p.Driver, p.Rel, wp.uid, wp.qos, wp.driver, wp.rel)
		}
		if id := cgroupfstest.Inode(t, filepath.Join(root, wp.rel)); p.CgroupID != id {
			t.Errorf("pod %s: CgroupID %d, want inode %d", wp.uid, p.CgroupID, id)
		}
		wc := append([]wantCtr(nil), wp.ctrs...)
		sort.Slice(wc, func(i, j int) bool { return wc[i].id < wc[j].id })
		if len(p.Containers) != len(wc) {
			t.Errorf("pod %s: %d containers, want %d", wp.uid, len(p.Containers), len(wc))
			continue
		}
		nCtrs += len(wc)
		for j, w := range wc {
			c := p.Containers[j]
			if c.ID != w.id || c.Runtime != w.runtime || c.Rel != w.rel || c.Sandbox != w.sandbox {
				t.Errorf("pod %s container %d = {%s %q %s sandbox=%v}, want {%s %q %s sandbox=%v}",
					wp.uid, j, c.ID, c.Runtime, c.Rel, c.Sandbox, w.id, w.runtime, w.rel, w.sandbox)
			}
			if c.Pod != p {
				t.Errorf("container %s: Pod does not point to its pod", c.ID)
			}
			wantIDs := []uint64{cgroupfstest.Inode(t, filepath.Join(root, w.rel))}
			for _, ch := range w.children {
				wantIDs = append(wantIDs, cgroupfstest.Inode(t, filepath.Join(root, ch)))
			}
			if c.CgroupID != wantIDs[0] {
				t.Errorf("container %s: CgroupID %d, want %d", c.ID, c.CgroupID, wantIDs[0])
			}
			if !equalIDs(c.CgroupIDs, wantIDs) {
				t.Errorf("container %s: CgroupIDs %v, want %v", c.ID, c.CgroupIDs, wantIDs)
			}
		}
	}
	if got := len(idx.Containers()); got != nCtrs {
		t.Errorf("Containers() has %d, want %d", got, nCtrs)
	}

	dirs := allDirs(t, root)
	if idx.Dirs != len(dirs) {
		t.Errorf("Dirs = %d, want %d", idx.Dirs, len(dirs))
	}
	if len(idx.Live) != len(dirs) {
		t.Errorf("Live has %d ids, want %d", len(idx.Live), len(dirs))
	}
	for id, path := range dirs {
		if !idx.Live[id] {
			t.Errorf("Live lacks %s (%d)", path, id)
		}
	}

	attributed := map[uint64]bool{}
	for _, p := range idx.Pods {
		attributed[p.CgroupID] = true
		for _, c := range p.Containers {
			for _, id := range c.CgroupIDs {
				attributed[id] = true
			}
		}
	}
	for _, rel := range tc.noise {
		if id := cgroupfstest.Inode(t, filepath.Join(root, rel)); attributed[id] {
			t.Errorf("noise cgroup %q was attributed to a pod", rel)
		}
	}
	return idx
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScanMissingRoot(t *testing.T) {
	_, err := NewScanner(filepath.Join(t.TempDir(), "nope"), procRoot).Scan()
	if err == nil {
		t.Fatal("Scan of a missing root succeeded")
	}
}

func findContainer(t *testing.T, idx *Index, id string) *Container {
	t.Helper()
	for _, c := range idx.Containers() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("container %s not in the index", id)
	return nil
}

// TestScanSandboxDecisions follows the Scanner's memory across scans: a decided container is
// not asked again, an undecided one (no processes, or a process that vanished) is, and the
// decisions of removed containers are forgotten.
func TestScanSandboxDecisions(t *testing.T) {
	const (
		podB  = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e41b9d0_53a2_4f6e_8c1d_2b9a0e4f7c13.slice"
		sbB   = "9e5616a364a8a837301d378899971a9f16a71d2ded9f9ccee5ce32820fa1595f"
		appB  = "d36e10ff75e90c25debb66426b0ec69d1766914e5b9ae47cb41a5383b14f1404"
		podC  = "kubepods.slice/kubepods-podd3f8a2c1_6b4e_4a09_b7d5_91e0c2f4a863.slice"
		sbC   = "9d3b51ab7459e13037801572595c079f713a18b64da1d2eae71b5a65cb1d9160"
		mixed = "0000000000000000000000000000000000000000000000000000000000000001"
	)
	root := cgroupfstest.CopyTree(t, filepath.Join(fixtures, "v2-systemd-containerd"))
	proc := cgroupfstest.CopyTree(t, procRoot)
	// A container whose only process has already exited (no /proc entry).
	cgroupfstest.Write(t, filepath.Join(root, podB, "cri-containerd-"+mixed+".scope", "cgroup.procs"), "99999\n")

	s := NewScanner(root, proc)
	idx, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	sb := findContainer(t, idx, sbB)
	app := findContainer(t, idx, appB)
	gone := findContainer(t, idx, mixed)
	if !sb.Sandbox || app.Sandbox || gone.Sandbox {
		t.Fatalf("sandbox flags: sandbox=%v app=%v exited=%v, want true false false", sb.Sandbox, app.Sandbox, gone.Sandbox)
	}
	if _, decided := s.sandbox[app.CgroupID]; decided {
		t.Errorf("a container without processes was decided (%v); it must be asked again", s.sandbox[app.CgroupID])
	}
	if _, decided := s.sandbox[gone.CgroupID]; decided {
		t.Errorf("a container whose process vanished was decided; it must be asked again")
	}
	if v, decided := s.sandbox[sb.CgroupID]; !decided || !v {
		t.Errorf("sandbox decision not remembered: %v %v", v, decided)
	}

	// The sandbox's process now reads as something else: the decision stands. The empty
	// container gets a pause process: asked again, it is a sandbox now. The vanished pid is
	// back with a shell beside it: not a sandbox.
	cgroupfstest.Write(t, filepath.Join(proc, "2001", "comm"), "bash\n")
	cgroupfstest.Write(t, filepath.Join(proc, "2500", "comm"), "pause\n")
	cgroupfstest.Write(t, filepath.Join(root, app.Rel, "cgroup.procs"), "2500\n")
	cgroupfstest.Write(t, filepath.Join(proc, "99999", "comm"), "pause\n")
	cgroupfstest.Write(t, filepath.Join(proc, "99998", "comm"), "sh\n")
	cgroupfstest.Write(t, filepath.Join(root, gone.Rel, "cgroup.procs"), "99999\n99998\n")
	// Remove the Guaranteed pod.
	removedSb := cgroupfstest.Inode(t, filepath.Join(root, podC, "cri-containerd-"+sbC+".scope"))
	if err := os.RemoveAll(filepath.Join(root, podC)); err != nil {
		t.Fatal(err)
	}

	idx, err = s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if !findContainer(t, idx, sbB).Sandbox {
		t.Error("decided sandbox was re-evaluated")
	}
	if !findContainer(t, idx, appB).Sandbox {
		t.Error("undecided container now running only pause: want sandbox")
	}
	if findContainer(t, idx, mixed).Sandbox {
		t.Error("container running pause and sh reported as sandbox")
	}
	if _, kept := s.sandbox[removedSb]; kept {
		t.Error("decision of a removed container is still remembered")
	}
	if idx.Live[removedSb] {
		t.Error("removed cgroup is still live")
	}
	if len(idx.Pods) != 2 {
		t.Errorf("%d pods after removing one of 3", len(idx.Pods))
	}
	for _, p := range idx.Pods {
		if strings.Contains(p.Rel, "d3f8a2c1") {
			t.Errorf("removed pod %s still indexed", p.UID)
		}
	}

	// A container decided as not a sandbox stays so even when only pause is left in it.
	_ = os.RemoveAll(filepath.Join(proc, "99998"))
	cgroupfstest.Write(t, filepath.Join(root, gone.Rel, "cgroup.procs"), "99999\n")
	idx, err = s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if findContainer(t, idx, mixed).Sandbox {
		t.Error("a container decided as non-sandbox was re-evaluated")
	}
}

func TestPIDs(t *testing.T) {
	dir := t.TempDir()
	if _, err := PIDs(dir); err == nil {
		t.Error("PIDs of a directory without cgroup.procs succeeded")
	}
	cgroupfstest.Write(t, filepath.Join(dir, "cgroup.procs"), "12\n7\n\n300\n")
	got, err := PIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != 12 || got[1] != 7 || got[2] != 300 {
		t.Errorf("PIDs = %v, want [12 7 300]", got)
	}
}
