//go:build e2ecluster

package e2ecluster

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/testenv"
)

// absentHere are the metrics kpod exports that this cluster cannot produce, and why. A query
// of the dashboard or the rules that returns nothing on this run's snapshots is accepted only
// if it reads one of them; each must be in the fake-pod snapshot of examples/prometheus
// (testdata/scrape-2.prom), which proves kpod exports the name. (The interface series were
// here while the cluster had only hostNetwork pods; with its pod network they must be present.)
var absentHere = map[string]string{
	"kpod_bpf_program_run_time_seconds_total": "kernel BPF statistics need bpf_stats: true, which collector-node.yaml leaves off: " +
		"enabling them needs CAP_SYS_ADMIN, which the DaemonSet does not grant (see its capabilities)",
	"kpod_bpf_program_run_count_total": "(same as kpod_bpf_program_run_time_seconds_total)",
	"kpod_l7_parse_errors_total": "the series appears with a first message the l7 family cannot count; every message of this cluster's pods " +
		"is well-formed HTTP or RESP (the Service scenario asserts no parse errors on its pods)",
}

// promTests are the tests of examples/prometheus/queries_test.go run on this run's snapshots:
// (a) every metric name of every panel, variable and rule is in the snapshot, (c) every query
// returns samples.
const promTests = "^(TestMetricNamesInSnapshot|TestQueriesReturnSamples)$"

// checkQueries runs the dashboard and rule checks of examples/prometheus (queries_test.go, the
// examples' own machinery) on this run's two scrapes, scrape-1.prom and scrape-2.prom in dir:
// KPOD_SNAPSHOT_DIR makes that package read them instead of the fake-pod snapshot in its
// testdata/. Failures are accepted only for queries that read a metric of absentHere.
func checkQueries(t *testing.T, dir string) {
	t.Helper()
	root := testenv.RepoRoot(t, 2)
	for _, n := range []string{"scrape-1.prom", "scrape-2.prom"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}

	// The names of absentHere must be names kpod exports.
	fake, err := os.ReadFile(filepath.Join(root, "examples", "prometheus", "testdata", "scrape-2.prom"))
	if err != nil {
		t.Fatal(err)
	}
	for m := range absentHere {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + `[{ ]`).Match(fake) {
			t.Errorf("%s is accepted as absent here, but it is not in examples/prometheus/testdata/scrape-2.prom either", m)
		}
	}

	run := exec.Command("go", "test", "-count=1", "-v", "-run", promTests, "./examples/prometheus/")
	run.Dir = root
	// promtool missing is a failure, not a skip.
	run.Env = append(os.Environ(), "CI=true", "KPOD_SNAPSHOT_DIR="+dir)
	out, runErr := run.CombinedOutput()
	passed := runErr == nil
	for _, name := range []string{"TestMetricNamesInSnapshot", "TestQueriesReturnSamples"} {
		if !bytes.Contains(out, []byte("--- PASS: "+name)) && !bytes.Contains(out, []byte("--- FAIL: "+name)) {
			t.Fatalf("examples/prometheus %s did not run (%v):\n%s", name, runErr, tailString(string(out), 8<<10))
		}
	}
	if passed {
		t.Logf("examples/prometheus %s on this run's snapshots: PASS\n%s", promTests, grepLines(string(out), "queries", "metric names"))
		return
	}

	// Which failures. Errors and logs look alike in the output, so only the error messages of
	// those two tests are recognized: a metric not in the snapshot, the queries listed after
	// "queries failed:", and the other errors they report (always unexplained); a failed test
	// with none of them is unexplained too.
	var unexplained, explained []string
	lines := strings.Split(string(out), "\n")
	errLine := regexp.MustCompile(`^\s+queries_test\.go:\d+: (.*(is not in the scrape snapshot|queries failed:|no metric name found in|is not a recording rule of|is a histogram without|unreplaced variable in|promtool).*)$`)
	notInSnapshot := regexp.MustCompile(`metric (\S+) is not in the scrape snapshot`)
	kpodName := regexp.MustCompile(`kpod_[a-z0-9_]+`)
	explain := func(text string) (string, bool) {
		for _, m := range kpodName.FindAllString(text, -1) {
			if why, ok := absentHere[m]; ok {
				return m + ": " + why, true
			}
		}
		return "", false
	}
	for i := 0; i < len(lines); i++ {
		m := errLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		msg := m[1]
		switch {
		case notInSnapshot.MatchString(msg):
			name := notInSnapshot.FindStringSubmatch(msg)[1]
			if why, ok := absentHere[name]; ok {
				explained = append(explained, msg+" ["+why+"]")
			} else {
				unexplained = append(unexplained, msg)
			}
		case strings.Contains(msg, "queries failed:"):
			for i++; i < len(lines) && !strings.Contains(lines[i], "promtool output"); i++ {
				q := strings.TrimSpace(lines[i])
				if q == "" {
					continue
				}
				if why, ok := explain(q); ok {
					explained = append(explained, q+" ["+why+"]")
				} else {
					unexplained = append(unexplained, "returns no samples: "+q)
				}
			}
		default:
			unexplained = append(unexplained, msg)
		}
	}
	if len(unexplained) == 0 && len(explained) == 0 {
		unexplained = append(unexplained, "the tests failed with no error message this check recognizes")
	}
	sort.Strings(explained)
	t.Logf("examples/prometheus %s on this run's snapshots: %d failures explained by metrics this cluster cannot produce:\n  %s",
		promTests, len(explained), strings.Join(explained, "\n  "))
	if len(unexplained) > 0 {
		t.Errorf("examples/prometheus %s on this run's snapshots: %d failures not explained by absentHere:\n  %s\noutput (last 8 KiB):\n%s",
			promTests, len(unexplained), strings.Join(unexplained, "\n  "), tailString(string(out), 8<<10))
	}
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
