// Package fuzzseed finds real kernel files of this host (cgroup files, mountinfo,
// /proc/<pid>/net/dev, cgroup paths) to seed the fuzz targets of the parsers with. Whatever
// it finds is added on top of the committed corpora (testdata/fuzz/Fuzz*), which keep the
// seeds the same on a host that lacks a layout (a pure-v2 CI host has no v1 memory.stat).
// Every walk is bounded, so that a node with thousands of cgroups seeds quickly.
package fuzzseed

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxDirs bounds the directories one walk visits.
const maxDirs = 2000

// Files returns the contents of up to max regular files below root whose base name is one
// of names, in walk order. Unreadable files and a missing root give nothing.
func Files(root string, max int, names ...string) [][]byte {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out [][]byte
	dirs := 0
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if dirs++; dirs > maxDirs {
				return filepath.SkipAll
			}
			return nil
		}
		if !want[d.Name()] || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			out = append(out, b)
		}
		if len(out) >= max {
			return filepath.SkipAll
		}
		return nil
	})
	return out
}

// Dirs returns up to max directories below root (root itself excluded), relative to root,
// in walk order (parents first).
func Dirs(root string, max int) []string {
	var out []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if rel, err := filepath.Rel(root, path); err == nil && rel != "." {
			out = append(out, rel)
		}
		if len(out) >= max {
			return filepath.SkipAll
		}
		return nil
	})
	return out
}

// Proc returns the contents of <procRoot>/<pid>/<name> for up to max processes whose file
// differs from every one already returned (processes of one namespace share a mountinfo or
// net/dev), self first.
func Proc(procRoot, name string, max int) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	add := func(pid string) {
		b, err := os.ReadFile(filepath.Join(procRoot, pid, name))
		if err != nil || seen[string(b)] {
			return
		}
		seen[string(b)] = true
		out = append(out, b)
	}
	add("self")
	ents, _ := os.ReadDir(procRoot)
	var pids []string
	for _, e := range ents {
		if strings.Trim(e.Name(), "0123456789") == "" {
			pids = append(pids, e.Name())
		}
	}
	sort.Strings(pids)
	for i, pid := range pids {
		if len(out) >= max || i >= maxDirs {
			break
		}
		add(pid)
	}
	return out
}
