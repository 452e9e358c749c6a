package fakepod

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

var (
	l7appOnce sync.Once
	l7appPath string
	l7appErr  error
)

// L7AppBinary builds kpod-l7app (internal/fakepod/l7app: the Go servers and clients of the l7
// tests) once per test process; $KPOD_L7APP_BINARY names a prebuilt one (the second-kernel VM
// has no Go toolchain).
func L7AppBinary(t testing.TB) string {
	t.Helper()
	l7appOnce.Do(func() {
		if p := os.Getenv("KPOD_L7APP_BINARY"); p != "" {
			l7appPath = p
			return
		}
		// Rebuilt by every test process (go's build cache makes that quick) and renamed into
		// a path named by the binary's hash: test binaries run in parallel, also from other
		// checkouts of the repository whose kpod-l7app has other commands.
		tmp := filepath.Join(os.TempDir(), "kpod-l7app.tmp"+strconv.Itoa(os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, "github.com/kpod-project/kpod/internal/fakepod/l7app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			l7appErr = fmt.Errorf("building kpod-l7app: %v\n%s", err, out)
			return
		}
		bin, err := os.ReadFile(tmp)
		if err != nil {
			l7appErr = err
			return
		}
		sum := sha256.Sum256(bin)
		l7appPath = filepath.Join(os.TempDir(), "kpod-l7app-"+hex.EncodeToString(sum[:6]))
		l7appErr = os.Rename(tmp, l7appPath)
	})
	if l7appErr != nil {
		t.Fatal(l7appErr)
	}
	return l7appPath
}

// L7App runs kpod-l7app with args in the container (see Exec).
func (c *Container) L7App(args ...string) *Proc {
	c.Pod.t.Helper()
	return c.Exec(L7AppBinary(c.Pod.t), args...)
}
