//go:build reliability

package reliability

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/testenv"
)

// daemonSetCapabilities reads the capabilities examples/kubernetes/daemonset.yaml grants
// kpod's container, and checks that it drops all the others.
func daemonSetCapabilities(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "examples", "kubernetes", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ds appsv1.DaemonSet
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&ds); err != nil {
		t.Fatal(err)
	}
	cs := ds.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].SecurityContext == nil || cs[0].SecurityContext.Capabilities == nil {
		t.Fatalf("daemonset.yaml: want one container with securityContext.capabilities")
	}
	c := cs[0].SecurityContext.Capabilities
	if len(c.Drop) != 1 || c.Drop[0] != "ALL" {
		t.Fatalf("daemonset.yaml drops %v, want [ALL]", c.Drop)
	}
	var out []string
	for _, a := range c.Add {
		out = append(out, string(a))
	}
	return out
}

// daemonSetEnv is the value examples/kubernetes/daemonset.yaml gives kpod's container's
// environment variable name (a literal value, not a reference).
func daemonSetEnv(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "examples", "kubernetes", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ds appsv1.DaemonSet
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&ds); err != nil {
		t.Fatal(err)
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == name && e.Value != "" {
				return e.Value
			}
		}
	}
	t.Fatalf("daemonset.yaml sets no value of %s", name)
	return ""
}

// capBits are the capability numbers of linux/capability.h that kpod's documents name.
var capBits = map[string]uint{
	"DAC_READ_SEARCH": 2, "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "SYS_PTRACE": 19, "SYS_ADMIN": 21,
	"SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39,
}

// boundingSet is this process's capability bounding set (CapBnd): what any process it starts
// can ever hold.
func boundingSet(t *testing.T) uint64 {
	t.Helper()
	st, err := readProcStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(st.Fields["CapBnd"], 16, 64)
	if err != nil {
		t.Fatalf("CapBnd %q: %v", st.Fields["CapBnd"], err)
	}
	return v
}

func capMask(caps []string) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << capBits[c]
	}
	return m
}

// capshCommand runs bin --config cfg as user nobody with exactly caps: in its permitted,
// effective, inheritable, ambient and bounding sets (capsh drops every other capability from
// the bounding set while it still may, then changes user keeping caps, raises them as ambient
// so that they survive the execs, and sets no_new_privs as allowPrivilegeEscalation: false
// does).
func capshCommand(t *testing.T, capsh, bin, cfg string, caps []string) *exec.Cmd {
	t.Helper()
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		t.Fatal(err)
	}
	keep := capMask(caps)
	var drop []string
	for i := 0; i <= n; i++ {
		if keep&(1<<i) == 0 {
			drop = append(drop, strconv.Itoa(i))
		}
	}
	var names []string
	for _, c := range caps {
		names = append(names, "cap_"+strings.ToLower(c))
	}
	list := strings.Join(names, ",")
	return exec.Command(capsh,
		"--caps="+list+"+eip cap_setpcap,cap_setuid,cap_setgid+ep",
		"--drop="+strings.Join(drop, ","),
		"--keep=1", "--user=nobody", "--addamb="+list, "--no-new-privs",
		"--", "-c", `exec "$0" --config "$1"`, bin, cfg)
}

// readmeFamilies reads the README's profile table: each collector and the Prometheus name
// of each of its metrics (OpenTelemetry name with _ for ., before the exporter's suffixes).
func readmeFamilies(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Profiles\n")
	if !ok {
		t.Fatal("README.md has no Profiles section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		fam := strings.Trim(strings.TrimSpace(cells[1]), "`")
		for _, q := range backticked.FindAllStringSubmatch(cells[2], -1) {
			for _, x := range expandBraces(q[1]) {
				out[fam] = append(out[fam], strings.ReplaceAll(x, ".", "_"))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("README.md's profile table has no rows")
	}
	return out
}

var backticked = regexp.MustCompile("`([^`]+)`")

// expandBraces expands shell-style {a,b} groups: kpod.net.iface.{rx,tx}.bytes.
func expandBraces(s string) []string {
	i := strings.Index(s, "{")
	if i < 0 {
		return []string{s}
	}
	j := strings.Index(s[i:], "}") + i
	var out []string
	for _, alt := range strings.Split(s[i+1:j], ",") {
		out = append(out, expandBraces(s[:i]+alt+s[j+1:])...)
	}
	return out
}

// ofFamily reports whether a Prometheus sample name is one of the metric names.
func ofFamily(name string, metrics []string) bool {
	for _, m := range metrics {
		if rest, ok := strings.CutPrefix(name, m); ok && (rest == "" || rest[0] == '_') {
			return true
		}
	}
	return false
}

// capRun is what one run of the collector with a set of capabilities showed.
type capRun struct {
	caps        []string
	status      procStatus
	unavailable map[string]string  // collector -> reason
	metricsOff  map[string]string  // metric -> reason (kpod_metric_unavailable)
	errors      map[string]float64 // collector -> collector errors + cgroup read errors
	reporting   map[string]bool    // collector -> has series
	warnings    []string
}

// failing lists the collectors that did not work in the run, each with what it said.
func (r capRun) failing(families map[string][]string) map[string]string {
	out := map[string]string{}
	for fam := range families {
		var why []string
		if reason, ok := r.unavailable[fam]; ok {
			why = append(why, "unavailable: "+reason)
		}
		if r.errors[fam] > 0 {
			why = append(why, fmt.Sprintf("%v errors", r.errors[fam]))
		}
		if !r.reporting[fam] {
			why = append(why, "no series")
		}
		if len(why) > 0 && r.unavailable[fam] == "" {
			// What it logged: its part of a scrape error, or the warning of a fallback.
			for _, w := range r.warnings {
				if msg := familyMessage(w, fam, families); msg != "" {
					why = append(why, "log: "+msg)
					break
				}
			}
		}
		if len(why) > 0 {
			out[fam] = strings.Join(why, "; ")
		}
	}
	return out
}

// familyMessage is what a log line says of one collector: from "<fam>: " to where the
// message of another collector begins (a scrape error joins them with "; ") or the line
// ends (a warning's message is followed by its "error" field, which says why).
func familyMessage(line, fam string, families map[string][]string) string {
	i := strings.Index(line, fam+": ")
	if i < 0 {
		return ""
	}
	msg := line[i:]
	end := len(msg)
	for other := range families {
		if j := strings.Index(msg, "; "+other+": "); j > 0 && j < end {
			end = j
		}
	}
	return msg[:end]
}

// needs lists the distinct "(needs ...)" phrases of a message.
func needs(msg string) []string {
	var out []string
	for _, m := range needsPhrase.FindAllString(msg, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

var needsPhrase = regexp.MustCompile(`\(needs [^)]*\)`)

// TestLeastPrivilege runs otelcol-kpod (comprehensive profile and l7) as user nobody with exactly
// the capabilities examples/kubernetes/daemonset.yaml grants, next to fake pods that give
// every collector something to report, and then with each capability dropped in turn. With
// all of them every collector loads and reports, as when run as root; without one, each
// collector that fails says so with the capability's name (CAP_<NAME>) in its
// kpod_collector_unavailable reason or its scrape error. A capability this test's own process
// does not hold cannot be granted; the test says which and checks that the kernel is one that
// does not need it (SYS_RESOURCE: only kernels before 5.11 charge BPF memory to memlock).
func TestLeastPrivilege(t *testing.T) {
	bin := testenv.CollectorBinary(t, repoRoot(t))
	fakepod.RequireRoot(t)
	capsh, err := exec.LookPath("capsh")
	if err != nil {
		t.Fatalf("capsh is not installed (make deps: libcap2-bin): %v", err)
	}
	families := readmeFamilies(t)
	granted := daemonSetCapabilities(t)
	own := boundingSet(t)
	var caps []string
	for _, c := range granted {
		if _, ok := capBits[c]; !ok {
			t.Fatalf("daemonset.yaml grants %s, which this test does not know", c)
		}
		if own&(1<<capBits[c]) == 0 {
			if c != "SYS_RESOURCE" || !kernelAtLeast(t, 5, 11) {
				t.Fatalf("this test's process lacks CAP_%s (bounding set %x), which kpod needs on this kernel", c, own)
			}
			t.Logf("CAP_%s is not in this environment's bounding set (%x): runs go without it, which kernels >= 5.11 allow (BPF memory is charged to the memory cgroup, not RLIMIT_MEMLOCK)", c, own)
			continue
		}
		caps = append(caps, c)
	}

	// The binary and its configuration where user nobody can read them.
	dir, err := os.MkdirTemp("", "kpod-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "otelcol-kpod")
	if out, err := exec.Command("cp", bin, exe).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	p := freePorts(t)
	cfg := filepath.Join(dir, "collector.yaml")
	b, err := os.ReadFile(localConfig(t, p, "1m"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}

	act := newActivity(t)
	run := func(caps []string, root bool) capRun {
		t.Helper()
		cmd := kpodCommand(exe, cfg)
		if !root {
			cmd = capshCommand(t, capsh, exe, cfg, caps)
		}
		k := testenv.StartCollectorCmd(t, cmd, nil)
		firstCycle(t, k, p)
		r := capRun{caps: caps, unavailable: map[string]string{}, metricsOff: map[string]string{}, errors: map[string]float64{}, reporting: map[string]bool{}}
		r.status, err = readProcStatus(k.Cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			act.once()
			time.Sleep(time.Second)
		}
		time.Sleep(2 * time.Second) // a cycle and the batch after the last activity
		for _, s := range scrape(t, p.metricsURL()) {
			switch s.Name {
			case "kpod_collector_unavailable":
				if s.Value == 1 {
					r.unavailable[s.Labels["collector"]] = s.Labels["reason"]
				}
			case "kpod_metric_unavailable":
				if s.Value == 1 {
					r.metricsOff[s.Labels["metric"]] = s.Labels["reason"]
				}
			case "kpod_collector_errors_total", "kpod_cgroup_read_errors_total":
				r.errors[s.Labels["collector"]] += s.Value
			}
			for fam, ms := range families {
				if ofFamily(s.Name, ms) {
					r.reporting[fam] = true
				}
			}
		}
		if err := k.Stop(); err != nil {
			t.Errorf("collector with %v: %v", caps, err)
		}
		r.warnings = warnings(k.Output(), 200)
		return r
	}

	// As root: the reference, which must already have every collector reporting.
	ref := run(nil, true)
	if f := ref.failing(families); len(f) > 0 {
		t.Fatalf("as root, collectors fail (the test's pods do not exercise them?): %v", f)
	}

	full := run(caps, false)
	wantCaps := fmt.Sprintf("%016x", capMask(caps))
	for _, field := range []string{"CapPrm", "CapEff", "CapAmb", "CapBnd"} {
		if got := full.status.Fields[field]; got != wantCaps {
			t.Errorf("the collector's %s is %s, want exactly %s (%v)", field, got, wantCaps, caps)
		}
	}
	if uid := strings.Fields(full.status.Fields["Uid"]); len(uid) != 4 || uid[1] != "65534" {
		t.Errorf("the collector runs as uid %v, want nobody (65534)", uid)
	}
	fullFailing := full.failing(families)
	for fam, why := range fullFailing {
		t.Errorf("as nobody with exactly %v (the DaemonSet's), %s fails: %s", caps, fam, why)
	}
	// Without CAP_SYS_ADMIN the topology family may not enter the pods' network namespaces
	// and walks the sockets it knows instead; where the kernel cannot run that walk (before
	// 5.13) it reads no live connection and says so for its bytes and RTT.
	walk := bpftest.KnownSocketWalks()
	for _, m := range []string{"kpod.topology.bytes", "kpod.topology.rtt"} {
		why, off := full.metricsOff[m]
		if walk == nil && off {
			t.Errorf("as nobody, %s is unavailable (%s) although the kernel can run the walk of known sockets", m, why)
		}
		if walk != nil && !strings.Contains(why, "refused the walk of known sockets") {
			t.Errorf("as nobody on a kernel that cannot run the walk of known sockets (%v), %s: %q, want the reason", walk, m, why)
		}
	}
	if _, off := ref.metricsOff["kpod.topology.bytes"]; off {
		t.Errorf("as root, kpod.topology.bytes is unavailable: %s", ref.metricsOff["kpod.topology.bytes"])
	}
	t.Logf("as nobody with exactly %v, %d of %d collectors load and report", caps, len(families)-len(fullFailing), len(families))

	table := []string{"| Capability dropped | Collectors that fail | How | What they say |", "|---|---|---|---|"}
	row := func(dropped string, f map[string]string) {
		names := slices.Sorted(maps.Keys(f))
		how := map[string]bool{}
		var said []string
		for _, fam := range names {
			for _, k := range []string{"unavailable", "errors", "no series"} {
				if strings.Contains(f[fam], k) {
					how[k] = true
				}
			}
			for _, n := range needs(f[fam]) {
				if !slices.Contains(said, n) {
					said = append(said, n)
				}
			}
		}
		if len(names) == 0 {
			names = []string{"none"}
		}
		table = append(table, fmt.Sprintf("| %s | %s | %s | %s |", dropped, strings.Join(names, ", "),
			strings.Join(slices.Sorted(maps.Keys(how)), ", "), strings.Join(said, " ")))
	}
	row("none", fullFailing)
	for _, c := range caps {
		rest := slices.DeleteFunc(slices.Clone(caps), func(x string) bool { return x == c })
		f := run(rest, false).failing(families)
		for fam, why := range f {
			t.Logf("without CAP_%s: %s: %s", c, fam, why)
			if _, before := fullFailing[fam]; before {
				continue // judged above, with every capability
			}
			if !strings.Contains(why, "(needs CAP_"+c) && !strings.Contains(why, " CAP_"+c) {
				t.Errorf("without CAP_%s, %s fails without naming the capability: %s", c, fam, why)
			}
		}
		row(c, f)
	}
	t.Logf("capability table:\n%s", strings.Join(table, "\n"))
}

// activity gives every collector of the comprehensive profile something to report: a pod
// with its own network namespace (a veth to a peer) and mount namespace (an ext4 volume
// behind a directory only root may search) that writes with O_DIRECT to a loop device, sends
// UDP datagrams and an HTTP request to a server of its own (kpod-l7app), and connects from
// the host to a closed loopback port (a TCP drop without a socket, node-level).
type activity struct {
	ctr  *fakepod.Container
	web  *fakepod.Container // an HTTP server on the pod's loopback, for the l7 family
	disk *fakepod.LoopDevice
	peer string
	port int
}

func newActivity(t *testing.T) *activity {
	t.Helper()
	disk := fakepod.NewLoopDevice(t, 32)
	mnt := fakepod.NewMountNS(t)
	// Mounted below the test's temporary directory, which only root may search (0700): a
	// container's volume behind directories of another owner and mode, as kpod meets them.
	fakepod.NewExt4(t, 32, fakepod.Ext4Options{MountNS: mnt, Dir: filepath.Join(t.TempDir(), "data")})
	pod := fakepod.New(t, fakepod.Options{NetNS: true})
	pod.AddSandbox()
	veth := fakepod.NewVeth(t, pod.NetNS, fakepod.NewNetNS(t))
	ctr := pod.AddContainer()
	ctr.SetNS = []string{mnt.Path}
	ctr.Start("sleep").WaitReady()
	web := pod.AddContainer()
	web.L7App("http-server", "127.0.0.1:8080").WaitReady()
	return &activity{ctr: ctr, web: web, disk: disk, peer: veth.AddrB, port: testenv.FreePort(t)}
}

func (a *activity) once() {
	a.ctr.Run("dwrite", a.disk.Path, strconv.Itoa(1<<20), "65536")
	a.ctr.Run("udp", a.peer, "9", "5", "100")
	a.web.L7App("http-client", "http://127.0.0.1:8080", "1", "GET:/ok").Output()
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", a.port), time.Second); err == nil {
		c.Close() // someone listens there now; the drop is simply not made this time
	}
}

// kernelAtLeast compares the running kernel's release with major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(b), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", b, err)
	}
	return ma > major || ma == major && mi >= minor
}
