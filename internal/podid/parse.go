// Package podid maps cgroup directories to Kubernetes pods and containers using nothing but
// the path the kubelet gave them, so attribution works without the API server.
package podid

import (
	"strings"
)

// QoS is a pod's quality-of-service class as encoded in its cgroup path.
type QoS string

const (
	Guaranteed QoS = "guaranteed"
	Burstable  QoS = "burstable"
	BestEffort QoS = "besteffort"
)

// Driver is the kubelet cgroup driver that produced a path.
type Driver string

const (
	Systemd  Driver = "systemd"
	Cgroupfs Driver = "cgroupfs"
)

// PathInfo is what one cgroup path says about a pod.
type PathInfo struct {
	PodUID  string
	QoS     QoS
	Driver  Driver
	PodRel  string // path of the pod's cgroup directory
	Runtime string // containerd, cri-o, docker; "" when the name does not tell
	// ContainerID is set for a container directory (or anything below one).
	ContainerID  string
	ContainerRel string
}

// Parse reads pod and container identity from a cgroup path relative to a hierarchy root,
// e.g. "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope"
// or "kubepods/besteffort/pod<uid>/<id>". Any prefix before the kubepods component (kind,
// nested runtimes) is allowed. ok is false for paths that are not pod cgroups.
func Parse(rel string) (PathInfo, bool) {
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	i := 0
	for ; i < len(parts); i++ {
		if isKubepods(parts[i]) {
			break
		}
	}
	if i >= len(parts)-1 {
		return PathInfo{}, false
	}
	var info PathInfo
	if strings.HasSuffix(parts[i], ".slice") {
		info.Driver = Systemd
	} else {
		info.Driver = Cgroupfs
	}
	i++
	info.QoS = Guaranteed
	if q, ok := qosOf(parts[i], info.Driver); ok {
		info.QoS = q
		i++
		if i >= len(parts) {
			return PathInfo{}, false
		}
	}
	uid, ok := podUIDOf(parts[i], info.Driver)
	if !ok {
		return PathInfo{}, false
	}
	info.PodUID = uid
	info.PodRel = strings.Join(parts[:i+1], "/")
	i++
	if i < len(parts) {
		id, runtime, ok := containerOf(parts[i])
		if !ok {
			return PathInfo{}, false
		}
		info.ContainerID, info.Runtime = id, runtime
		info.ContainerRel = strings.Join(parts[:i+1], "/")
	}
	return info, true
}

func isKubepods(s string) bool {
	return s == "kubepods" || s == "kubepods.slice" || strings.HasSuffix(s, "-kubepods.slice")
}

func qosOf(s string, d Driver) (QoS, bool) {
	if d == Cgroupfs {
		switch s {
		case "burstable":
			return Burstable, true
		case "besteffort":
			return BestEffort, true
		}
		return "", false
	}
	switch {
	case strings.HasSuffix(s, "kubepods-burstable.slice"):
		return Burstable, true
	case strings.HasSuffix(s, "kubepods-besteffort.slice"):
		return BestEffort, true
	}
	return "", false
}

func podUIDOf(s string, d Driver) (string, bool) {
	if d == Cgroupfs {
		uid, ok := strings.CutPrefix(s, "pod")
		return uid, ok && isUID(uid)
	}
	base, ok := strings.CutSuffix(s, ".slice")
	if !ok {
		return "", false
	}
	j := strings.LastIndex(base, "-pod")
	if j < 0 {
		return "", false
	}
	// systemd escapes '-' in unit names, so the kubelet writes the UID with '_'.
	uid := strings.ReplaceAll(base[j+len("-pod"):], "_", "-")
	return uid, isUID(uid)
}

// containerOf recognises a container directory name and the runtime that made it.
func containerOf(s string) (id, runtime string, ok bool) {
	name := s
	if base, scope := strings.CutSuffix(s, ".scope"); scope {
		name = base
	}
	switch {
	case strings.HasPrefix(name, "cri-containerd-"):
		id, runtime = strings.TrimPrefix(name, "cri-containerd-"), "containerd"
	case strings.HasPrefix(name, "crio-conmon-"):
		return "", "", false // CRI-O's monitor process, not a container
	case strings.HasPrefix(name, "crio-"):
		id, runtime = strings.TrimPrefix(name, "crio-"), "cri-o"
	case strings.HasPrefix(name, "docker-"):
		id, runtime = strings.TrimPrefix(name, "docker-"), "docker"
	default:
		id = name // cgroupfs driver: the bare container id
	}
	return id, runtime, isContainerID(id)
}

// isUID accepts the canonical 8-4-4-4-12 hex form of a pod UID.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isContainerID accepts the 64-hex-digit ids that containerd, CRI-O and Docker use.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
