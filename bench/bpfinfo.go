//go:build bench

package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
)

// progInfo is one BPF program a process holds, read from /proc/<pid>/fdinfo (the same
// source as bpftool prog show). RunTimeNs and RunCnt count only while BPF statistics are
// enabled (kernel.bpf_stats_enabled, ebpf.EnableStats).
type progInfo struct {
	ID        uint32
	Name      string
	Type      string
	RunTimeNs uint64
	RunCnt    uint64
	Misses    uint64
}

// mapInfo is one BPF map a process holds; Memlock is what bpftool map show reports.
type mapInfo struct {
	ID         uint32
	Name       string
	Type       string
	MaxEntries uint64
	Memlock    uint64
}

var (
	nameMu    sync.Mutex
	progNames = map[uint32]string{}
	mapNames  = map[uint32]string{}
)

// bpfObjects lists the BPF programs and maps whose file descriptors process pid holds
// (deduplicated by id).
func bpfObjects(pid int) (map[uint32]progInfo, map[uint32]mapInfo, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, nil, err
	}
	progs, maps := map[uint32]progInfo{}, map[uint32]mapInfo{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue
		}
		var kind string
		switch target {
		case "anon_inode:bpf-prog":
			kind = "prog"
		case "anon_inode:bpf-map":
			kind = "map"
		default:
			continue
		}
		f, err := readFdinfo(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if kind == "prog" {
			id := uint32(f.num("prog_id"))
			if id == 0 {
				continue
			}
			progs[id] = progInfo{ID: id, Name: progName(id), Type: f["prog_type"], RunTimeNs: f.num("run_time_ns"),
				RunCnt: f.num("run_cnt"), Misses: f.num("recursion_misses")}
		} else {
			id := uint32(f.num("map_id"))
			if id == 0 {
				continue
			}
			maps[id] = mapInfo{ID: id, Name: mapName(id), Type: f["map_type"], MaxEntries: f.num("max_entries"), Memlock: f.num("memlock")}
		}
	}
	return progs, maps, nil
}

type fdinfo map[string]string

func (f fdinfo) num(k string) uint64 {
	v, _ := strconv.ParseUint(f[k], 10, 64)
	return v
}

func readFdinfo(path string) (fdinfo, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	out := fdinfo{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

func progName(id uint32) string {
	nameMu.Lock()
	defer nameMu.Unlock()
	if n, ok := progNames[id]; ok {
		return n
	}
	n := fmt.Sprintf("prog%d", id)
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := p.Info(); err == nil && info.Name != "" {
			n = info.Name
		}
		p.Close()
	}
	progNames[id] = n
	return n
}

func mapName(id uint32) string {
	nameMu.Lock()
	defer nameMu.Unlock()
	if n, ok := mapNames[id]; ok {
		return n
	}
	n := fmt.Sprintf("map%d", id)
	if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
		if info, err := m.Info(); err == nil && info.Name != "" {
			n = info.Name
		}
		m.Close()
	}
	mapNames[id] = n
	return n
}

// sumMemlock adds up the memlock of maps.
func sumMemlock(maps map[uint32]mapInfo) uint64 {
	var s uint64
	for _, m := range maps {
		s += m.Memlock
	}
	return s
}
