//go:build reliability

package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/testenv"
)

// promServer is a Prometheus server (Debian's, installed by make deps) with its own
// configuration and data directory, on a free loopback port.
type promServer struct {
	base string
	cmd  *exec.Cmd
}

// startPrometheus starts prometheus scraping target (host:port) every second, asking for
// OpenMetrics first (Prometheus's default), so that the _created series of counters and
// histograms are ingested as series (Prometheus 2.42 stores them as samples).
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (make deps installs the Debian package): %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kpod
    static_configs:
      - targets: [%q]
`, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	s := &promServer{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.cmd = exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", testenv.Tail(string(b), 4<<10))
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(s.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 60 s: %v", err)
		}
	}
}

// promSeries is one series of a query result: an instant value or a range of samples.
type promSeries struct {
	Metric  map[string]string
	Samples []promSample
}

type promSample struct {
	T time.Time
	V float64
}

// query evaluates expr at instant at; a range-vector selector returns the raw samples.
func (s *promServer) query(t *testing.T, expr string, at time.Time) []promSeries {
	t.Helper()
	return s.get(t, "/api/v1/query", url.Values{"query": {expr}, "time": {promTime(at)}})
}

// queryRange evaluates expr from start to end every step.
func (s *promServer) queryRange(t *testing.T, expr string, start, end time.Time, step time.Duration) []promSeries {
	t.Helper()
	return s.get(t, "/api/v1/query_range", url.Values{"query": {expr}, "start": {promTime(start)}, "end": {promTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}})
}

// names lists the metric names of the series that match a selector.
func (s *promServer) names(t *testing.T, match string) []string {
	t.Helper()
	resp, err := http.Get(s.base + "/api/v1/label/__name__/values?" + url.Values{"match[]": {match}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("label values of %s: %v %s", match, err, body.Error)
	}
	return body.Data
}

func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}

func (s *promServer) get(t *testing.T, path string, q url.Values) []promSeries {
	t.Helper()
	resp, err := http.Get(s.base + path + "?" + q.Encode())
	if err != nil {
		t.Fatalf("%s %s: %v", path, q.Get("query"), err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: %v", path, q.Get("query"), err)
	}
	if body.Status != "success" {
		t.Fatalf("%s %s: %s", path, q.Get("query"), body.Error)
	}
	var out []promSeries
	for _, r := range body.Data.Result {
		ps := promSeries{Metric: r.Metric}
		if r.Value != nil {
			r.Values = append(r.Values, r.Value)
		}
		for _, v := range r.Values {
			ps.Samples = append(ps.Samples, parsePromSample(t, v))
		}
		out = append(out, ps)
	}
	return out
}

func parsePromSample(t *testing.T, v []any) promSample {
	t.Helper()
	if len(v) != 2 {
		t.Fatalf("sample %v: want [time, value]", v)
	}
	ts, ok1 := v[0].(float64)
	vs, ok2 := v[1].(string)
	f, err := strconv.ParseFloat(vs, 64)
	if !ok1 || !ok2 || err != nil {
		t.Fatalf("sample %v: want [seconds, \"value\"]", v)
	}
	return promSample{T: time.Unix(0, int64(ts*1e9)), V: f}
}

// seriesKey renders a series' labels, but for __name__ and those listed, sorted.
func seriesKey(m map[string]string, without ...string) string {
	var keys []string
	for k := range m {
		if k != "__name__" && !slices.Contains(without, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, m[k])
	}
	return b.String()
}
