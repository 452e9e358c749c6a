package cgroupfs

import (
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dir is one cgroup directory of the v2 tree.
type Dir struct {
	Rel string // path below the v2 root, "" for the root itself, no leading slash
	ID  uint64 // inode: the id bpf_get_current_cgroup_id() returns for tasks in it
}

// Walk lists every directory of the tree rooted at root, parents before children; the
// directories are opened for this walk only (a Walker remembers them between walks).
func Walk(root string) ([]Dir, error) {
	w := Walker{noWatch: true}
	defer w.Close()
	return w.Walk(root)
}

// Walker walks a tree again and again (the scanner, every collection).
//
// It reads directories with getdents and takes each subdirectory's inode from its directory
// entry, without a stat per directory: a cgroup directory holds dozens of files.
//
// Each directory has an inotify watch for subdirectories created, removed or moved in it
// (mkdir and rmdir of a cgroup are VFS calls, which notify; kernfs's own notifications are
// modifications of files, not asked for). A directory with no such event since its last
// listing is not listed again: its last listing is reused without a system call, so a walk
// of an unchanged tree costs one read of the inotify descriptor, and a watched directory
// needs no descriptor between walks (it is opened again to be listed after a change). The
// watch is added through /proc/self/fd/<descriptor> before the listing it vouches for, so it
// is on exactly the directory listed. An overflowed event queue makes every directory be
// listed again.
//
// Where a watch cannot be had (no inotify, its limits reached, no /proc) the directory is
// kept open between walks and listed again from the start at every walk (lseek, getdents):
// an open walks the directory's whole path, the costliest part of listing a kubelet-deep
// cgroup (measured here, 200 cgroups at kubepods/besteffort/pod<uid>/<id>: open, getdents
// twice and close 12.4 µs; lseek and getdents 4.0 µs). Past keptMax it is opened for each
// listing.
//
// What is remembered of a directory is used only while its parent lists it with the inode it
// had when opened (a path removed and created again is opened afresh), and forgotten after
// the first walk that does not reach it (a kept descriptor of a removed cgroup is closed
// then). A directory that disappears during the walk (a pod being torn down) is skipped;
// any other error aborts the walk, because a partial list would make live cgroups look dead.
type Walker struct {
	mu      sync.Mutex
	dirs    map[string]*walkDir // by path
	buf     []byte
	byLink  bool // the tree is a cgroup file system: see subdirs
	noWatch bool // no inotify watches (a walk of its own; tests of listing)
	inotify int  // inotify descriptor, -1 for none (set at the first walk: dirs != nil)
	byWD    map[int32]*walkDir
	listed  int // listings made (getdents from the start), for tests
}

type walkDir struct {
	fd    int // kept descriptor (unwatched directories), -1 for none
	ino   uint64
	seen  bool  // reached by the current walk
	wd    int32 // inotify watch, 0 for none
	fresh bool  // subs is the listing and no event came since (watched directories only)
	subs  []Dir
	nowd  bool // a watch could not be added: not tried again for this directory
}

// procSelfFD names a descriptor of this process (a variable for tests).
var procSelfFD = "/proc/self/fd/"

// inotifyMask: what changes a directory's subdirectories, and a watch's end.
const inotifyMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// Walk lists every directory of the tree rooted at root, parents before children.
func (w *Walker) Walk(root string) ([]Dir, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirs == nil {
		w.dirs, w.buf, w.inotify = map[string]*walkDir{}, make([]byte, 64<<10), -1
		if !w.noWatch {
			if fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC); err == nil {
				w.inotify, w.byWD = fd, map[int32]*walkDir{}
			}
		}
	}
	w.events()
	rootID, err := Inode(root)
	if err != nil {
		return nil, err
	}
	var fsst unix.Statfs_t
	w.byLink = unix.Statfs(root, &fsst) == nil && (fsst.Type == unix.CGROUP2_SUPER_MAGIC || fsst.Type == unix.CGROUP_SUPER_MAGIC)
	out := []Dir{{Rel: "", ID: rootID}}
	var walk func(dir, rel string, ino uint64) error
	walk = func(dir, rel string, ino uint64) error {
		subs, err := w.subdirs(dir, ino)
		if err != nil {
			if errors.Is(err, unix.ENOENT) && rel != "" {
				return nil
			}
			return &os.PathError{Op: "readdir", Path: dir, Err: err}
		}
		for _, s := range subs {
			r := s.Rel
			if rel != "" {
				r = rel + "/" + s.Rel
			}
			out = append(out, Dir{Rel: r, ID: s.ID})
			if err := walk(dir+"/"+s.Rel, r, s.ID); err != nil {
				return err
			}
		}
		return nil
	}
	err = walk(root, "", rootID)
	for path, d := range w.dirs {
		if !d.seen || err != nil {
			w.drop(path, d)
		}
		d.seen = false
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Close closes the directories kept open and the inotify descriptor.
func (w *Walker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for path, d := range w.dirs {
		w.drop(path, d)
	}
	w.stopWatching()
	w.dirs = nil // the next walk starts afresh
}

// Kept is the number of directories kept open (for tests).
func (w *Walker) Kept() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, d := range w.dirs {
		if d.fd >= 0 {
			n++
		}
	}
	return n
}

// Listed is the number of directory listings made so far (for tests).
func (w *Walker) Listed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.listed
}

// events reads the inotify events that came since the last walk: each marks its directory
// to be listed again.
func (w *Walker) events() {
	for w.inotify >= 0 {
		n, err := unix.Read(w.inotify, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n < unix.SizeofInotifyEvent {
			w.stopWatching() // cannot tell what changed: list everything, now and after
			return
		}
		w.handle(w.buf[:n])
	}
}

// handle marks the directories of the events in buf (whole inotify records) to be listed again.
func (w *Walker) handle(buf []byte) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		e := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		off += unix.SizeofInotifyEvent + int(e.Len)
		if e.Mask&unix.IN_Q_OVERFLOW != 0 { // events were lost: any directory may have changed
			for _, d := range w.byWD {
				d.fresh = false
			}
			continue
		}
		d := w.byWD[e.Wd]
		if d == nil {
			continue // a watch removed since
		}
		d.fresh = false
		if e.Mask&unix.IN_IGNORED != 0 { // the directory is gone
			delete(w.byWD, e.Wd)
			d.wd = 0
		}
	}
}

// stopWatching closes the inotify descriptor: every directory is listed at every walk.
func (w *Walker) stopWatching() {
	if w.dirs != nil && w.inotify >= 0 { // a Walker that never walked has no descriptor
		unix.Close(w.inotify)
	}
	w.inotify = -1
	for wd, d := range w.byWD {
		d.wd, d.fresh = 0, false
		delete(w.byWD, wd)
	}
}

// watch adds a watch to a directory that has none, through its open descriptor fd; false if
// it cannot have one.
func (w *Walker) watch(d *walkDir, fd int) bool {
	if d.wd != 0 {
		return true
	}
	if w.inotify < 0 || d.nowd {
		return false
	}
	wd, err := unix.InotifyAddWatch(w.inotify, procSelfFD+strconv.Itoa(fd), inotifyMask)
	if err != nil {
		d.nowd = true // ENOSPC (max_user_watches), no /proc: kept and listed at every walk
		return false
	}
	d.wd = int32(wd)
	w.byWD[d.wd] = d
	return true
}

// drop forgets a directory: its watch, unless another path holds the same directory
// (renamed: inotify gives a second watch of an inode the first one's number), and its kept
// descriptor.
func (w *Walker) drop(path string, d *walkDir) {
	if d.wd != 0 && w.byWD[d.wd] == d {
		_, _ = unix.InotifyRmWatch(w.inotify, uint32(d.wd)) // EINVAL if the kernel removed it
		delete(w.byWD, d.wd)
	}
	d.wd = 0
	if d.fd >= 0 {
		closeKept(d.fd)
		d.fd = -1
	}
	delete(w.dirs, path)
}

// open returns what is remembered of dir (created on first sight), a descriptor to list it
// (its kept one, or dir opened now: kept if the caller is to keep it) and its link count.
func (w *Walker) open(dir string) (*walkDir, int, uint64, error) {
	var st unix.Stat_t
	d := w.dirs[dir]
	if d != nil && d.fd >= 0 {
		if err := unix.Fstat(d.fd, &st); err == nil {
			return d, d.fd, st.Nlink, nil
		}
		w.drop(dir, d)
		d = nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, -1, 0, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, -1, 0, err
	}
	if d != nil && d.ino != st.Ino { // another directory at the path since the parent's listing
		w.drop(dir, d)
		d = nil
	}
	if d == nil {
		d = &walkDir{fd: -1, ino: st.Ino}
		w.dirs[dir] = d
	}
	return d, fd, st.Nlink, nil
}

// subdirs lists the subdirectories of dir (name in Rel, inode in ID). A watched directory
// with no event since its last listing is that listing. Otherwise, on a cgroup file system
// a directory's link count is two plus its subdirectories (kernfs sets it at every stat), so
// an unwatched directory with two links is a leaf (most containers' cgroups) and is not
// listed: an fstat of the kept descriptor instead of a getdents of all its files.
func (w *Walker) subdirs(dir string, ino uint64) ([]Dir, error) {
	if d := w.dirs[dir]; d != nil && d.ino != ino {
		w.drop(dir, d) // removed and created again: the parent lists another inode
	} else if d != nil && d.fresh {
		d.seen = true
		return d.subs, nil
	}
	d, fd, links, err := w.open(dir)
	if err != nil {
		return nil, err
	}
	d.seen = true
	watched := w.watch(d, fd) // before the listing: a change after it is an event
	if fd != d.fd {           // opened for this listing
		if !watched && reserveKept() {
			d.fd = fd
		} else {
			defer unix.Close(fd)
		}
	} else if watched { // kept before it could be watched
		defer func() {
			if d.fd >= 0 {
				closeKept(d.fd)
				d.fd = -1
			}
		}()
	}
	if w.byLink && links == 2 && !watched {
		return nil, nil
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		w.drop(dir, d)
		return nil, err
	}
	w.listed++
	buf := w.buf
	var out []Dir
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			w.drop(dir, d)
			return nil, err
		}
		for off := 0; off < n; {
			e := (*unix.Dirent)(unsafe.Pointer(&buf[off]))
			off += int(e.Reclen)
			if e.Type != unix.DT_DIR && e.Type != unix.DT_UNKNOWN {
				continue
			}
			name := direntName(e)
			if name == "." || name == ".." {
				continue
			}
			if e.Type == unix.DT_UNKNOWN { // filesystems without d_type (not cgroupfs)
				var st unix.Stat_t
				if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
					continue
				}
			}
			out = append(out, Dir{Rel: name, ID: e.Ino})
		}
		// Only 0 says the listing is complete: getdents also returns early, with room left,
		// when the thread has a signal pending (filldir64), and the Go runtime preempts
		// goroutines with SIGURG. Trusting a short listing lost pods from a scan now and then.
		if n <= 0 {
			if watched {
				d.subs, d.fresh = out, true
			}
			return out, nil
		}
	}
}

func direntName(d *unix.Dirent) string {
	b := (*[len(unix.Dirent{}.Name)]byte)(unsafe.Pointer(&d.Name[0]))
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(b[:n])
}

// Inode returns the inode number of path: for a cgroup v2 directory that is its cgroup id,
// for a /proc/<pid>/ns/* file the namespace's identity.
func Inode(path string) (uint64, error) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("cgroupfs: no inode information for " + path)
	}
	return st.Ino, nil
}

// Target is one cgroup a family collects for.
type Target struct {
	ID  uint64 // cgroup v2 id (inode of the v2 directory)
	Rel string // path below the hierarchy roots
}
