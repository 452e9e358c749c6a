//go:build snapshot

// TestSnapshot writes testdata/scrape-1.prom and testdata/scrape-2.prom: two real scrapes,
// 20 s apart, of otelcol-kpod's Prometheus endpoint with the comprehensive profile, while
// fake pods on this host do a bit of everything. Needs root, a BTF kernel and
// _build/otelcol-kpod (make otelcol):
//
//	go test -tags snapshot -count=1 -run TestSnapshot -v ./examples/prometheus/
//
// Everything it creates (pod cgroups, network and mount namespaces, loop devices, processes,
// nft tables inside its own namespaces) is removed when it ends, by the fakepod harness and
// t.Cleanup.
package prometheus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/promtext"
	"github.com/kpod-project/kpod/internal/testenv"
)

const (
	snapshotNode     = "snapshot-node"
	snapshotInterval = 20 * time.Second // between the two scrapes
	tcpPort          = 7100
)

// snapshotConfig is examples/collector-local.yaml's pipeline with the comprehensive profile
// and the l7 family,
// a 5 s cycle, the filesystem family every 10 s (so that kpod_collector_skipped_total moves),
// BPF run-time statistics, and the restart counts of the fake API server.
func snapshotConfig(prom, health, telemetry int, kubeconfig string) string {
	return fmt.Sprintf(`receivers:
  kpod:
    profile: comprehensive
    collection_interval: 5s
    node_name: %s
    bpf_stats: true
    collectors:
      filesystem: {interval: 10s}
      l7: {enabled: true}
    kubernetes:
      enabled: true
      auth_type: kubeConfig
      kubeconfig: %s
      sync_timeout: 20s
processors:
  batch:
    timeout: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      included: ["k8s.*", "container.*"]
    metric_expiration: 2m
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [kpod]
      processors: [batch]
      exporters: [prometheus]
  telemetry:
    logs:
      level: info
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
`, snapshotNode, kubeconfig, prom, health, telemetry)
}

// ---- a fake Kubernetes API server --------------------------------------------------------
//
// kpod's kubernetes mode lists and watches the node's pods (client-go informer), and the
// topology family every pod, Service and EndpointSlice. This serves exactly that for the fake
// pods: GET /api/v1/pods (list, watch, and the watch-list stream newer client-go versions open
// first), in JSON, and no Services or EndpointSlices. It plays the kubelet's part for restart
// counts: setRestarts changes a container's restartCount and the watch delivers it.

type fakeAPI struct {
	mu      sync.Mutex
	rv      int
	pods    map[string]*corev1.Pod // by UID
	events  []watchEvent
	changed chan struct{} // closed and replaced on every event
	srv     *httptest.Server
}

type watchEvent struct {
	rv  int
	typ string
	pod corev1.Pod
}

func newFakeAPI(t *testing.T) *fakeAPI {
	a := &fakeAPI{pods: map[string]*corev1.Pod{}, changed: make(chan struct{}), rv: 100}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAPI) kubeconfig(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: %q}}]
users: [{name: fake, user: {}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
`, a.srv.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// addPod registers a fake pod under the names the label rewrite gives it.
func (a *fakeAPI) addPod(p *fakepod.Pod, role string) {
	labels := k8sLabelsFor(map[string]string{"k8s_pod_uid": p.UID})
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: labels["k8s_pod_name"], Namespace: labels["k8s_namespace_name"], UID: types.UID(p.UID),
			Labels: map[string]string{"app": role},
		},
		Spec:   corev1.PodSpec{NodeName: snapshotNode},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, c := range p.Containers {
		name := k8sLabelsFor(map[string]string{"k8s_pod_uid": p.UID, "container_id": c.ID})["k8s_container_name"]
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: name, Image: "localhost/kpod-workload"})
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses,
			corev1.ContainerStatus{Name: name, ContainerID: "containerd://" + c.ID, Ready: true})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pods[p.UID] = &pod
	a.emitLocked("ADDED", &pod)
}

// setRestarts sets the restartCount of one container, as the kubelet does after a restart.
func (a *fakeAPI) setRestarts(uid, containerID string, n int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pod := a.pods[uid]
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].ContainerID == "containerd://"+containerID {
			pod.Status.ContainerStatuses[i].RestartCount = n
		}
	}
	a.emitLocked("MODIFIED", pod)
}

func (a *fakeAPI) emitLocked(typ string, pod *corev1.Pod) {
	a.rv++
	pod.ResourceVersion = strconv.Itoa(a.rv)
	a.events = append(a.events, watchEvent{rv: a.rv, typ: typ, pod: *pod.DeepCopy()})
	close(a.changed)
	a.changed = make(chan struct{})
}

// emptyKinds are the other resources the topology family lists and watches cluster-wide: the
// snapshot has no Services, so both are served empty (the pods are named from the pod list).
var emptyKinds = map[string][2]string{
	"/api/v1/services":                         {"v1", "Service"},
	"/apis/discovery.k8s.io/v1/endpointslices": {"discovery.k8s.io/v1", "EndpointSlice"},
}

func (a *fakeAPI) serveEmpty(w http.ResponseWriter, r *http.Request, apiVersion, kind string) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	a.mu.Lock()
	rv := strconv.Itoa(a.rv)
	a.mu.Unlock()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": kind + "List", "apiVersion": apiVersion,
			"metadata": map[string]any{"resourceVersion": rv}, "items": []any{}})
		return
	}
	if q.Get("sendInitialEvents") == "true" {
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{"kind": kind, "apiVersion": apiVersion,
			"metadata": map[string]any{"resourceVersion": rv, "annotations": map[string]string{"k8s.io/initial-events-end": "true"}}}})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	timeout := 5 * time.Minute
	if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	select {
	case <-time.After(timeout):
	case <-r.Context().Done():
	}
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if k, ok := emptyKinds[r.URL.Path]; ok {
		a.serveEmpty(w, r, k[0], k[1])
		return
	}
	if r.URL.Path != "/api/v1/pods" {
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`, http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		a.mu.Lock()
		list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: strconv.Itoa(a.rv)}}
		uids := make([]string, 0, len(a.pods))
		for uid := range a.pods {
			uids = append(uids, uid)
		}
		sort.Strings(uids)
		for _, uid := range uids {
			list.Items = append(list.Items, *a.pods[uid].DeepCopy())
		}
		a.mu.Unlock()
		_ = json.NewEncoder(w).Encode(list)
		return
	}
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(typ string, obj any) bool {
		if err := enc.Encode(map[string]any{"type": typ, "object": obj}); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	since, _ := strconv.Atoi(q.Get("resourceVersion"))
	if q.Get("sendInitialEvents") == "true" {
		// Watch-list: the current pods as ADDED, then a bookmark ending the initial events.
		a.mu.Lock()
		var pods []corev1.Pod
		for _, p := range a.pods {
			pods = append(pods, *p.DeepCopy())
		}
		rv := a.rv
		a.mu.Unlock()
		for _, p := range pods {
			if !send("ADDED", p) {
				return
			}
		}
		bookmark := corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.Itoa(rv),
				Annotations: map[string]string{"k8s.io/initial-events-end": "true"}}}
		if !send("BOOKMARK", bookmark) {
			return
		}
		since = rv
	}
	timeout := 5 * time.Minute
	if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		var pending []watchEvent
		for _, e := range a.events {
			if e.rv > since {
				pending = append(pending, e)
			}
		}
		changed := a.changed
		a.mu.Unlock()
		for _, e := range pending {
			if !send(e.typ, e.pod) {
				return
			}
			since = e.rv
		}
		select {
		case <-changed:
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// ---- the collector ---------------------------------------------------------------------

func scrapeRaw(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return promtext.Fetch(ctx, url)
}

// ---- the snapshot ------------------------------------------------------------------------

type role struct {
	pod  *fakepod.Pod
	name string
	what string
}

func TestSnapshot(t *testing.T) {
	fakepod.RequireRoot(t)
	root := testenv.RepoRoot(t, 2)
	bin := testenv.CollectorBinary(t, root)
	start := time.Now()

	// Pods. Each has a sandbox ("pause"), as a kubelet's pod does.
	var roles []role
	newPod := func(name, what string, opts fakepod.Options) *fakepod.Pod {
		p := fakepod.New(t, opts)
		p.AddSandbox()
		roles = append(roles, role{p, name, what})
		return p
	}

	// TCP: server and client pods in their own network namespaces, joined by a veth; nft in
	// the server's namespace drops a random 10 % of the client's data segments (never the
	// handshake, bare ACKs or FINs: shorter than 100 bytes), so the client retransmits and
	// the server pod is charged netfilter_drop drops.
	server := newPod("tcp-server", "tcpserver: accepts 2 connections per round, reads to EOF; nft drops 10 % of the client's data segments", fakepod.Options{NetNS: true, QoS: podid.Burstable})
	client := newPod("tcp-client", "tcpclient: 2 connections x 2 MiB per round to tcp-server over a veth, and one SYN to a closed port", fakepod.Options{NetNS: true, QoS: podid.Burstable})
	veth := fakepod.NewVeth(t, client.NetNS, server.NetNS)
	srvCtr, cliCtr := server.AddContainer(), client.AddContainer()
	srvNS := server.NetNS
	srvNS.Exec("sysctl", "-qw", "net.ipv4.ip_early_demux=1", "net.ipv4.tcp_early_demux=1")
	srvNS.Exec("nft", "add", "table", "inet", "kpodsnap")
	srvNS.Exec("nft", "add", "chain", "inet", "kpodsnap", "input", "{ type filter hook input priority 0; policy accept; }")
	srvNS.Exec("nft", "add", "rule", "inet", "kpodsnap", "input", "ip", "saddr", veth.AddrA, "tcp", "dport", strconv.Itoa(tcpPort),
		"meta", "length", "gt", "100", "numgen", "random", "mod", "10", "eq", "0", "drop")

	// Disk: an ext4 volume on a loop device, mounted at /mnt in the writer's own mount
	// namespace (so kpod reports its filesystems); O_DIRECT writes and reads and buffered
	// writes through the page cache.
	mnt := fakepod.NewMountNS(t)
	fakepod.NewExt4(t, 64, fakepod.Ext4Options{MountNS: mnt, Dir: "/mnt"})
	writer := newPod("disk-writer", "own mount namespace with an ext4 volume at /mnt (loop device); per round 4 MiB O_DIRECT write + fdatasync, 4 MiB O_DIRECT read, 1 MiB buffered write", fakepod.Options{QoS: podid.Burstable})
	wCtr := writer.AddContainer()
	wCtr.SetNS = []string{mnt.Path}

	forker := newPod("forker", "per round: 20 forks + 3 threads, a chain of 3 execs", fakepod.Options{})
	fCtr := forker.AddContainer()

	sys := newPod("syscalls", "per round: 5000 x close(-1) (EBADF), 2000 pipe round trips with a child", fakepod.Options{})
	sCtr := sys.AddContainer()

	hog := newPod("cpu-hog", "two containers spinning 300 ms per round on CPU 0 (run-queue latency)", fakepod.Options{QoS: podid.Guaranteed})
	hogA, hogB := hog.AddContainer(), hog.AddContainer()
	hogA.Env, hogB.Env = []string{"KPOD_CPU=0"}, []string{"KPOD_CPU=0"}

	oom := newPod("oom", "128 MiB pod limit; holder allocates 96 MiB, trigger 64 MiB between the scrapes: holder is OOM-killed and restarted (16 MiB), restartCount 0 -> 1", fakepod.Options{MemoryLimit: 128 << 20, QoS: podid.Burstable})
	holder, trigger := oom.AddContainer(), oom.AddContainer()

	// L7: Go's HTTP server and redis-server, each in its own network namespace, and a client
	// pod joined to both by veths.
	web := newPod("web", "kpod-l7app http-server: /ok 200, /missing 404, /fail 500, /slow 200 after 50 ms", fakepod.Options{NetNS: true, QoS: podid.Burstable})
	cache := newPod("cache", "redis-server", fakepod.Options{NetNS: true, QoS: podid.Burstable})
	app := newPod("app", "per round: kpod-l7app http-client 10 x GET /ok, POST /missing, DELETE /fail, PATCH /slow to web; redis-benchmark 1000 x SET, GET to cache, a PING and a line that is not RESP", fakepod.Options{NetNS: true, QoS: podid.Burstable})
	webVeth, cacheVeth := fakepod.NewVeth(t, app.NetNS, web.NetNS), fakepod.NewVeth(t, app.NetNS, cache.NetNS)
	webCtr, cacheCtr, appCtr := web.AddContainer(), cache.AddContainer(), app.AddContainer()

	idle := newPod("idle", "sleeps", fakepod.Options{})
	idleCtr := idle.AddContainer()

	// Long-running processes.
	idleCtr.Start("sleep").WaitReady()
	holder.Start("alloc", strconv.Itoa(96<<20)).WaitReady()
	wCtr.Start("sleep").WaitReady() // keeps the mount namespace's view alive between rounds
	webCtr.L7App("http-server", webVeth.AddrB+":8080").WaitReady()
	cacheCtr.Exec("redis-server", "--bind", cacheVeth.AddrB, "--port", "6379", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no", "--logfile", "")
	for i := 0; strings.TrimSpace(cache.NetNS.Exec("ss", "-Hltn", "sport = :6379")) == ""; i++ {
		if i == 100 {
			t.Fatal("redis-server does not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The file the rounds write and read concurrently (O_DIRECT, same 4 MiB, never truncated).
	wCtr.Run("dwrite", "/mnt/blob", strconv.Itoa(4<<20), "65536")

	// The fake API knows every pod (kpod reports only pods the synced watch knows).
	api := newFakeAPI(t)
	for _, r := range roles {
		api.addPod(r.pod, r.name)
	}

	promPort, healthPort, telPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	cfgPath := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(cfgPath, []byte(snapshotConfig(promPort, healthPort, telPort, api.kubeconfig(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	col := testenv.StartCollector(t, bin, cfgPath)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)

	// Wait for a cycle that shows every pod.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-col.Done():
			t.Fatal("collector exited at startup")
		default:
		}
		if body, err := scrapeRaw(url); err == nil {
			all := true
			for _, r := range roles {
				if !bytes.Contains(body, []byte(`k8s_pod_uid="`+r.pod.UID+`"`)) {
					all = false
				}
			}
			if all {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the fake pods did not all appear on the endpoint within 90 s")
		}
		time.Sleep(time.Second)
	}
	t.Logf("collector up with every pod after %v", time.Since(start).Round(time.Millisecond))

	// Activity: rounds of work in every pod, in the background until both scrapes are taken.
	// (fakepod's helpers call t.Fatal on harness errors; the deferred close lets the test
	// end cleanly if one does.)
	stop, stopped := make(chan struct{}), make(chan struct{})
	var rounds int
	hostFile := filepath.Join(t.TempDir(), "irq")
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				rounds = i
				return
			default:
			}
			// Synced writes to the host's disk from outside the pods: block-device interrupts,
			// some of which arrive while a CPU is idle (node-level IRQ series).
			if f, err := os.Create(hostFile); err == nil {
				_, _ = f.Write(make([]byte, 256<<10))
				_ = f.Sync()
				f.Close()
			}
			sp := srvCtr.Start("tcpserver", strconv.Itoa(tcpPort), "2")
			sp.WaitReady()
			cp := cliCtr.Start("tcpclient", veth.AddrB, strconv.Itoa(tcpPort), "2", strconv.Itoa(2<<20))
			ha, hb := hogA.Start("spin", "300"), hogB.Start("spin", "300")
			procs := []*fakepod.Proc{cp, sp, ha, hb}
			for _, args := range [][]string{
				{"dwrite", "/mnt/blob", strconv.Itoa(4 << 20), "65536"},
				{"dread", "/mnt/blob", strconv.Itoa(4 << 20), "65536"},
				{"bwrite", "/mnt/cache-" + strconv.Itoa(i%4), "256"},
			} {
				procs = append(procs, wCtr.Start(args...))
			}
			procs = append(procs, fCtr.Start("fork", "20", "3"), fCtr.Start("exec", "3"))
			procs = append(procs, sCtr.Start("close", "5000"), sCtr.Start("pingpong", "2000"))
			procs = append(procs, appCtr.L7App("http-client", "http://"+webVeth.AddrB+":8080", "10",
				"GET:/ok", "POST:/missing", "DELETE:/fail", "PATCH:/slow"))
			procs = append(procs, appCtr.Exec("redis-benchmark", "-h", cacheVeth.AddrB, "-p", "6379", "-n", "1000", "-c", "2",
				"-t", "set,get", "-q"))
			// A line that is not RESP on a live connection: one resync and one unanswered error
			// reply on each end (kpod_l7_parse_errors_total).
			procs = append(procs, appCtr.Exec("bash", "-c", "exec 3<>/dev/tcp/"+cacheVeth.AddrB+"/6379; "+
				`printf '*1\r\n$4\r\nPING\r\n' >&3; head -n 1 <&3; printf 'kpodgarbage\r\n' >&3; head -n 1 <&3`))
			// A SYN to a closed port of the server's namespace: the kernel drops it with no
			// socket to charge (node-level no_socket drop) and the connect is refused.
			refused := cliCtr.Start("tcpclient", veth.AddrB, strconv.Itoa(tcpPort+1), "1", "1")
			for _, p := range procs {
				if err := p.Wait(); err != nil {
					t.Errorf("workload %v: %v", p.Cmd.Args, err)
				}
			}
			if err := refused.Wait(); err == nil {
				t.Errorf("connect to closed port %d succeeded", tcpPort+1)
			}
		}
	}()

	var scrapes [2][]byte
	var scrapeAt [2]time.Time
	scrape := func(i int) {
		b, err := scrapeRaw(url)
		if err != nil {
			t.Fatal(err)
		}
		scrapes[i], scrapeAt[i] = b, time.Now()
	}
	// At least two cycles of activity, and until every family the dashboard shows has
	// series: some appear only once an event happened (histograms, drops, node-level IRQs).
	time.Sleep(12 * time.Second)
	want := []string{
		"kpod_irq_hw_latency_seconds_count{node}", "kpod_irq_sw_latency_seconds_count{node}", "kpod_net_tcp_drops_total{node}",
		"kpod_irq_hw_latency_seconds_count{pod}", "kpod_irq_sw_latency_seconds_count{pod}", "kpod_net_tcp_drops_total{pod}",
		"kpod_net_tcp_rtt_seconds_count{pod}", "kpod_disk_io_latency_seconds_count{pod}", "kpod_syscall_latency_seconds_count{pod}",
		"kpod_fs_usage_bytes{pod}", "kpod_net_iface_rx_bytes_total{pod}", "kpod_disk_written_bytes_total{pod}",
		"kpod_l7_requests_total{pod}", "kpod_l7_request_duration_seconds_count{pod}",
	}
	for deadline := time.Now().Add(90 * time.Second); ; {
		b, err := scrapeRaw(url)
		if err != nil {
			t.Fatal(err)
		}
		e, err := parseExposition(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, smp := range e.Samples {
			where := "node"
			if smp.Labels["k8s_pod_uid"] != "" {
				where = "pod"
			}
			have[smp.Name+"{"+where+"}"] = true
		}
		var missing []string
		for _, w := range want {
			if !have[w] {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no series yet for %v", missing)
		}
		t.Logf("waiting for series of %v", missing)
		time.Sleep(2 * time.Second)
	}
	scrape(0)
	time.Sleep(5 * time.Second)
	// The OOM kill, the "kubelet" restarting the victim, and its restart count.
	tp := trigger.Start("alloc", strconv.Itoa(64<<20))
	tp.WaitReady()
	time.Sleep(200 * time.Millisecond) // the holder's process is gone: SIGKILL by the OOM killer
	holder.Start("alloc", strconv.Itoa(16<<20)).WaitReady()
	api.setRestarts(oom.UID, holder.ID, 1)
	time.Sleep(time.Until(scrapeAt[0].Add(snapshotInterval)))
	scrape(1)
	close(stop)
	select {
	case <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("the workloads did not finish within 2 minutes")
	}
	t.Logf("%d rounds of activity", rounds)
	t.Logf("scrapes %v apart", scrapeAt[1].Sub(scrapeAt[0]).Round(time.Millisecond))

	// Keep our pods' series and the node-level ones; add the k8s_* labels.
	ours := map[string]role{}
	for _, r := range roles {
		ours[r.pod.UID] = r
	}
	var uname unix.Utsname
	_ = unix.Uname(&uname)
	release := unix.ByteSliceToString(uname.Release[:])
	for i, raw := range scrapes {
		e, err := parseExposition(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("scrape %d: %v", i+1, err)
		}
		out := renderSnapshot(e, ours, roles, i+1, release)
		path := filepath.Join(root, "examples", "prometheus", "testdata", fmt.Sprintf("scrape-%d.prom", i+1))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(out))
	}
	t.Logf("snapshot done in %v", time.Since(start).Round(time.Millisecond))
}

// renderSnapshot writes the kept series in the exporter's order, with a header saying what
// the file is.
func renderSnapshot(e *exposition, ours map[string]role, roles []role, n int, release string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `# kpod scrape snapshot %d of 2: otelcol-kpod's Prometheus endpoint, scraped twice %v apart.
# Written by examples/prometheus/snapshot_test.go (go test -tags snapshot -count=1 -run TestSnapshot ./examples/prometheus/).
# Collector: profile comprehensive, collection_interval 5s, collectors.filesystem.interval 10s, bpf_stats true,
# kubernetes.enabled with a fake API server (pods and restart counts only), node_name %s; Linux %s.
# Kept: the series of the fake pods below and the node-level series (kpod's own health, node buckets).
# Added (no API server, so no k8s_attributes): k8s_namespace_name="%s", k8s_pod_name="pod-<k8s_pod_uid[:8]>",
# k8s_container_name="ctr-<container_id[:8]>" on container series (see k8slabels_test.go).
# Pods:
`, n, snapshotInterval, snapshotNode, release, snapshotNamespace)
	for _, r := range roles {
		fmt.Fprintf(&b, "#   %-12s %-10s %s\n", "pod-"+prefix(r.pod.UID, 8), r.name, r.what)
	}
	// The exporter's own encoder (expfmt) writes the kept metrics, so that the file carries
	// exactly the values and the order the endpoint had.
	for _, mf := range e.Families {
		var kept []*dto.Metric
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if uid := labels["k8s_pod_uid"]; uid != "" {
				if _, ok := ours[uid]; !ok {
					continue
				}
			} else if !strings.HasPrefix(mf.GetName(), "kpod_") && !strings.HasPrefix(mf.GetName(), "traces_service_graph_") {
				continue // target_info and the like: not kpod's (the service graph's names are)
			}
			for k, v := range k8sLabelsFor(labels) {
				m.Label = append(m.Label, &dto.LabelPair{Name: &k, Value: &v})
			}
			sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
			kept = append(kept, m)
		}
		if len(kept) == 0 {
			continue
		}
		mf.Metric = kept
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			panic(err) // a bytes.Buffer does not fail
		}
	}
	return b.Bytes()
}
