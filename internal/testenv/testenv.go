// Package testenv holds what the tests that run the built collector share: where the
// repository and otelcol-kpod are, and free loopback ports.
package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RepoRoot is the repository root, found from the working directory: `go test` runs a test
// binary in its package's source directory (runtime.Caller cannot be used, as the Makefile
// builds with -trimpath, which makes source paths module-relative). depth is how many
// directories below the root the package is.
func RepoRoot(t testing.TB, depth int) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for i := 0; i < depth; i++ {
		root = filepath.Dir(root)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/kpod-project/kpod\n") {
		t.Fatalf("%s is not the kpod repository root (run the test with go test from the repository)", root)
	}
	return root
}

// CollectorBinary is _build/otelcol-kpod below root; the test fails (not skips) without it.
func CollectorBinary(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(root, "_build", "otelcol-kpod")
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing or not executable: run make otelcol (%v)", bin, err)
	}
	return bin
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
