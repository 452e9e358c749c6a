package cgroupfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Dir is one cgroup directory of the v2 tree.
type Dir struct {
	Rel string // path below the v2 root, "" for the root itself, no leading slash
	ID  uint64 // inode: the id bpf_get_current_cgroup_id() returns for tasks in it
	// Created is the inode change time. kernfs sets it when the cgroup's inode is first
	// instantiated, which for kubelet cgroups is right after mkdir.
	Created time.Time
}

// Walk lists every directory of the tree rooted at root, parents before children. A
// directory that disappears during the walk (a pod being torn down) is skipped silently; any
// other error aborts the walk, because a partial list would make live cgroups look dead.
func Walk(root string) ([]Dir, error) {
	var out []Dir
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return fs.SkipDir
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("cgroupfs: no inode information for " + path)
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			rel = ""
		}
		out = append(out, Dir{Rel: rel, ID: st.Ino, Created: time.Unix(st.Ctim.Sec, st.Ctim.Nsec)})
		return nil
	})
	return out, err
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
