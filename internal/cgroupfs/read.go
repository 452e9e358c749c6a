package cgroupfs

import (
	"io/fs"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// readBufs holds the buffers ReadFile reads into; files in cgroupfs and procfs are small and
// read by the thousand each cycle.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// ReadFile reads a small pseudo-file (cgroupfs, procfs) with plain open, read and close.
// os.ReadFile costs twice as many system calls on these files: kernfs files support poll, so
// os.Open registers each with the runtime's netpoller (epoll_ctl add and delete, two fcntl),
// and ReadFile also fstat()s it and reads once more to see the end (make bench measures both
// for the memory and pagefaults collectors: BENCHMARKS.md, experiment "cgroup file reads").
// Errors are *fs.PathError, as os's.
func ReadFile(path string) ([]byte, error) {
	fd, err := openRetry(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if h := betweenOpenAndRead.Load(); h != nil {
		(*h)(path)
	}
	return readAll(path, true, func(b []byte, _ int64) (int, error) { return unix.Read(fd, b) })
}

// readAll reads a file from its start through read(buf, offset) into a pooled buffer that
// grows as needed, and returns a copy. A kernfs interface file is one record its seq_file
// buffer grows to hold, so the first read shorter than the buffer is all of it (one system
// call); a file of many records (a procfs table: a line per record) may stop short at a page
// when its records fill the seq_file buffer, so records reads on until a read returns 0.
func readAll(path string, records bool, read func(b []byte, off int64) (int, error)) ([]byte, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := read(buf[len(buf):cap(buf)], int64(len(buf)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		buf = buf[:len(buf)+n]
		if n == 0 || !records && len(buf) < cap(buf) {
			break
		}
	}
	if cap(buf) <= 1<<20 {
		*bp = buf[:0] // keep a grown buffer, within reason
	}
	return append([]byte(nil), buf...), nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// betweenOpenAndRead, when set by a test, runs in ReadFile after the file is open and before
// it is read: where a test removes the cgroup, as the kubelet may do at any instant (a read
// of a removed cgroup's open file fails with ENODEV).
var betweenOpenAndRead atomic.Pointer[func(path string)]

// BetweenOpenAndReadForTest makes ReadFile call f(path) between its open and its read until
// the returned function is called.
func BetweenOpenAndReadForTest(f func(path string)) (restore func()) {
	betweenOpenAndRead.Store(&f)
	return func() { betweenOpenAndRead.Store(nil) }
}
