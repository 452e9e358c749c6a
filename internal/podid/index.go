package podid

import (
	"bytes"
	"maps"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

// Pod is one pod cgroup found on the node.
type Pod struct {
	UID        string
	QoS        QoS
	Driver     Driver
	Rel        string // cgroup path below the hierarchy roots
	CgroupID   uint64
	Created    time.Time
	Containers []*Container // sorted by ID; includes the sandbox
}

// Container is one container cgroup of a pod.
type Container struct {
	Pod      *Pod
	ID       string
	Runtime  string
	Rel      string
	CgroupID uint64
	Created  time.Time
	// Sandbox is true for the pod's pause container. It holds the pod's network namespace
	// but is not a workload, so its own metrics are not reported.
	Sandbox bool
	// CgroupIDs are the ids of this container's directory and every directory below it
	// (a container may create child cgroups); BPF counts are summed over them.
	CgroupIDs []uint64
}

// Index is one snapshot of the node's pods, built by a Scanner.
type Index struct {
	Pods []*Pod // sorted by UID
	// Live holds the id of every directory in the cgroup2 tree. A BPF map key whose cgroup
	// is not live (and was not when the map was read) belongs to a removed cgroup.
	Live map[uint64]bool
	// Dirs is the number of cgroup directories walked.
	Dirs int
}

// Containers returns every container of every pod, sandboxes included.
func (x *Index) Containers() []*Container {
	var out []*Container
	for _, p := range x.Pods {
		out = append(out, p.Containers...)
	}
	return out
}

// Scanner builds Index snapshots from the cgroup2 tree. It remembers which containers are
// sandboxes, which costs one read of cgroup.procs and /proc/<pid>/comm per new container.
type Scanner struct {
	V2Root   string
	ProcRoot string
	sandbox  map[uint64]bool
	born     map[uint64]time.Time // creation time per cgroup id, stat'ed once
	parsed   map[uint64]parsed    // Parse of each live directory's path, by cgroup id
	walker   cgroupfs.Walker      // the tree's directories, watched (or kept open) between scans
}

// NewScanner returns a Scanner for the cgroup2 tree at v2Root.
func NewScanner(v2Root, procRoot string) *Scanner {
	return &Scanner{V2Root: v2Root, ProcRoot: procRoot, sandbox: map[uint64]bool{}, born: map[uint64]time.Time{}, parsed: map[uint64]parsed{}}
}

// Scan walks the tree once.
func (s *Scanner) Scan() (*Index, error) {
	dirs, err := s.walker.Walk(s.V2Root)
	if err != nil {
		return nil, err
	}
	idx := &Index{Live: make(map[uint64]bool, len(dirs)), Dirs: len(dirs)}
	pods := map[string]*Pod{}
	containers := map[string]*Container{} // by Rel
	seen := map[uint64]bool{}
	for _, d := range dirs {
		idx.Live[d.ID] = true
		info, ok := s.parse(d)
		if !ok {
			continue
		}
		p := pods[info.PodRel]
		if p == nil {
			if d.Rel != info.PodRel {
				continue // Walk lists parents first; a pod dir that vanished mid-walk
			}
			p = &Pod{UID: info.PodUID, QoS: info.QoS, Driver: info.Driver, Rel: info.PodRel, CgroupID: d.ID, Created: s.created(d)}
			pods[info.PodRel] = p
			continue
		}
		if info.ContainerRel == "" {
			continue
		}
		c := containers[info.ContainerRel]
		if c == nil {
			if d.Rel != info.ContainerRel {
				continue
			}
			c = &Container{Pod: p, ID: info.ContainerID, Runtime: info.Runtime, Rel: d.Rel, CgroupID: d.ID, Created: s.created(d)}
			containers[d.Rel] = c
			p.Containers = append(p.Containers, c)
		}
		c.CgroupIDs = append(c.CgroupIDs, d.ID)
	}
	for _, c := range containers {
		seen[c.CgroupID] = true
		c.Sandbox = s.isSandbox(c)
	}
	for id := range s.sandbox {
		if !seen[id] {
			delete(s.sandbox, id)
		}
	}
	maps.DeleteFunc(s.born, func(id uint64, _ time.Time) bool { return !idx.Live[id] })
	maps.DeleteFunc(s.parsed, func(id uint64, _ parsed) bool { return !idx.Live[id] })
	for _, p := range pods {
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].ID < p.Containers[j].ID })
		idx.Pods = append(idx.Pods, p)
	}
	sort.Slice(idx.Pods, func(i, j int) bool { return idx.Pods[i].UID < idx.Pods[j].UID })
	return idx, nil
}

// Close closes the directories the scans keep open.
func (s *Scanner) Close() { s.walker.Close() }

type parsed struct {
	rel  string
	info PathInfo
	ok   bool
}

// parse is Parse(d.Rel), computed once per directory: a cgroup id names one directory for
// its life, at one path (cgroup2 refuses rename; the path is compared all the same).
func (s *Scanner) parse(d cgroupfs.Dir) (PathInfo, bool) {
	if p, ok := s.parsed[d.ID]; ok && p.rel == d.Rel {
		return p.info, p.ok
	}
	info, ok := Parse(d.Rel)
	s.parsed[d.ID] = parsed{rel: d.Rel, info: info, ok: ok}
	return info, ok
}

// created returns when the cgroup's inode was created (its ctime: kernfs sets it when the
// inode is first instantiated, right after the kubelet's mkdir). Stat'ed once per cgroup; a
// cgroup gone since the walk gets the current time.
func (s *Scanner) created(d cgroupfs.Dir) time.Time {
	if t, ok := s.born[d.ID]; ok {
		return t
	}
	t := time.Now()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(s.V2Root, d.Rel), &st); err == nil && st.Ino == d.ID {
		t = time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	s.born[d.ID] = t
	return t
}

// isSandbox decides once per container whether all its processes are the pause binary.
// A container without processes is undecided and asked again next scan.
func (s *Scanner) isSandbox(c *Container) bool {
	if v, ok := s.sandbox[c.CgroupID]; ok {
		return v
	}
	pids, err := PIDs(filepath.Join(s.V2Root, c.Rel))
	if err != nil || len(pids) == 0 {
		return false
	}
	pause := true
	for _, pid := range pids {
		comm, err := cgroupfs.ReadFile(filepath.Join(s.ProcRoot, strconv.Itoa(pid), "comm"))
		if err != nil {
			return false // process gone: decide later
		}
		if strings.TrimSpace(string(comm)) != "pause" {
			pause = false
			break
		}
	}
	s.sandbox[c.CgroupID] = pause
	return pause
}

// PIDs lists the processes of the cgroup directory dir. The kernel writes 0 for a process
// of a pid namespace the reader cannot see: that is no process id, and is left out.
func PIDs(dir string) ([]int, error) {
	b, err := cgroupfs.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range bytes.Fields(b) {
		pid, err := strconv.Atoi(string(f))
		if err != nil || pid <= 0 {
			continue
		}
		out = append(out, pid)
	}
	return out, nil
}
