//go:build bench

package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// stateDir records what a run started (process ids with their start times, loop devices),
// so that the next run can remove what an interrupted one left behind. Only what is
// recorded there is ever killed or detached.
const stateDir = "/run/kpodbench"

var (
	stateMu sync.Mutex
	logMu   sync.Mutex
	logOut  = os.Stderr
)

func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Fprintf(logOut, "%s  %s\n", time.Now().Format("15:04:05"), strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

// procStart is the start time of a process (field 22 of /proc/<pid>/stat), which tells a
// recorded process from a later one that got the same pid.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// notePID records a process this run started.
func notePID(pid int) {
	stateMu.Lock()
	defer stateMu.Unlock()
	_ = os.MkdirAll(stateDir, 0o755)
	f, err := os.OpenFile(filepath.Join(stateDir, "pids"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%d %s\n", pid, procStart(pid))
}

func noteLoop(dev, backing string) {
	stateMu.Lock()
	defer stateMu.Unlock()
	_ = os.MkdirAll(stateDir, 0o755)
	f, err := os.OpenFile(filepath.Join(stateDir, "loops"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", dev, backing)
}

// cleanStale removes what an earlier, interrupted run left: its recorded processes (only if
// the pid still belongs to the same process), loop devices and backing files, and pod
// cgroups (kpodbench-*).
func cleanStale() error {
	var errs []error
	if b, err := os.ReadFile(filepath.Join(stateDir, "pids")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			pid, _ := strconv.Atoi(f[0])
			if pid > 0 && procStart(pid) == f[1] {
				logf("killing process %d left by an earlier run", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(stateDir, "loops")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			if loopBacking(f[0]) == f[1] {
				logf("detaching %s left by an earlier run", f[0])
				if out, err := exec.Command("losetup", "-d", f[0]).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("losetup -d %s: %v: %s", f[0], err, out))
				}
			}
			_ = os.Remove(f[1])
		}
	}
	_ = os.Remove(filepath.Join(stateDir, "pids"))
	_ = os.Remove(filepath.Join(stateDir, "loops"))
	stale, _ := filepath.Glob(diskPrefix + "*")
	for _, d := range stale {
		logf("removing %s left by an earlier run", d)
		_ = os.RemoveAll(d)
	}
	time.Sleep(100 * time.Millisecond)
	if err := removeStalePods(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loopBacking is the backing file of a loop device, "" if it has none.
func loopBacking(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loopDevice is a loop device over a file in /dev/shm (reads come from the page cache, so
// the O_DIRECT benchmark measures the block layer, not the VM's disk).
type loopDevice struct {
	Dev, File string
}

func newLoopDevice(sizeMiB int) (*loopDevice, error) {
	file := fmt.Sprintf("/dev/shm/kpodbench-%s.img", fakepod.RandHex(4))
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for i := 0; i < sizeMiB; i++ {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			os.Remove(file)
			return nil, err
		}
	}
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", file).Output()
	if err != nil {
		os.Remove(file)
		return nil, fmt.Errorf("losetup: %w", err)
	}
	l := &loopDevice{Dev: strings.TrimSpace(string(out)), File: file}
	noteLoop(l.Dev, l.File)
	return l, nil
}

func (l *loopDevice) close() error {
	var err error
	if loopBacking(l.Dev) == l.File {
		if out, e := exec.Command("losetup", "-d", l.Dev).CombinedOutput(); e != nil {
			err = fmt.Errorf("losetup -d %s: %v: %s", l.Dev, e, out)
		}
	}
	_ = os.Remove(l.File)
	return err
}

// diskPrefix names the directories of the benchmarks that need the VM's disk (on the root
// filesystem: /var/tmp is not tmpfs here), so that a crashed run's are found and removed.
const diskPrefix = "/var/tmp/kpodbench-"

// diskFiles are the files of the benchmarks that need a real disk: Data, read with O_DIRECT
// (vdread: each read is a virtio-blk request and its interrupt), and Buf, written through the
// page cache (bufwrite). Not tmpfs: O_DIRECT is refused there and shmem pages do not go
// through the page-cache tracepoints.
type diskFiles struct {
	Dir, Data, Buf string
	FS             string // what the directory is on (findmnt: source, type)
}

func newDiskFiles(dataMiB int) (*diskFiles, error) {
	if err := os.MkdirAll(filepath.Dir(diskPrefix), 0o755); err != nil {
		return nil, err
	}
	dir := diskPrefix + fakepod.RandHex(4)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	d := &diskFiles{Dir: dir, Data: filepath.Join(dir, "data"), Buf: filepath.Join(dir, "buf")}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type == 0x01021994 /* TMPFS_MAGIC */ {
		d.close()
		return nil, fmt.Errorf("%s is on tmpfs (or statfs failed: %v): the disk benchmarks need a disk-backed filesystem", dir, err)
	}
	d.FS = strings.Join(strings.Fields(sh("findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", dir)), " ")
	f, err := os.Create(d.Data)
	if err != nil {
		d.close()
		return nil, err
	}
	buf := make([]byte, 1<<20)
	x := uint32(2463534242)
	for i := 0; i < dataMiB; i++ {
		for j := range buf { // xorshift: data no layer can compress or deduplicate
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			buf[j] = byte(x)
		}
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *diskFiles) close() error { return os.RemoveAll(d.Dir) }

func writeJSON(path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		logf("writing %s: %v", path, err)
	}
}
