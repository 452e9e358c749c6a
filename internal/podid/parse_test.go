package podid

import (
	"strings"
	"testing"
)

// Identities used in the path table (the same shapes the kubelet writes).
const (
	tUID  = "0c5a3f2e-1b7d-4c19-9e2a-6f8d1c3b5a70"
	tUIDs = "0c5a3f2e_1b7d_4c19_9e2a_6f8d1c3b5a70" // systemd-escaped
	tCID  = "deb43f6f0a91228c0e312ae8dc8a046e8fe30539f912829856968db716bdc481"
)

func TestParse(t *testing.T) {
	sdPod := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + tUIDs + ".slice"
	sdBE := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + tUIDs + ".slice"
	sdG := "kubepods.slice/kubepods-pod" + tUIDs + ".slice"
	kind := "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + tUIDs + ".slice"
	kindG := "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + tUIDs + ".slice"
	nested := "docker/ffbfd7ae8c8306730e2a2f2cd6ca5fff3e6f9678160d4f52f50ba3425d700608/kubepods/besteffort/pod" + tUID

	tests := []struct {
		name string
		rel  string
		want PathInfo
		ok   bool
	}{
		// systemd driver
		{"systemd burstable containerd", sdPod + "/cri-containerd-" + tCID + ".scope",
			PathInfo{PodUID: tUID, QoS: Burstable, Driver: Systemd, PodRel: sdPod, Runtime: "containerd", ContainerID: tCID, ContainerRel: sdPod + "/cri-containerd-" + tCID + ".scope"}, true},
		{"systemd burstable pod dir only", sdPod,
			PathInfo{PodUID: tUID, QoS: Burstable, Driver: Systemd, PodRel: sdPod}, true},
		{"systemd besteffort pod dir only", sdBE,
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Systemd, PodRel: sdBE}, true},
		{"systemd guaranteed containerd", sdG + "/cri-containerd-" + tCID + ".scope",
			PathInfo{PodUID: tUID, QoS: Guaranteed, Driver: Systemd, PodRel: sdG, Runtime: "containerd", ContainerID: tCID, ContainerRel: sdG + "/cri-containerd-" + tCID + ".scope"}, true},
		{"systemd guaranteed pod dir only", sdG,
			PathInfo{PodUID: tUID, QoS: Guaranteed, Driver: Systemd, PodRel: sdG}, true},
		{"systemd cri-o", sdBE + "/crio-" + tCID + ".scope",
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Systemd, PodRel: sdBE, Runtime: "cri-o", ContainerID: tCID, ContainerRel: sdBE + "/crio-" + tCID + ".scope"}, true},
		{"systemd cri-o container subgroup", sdBE + "/crio-" + tCID + ".scope/container",
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Systemd, PodRel: sdBE, Runtime: "cri-o", ContainerID: tCID, ContainerRel: sdBE + "/crio-" + tCID + ".scope"}, true},
		{"systemd docker", sdBE + "/docker-" + tCID + ".scope",
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Systemd, PodRel: sdBE, Runtime: "docker", ContainerID: tCID, ContainerRel: sdBE + "/docker-" + tCID + ".scope"}, true},
		{"systemd child cgroup of a container", sdPod + "/cri-containerd-" + tCID + ".scope/worker/deeper",
			PathInfo{PodUID: tUID, QoS: Burstable, Driver: Systemd, PodRel: sdPod, Runtime: "containerd", ContainerID: tCID, ContainerRel: sdPod + "/cri-containerd-" + tCID + ".scope"}, true},
		{"leading and trailing slashes", "/" + sdPod + "/cri-containerd-" + tCID + ".scope/",
			PathInfo{PodUID: tUID, QoS: Burstable, Driver: Systemd, PodRel: sdPod, Runtime: "containerd", ContainerID: tCID, ContainerRel: sdPod + "/cri-containerd-" + tCID + ".scope"}, true},
		{"kind besteffort", kind + "/cri-containerd-" + tCID + ".scope",
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Systemd, PodRel: kind, Runtime: "containerd", ContainerID: tCID, ContainerRel: kind + "/cri-containerd-" + tCID + ".scope"}, true},
		{"kind guaranteed", kindG + "/cri-containerd-" + tCID + ".scope",
			PathInfo{PodUID: tUID, QoS: Guaranteed, Driver: Systemd, PodRel: kindG, Runtime: "containerd", ContainerID: tCID, ContainerRel: kindG + "/cri-containerd-" + tCID + ".scope"}, true},

		// cgroupfs driver
		{"cgroupfs burstable bare id", "kubepods/burstable/pod" + tUID + "/" + tCID,
			PathInfo{PodUID: tUID, QoS: Burstable, Driver: Cgroupfs, PodRel: "kubepods/burstable/pod" + tUID, ContainerID: tCID, ContainerRel: "kubepods/burstable/pod" + tUID + "/" + tCID}, true},
		{"cgroupfs besteffort pod dir only", "kubepods/besteffort/pod" + tUID,
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Cgroupfs, PodRel: "kubepods/besteffort/pod" + tUID}, true},
		{"cgroupfs guaranteed", "kubepods/pod" + tUID + "/" + tCID,
			PathInfo{PodUID: tUID, QoS: Guaranteed, Driver: Cgroupfs, PodRel: "kubepods/pod" + tUID, ContainerID: tCID, ContainerRel: "kubepods/pod" + tUID + "/" + tCID}, true},
		{"cgroupfs cri-o", "kubepods/besteffort/pod" + tUID + "/crio-" + tCID,
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Cgroupfs, PodRel: "kubepods/besteffort/pod" + tUID, Runtime: "cri-o", ContainerID: tCID, ContainerRel: "kubepods/besteffort/pod" + tUID + "/crio-" + tCID}, true},
		{"cgroupfs child of a container", "kubepods/pod" + tUID + "/" + tCID + "/child",
			PathInfo{PodUID: tUID, QoS: Guaranteed, Driver: Cgroupfs, PodRel: "kubepods/pod" + tUID, ContainerID: tCID, ContainerRel: "kubepods/pod" + tUID + "/" + tCID}, true},
		{"docker-nested cgroupfs", nested + "/" + tCID,
			PathInfo{PodUID: tUID, QoS: BestEffort, Driver: Cgroupfs, PodRel: nested, ContainerID: tCID, ContainerRel: nested + "/" + tCID}, true},

		// not pod cgroups
		{"root", "", PathInfo{}, false},
		{"init.scope", "init.scope", PathInfo{}, false},
		{"containerd.service", "system.slice/containerd.service", PathInfo{}, false},
		{"user session", "user.slice/user-1000.slice/session-3.scope", PathInfo{}, false},
		{"plain docker container", "docker/" + tCID, PathInfo{}, false},
		{"systemd kubepods slice", "kubepods.slice", PathInfo{}, false},
		{"systemd qos slice", "kubepods.slice/kubepods-burstable.slice", PathInfo{}, false},
		{"cgroupfs kubepods", "kubepods", PathInfo{}, false},
		{"cgroupfs qos dir", "kubepods/besteffort", PathInfo{}, false},
		{"kind kubelet slice", "kubelet.slice/kubelet-kubepods.slice", PathInfo{}, false},
		{"kubepods-like name", "system.slice/kubepods-helper.service/pod" + tUID, PathInfo{}, false},

		// malformed identities
		{"crio-conmon systemd", sdBE + "/crio-conmon-" + tCID + ".scope", PathInfo{}, false},
		{"crio-conmon cgroupfs", "kubepods/besteffort/pod" + tUID + "/crio-conmon-" + tCID, PathInfo{}, false},
		{"uid too short", "kubepods/besteffort/pod" + tUID[:35], PathInfo{}, false},
		{"uid uppercase", "kubepods/besteffort/pod" + strings.ToUpper(tUID), PathInfo{}, false},
		{"uid without dashes", "kubepods/besteffort/pod" + strings.ReplaceAll(tUID, "-", "") + "abcd", PathInfo{}, false},
		{"uid non-hex", "kubepods/besteffort/pod" + "0c5a3f2e-1b7d-4c19-9e2a-6f8d1c3b5a7g", PathInfo{}, false},
		{"systemd uid malformed", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + tUIDs[:30] + ".slice", PathInfo{}, false},
		{"systemd pod without .slice", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + tUIDs, PathInfo{}, false},
		{"cgroupfs pod without prefix", "kubepods/besteffort/" + tUID, PathInfo{}, false},
		{"container id 63 hex", sdPod + "/cri-containerd-" + tCID[:63] + ".scope", PathInfo{}, false},
		{"container id 65 hex", "kubepods/pod" + tUID + "/" + tCID + "0", PathInfo{}, false},
		{"container id uppercase", sdPod + "/docker-" + strings.ToUpper(tCID) + ".scope", PathInfo{}, false},
		{"container id non-hex", "kubepods/pod" + tUID + "/" + tCID[:63] + "z", PathInfo{}, false},
		{"unknown runtime prefix", sdPod + "/containerd-" + tCID + ".scope", PathInfo{}, false},
		{"non-container child of a pod", sdPod + "/something.scope", PathInfo{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse(tc.rel)
			if ok != tc.ok {
				t.Fatalf("Parse(%q) ok = %v, want %v (info %+v)", tc.rel, ok, tc.ok, got)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) =\n  %+v\nwant\n  %+v", tc.rel, got, tc.want)
			}
		})
	}
}
