//go:build e2ecluster

package e2ecluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The Service scenario on the pod network (scripts/cluster-up.sh: bridge CNI, kube-proxy in
// nftables mode): a client Deployment calls the Service l7, backed by the two pods of the
// Deployment l7-server, over HTTP (kpod-l7app's Go net/http server) and Redis (Debian's
// redis-server), one new connection per client run, so that kube-proxy spreads them over both
// backends. The requests' counts are known in advance; the client reports what it got, the
// HTTP servers and redis-server report what they served, and kpod's l7 family must count
// exactly those, per pod and container, on both ends.
const (
	svcName      = "l7"
	serverApp    = "l7-server"
	clientApp    = "l7-client"
	httpPort     = 8080
	redisPort    = 6379
	clientConns  = 20 // client runs: each a new connection through the Service, per protocol
	clientRounds = 5  // rounds of every request on each connection
)

// httpRequests are the client's requests on each connection (kpod-l7app http-client METHOD:PATH)
// and the method and status class kpod reports for each.
var httpRequests = []struct{ arg, key string }{
	{"GET:/ok", "GET 2xx"}, {"POST:/ok", "POST 2xx"}, {"GET:/missing", "GET 4xx"}, {"DELETE:/fail", "DELETE 5xx"},
}

// redisCommands are the client's commands on each connection (kpod-l7app redis-client) and the
// method and status kpod reports for each: LPUSH on the string key is a WRONGTYPE error reply.
var redisCommands = []struct{ cmd, key string }{
	{"SET kpod:k v", "SET ok"}, {"GET kpod:k", "GET ok"}, {"INCR kpod:n", "INCR ok"}, {"LPUSH kpod:k x", "LPUSH error"},
}

// expected is what the client must report: every request of every round on every connection.
func expected(keys []string) map[string]int64 {
	m := map[string]int64{}
	for _, k := range keys {
		m[k] += clientConns * clientRounds
	}
	return m
}

func serviceManifests(image, gates string) []byte {
	labels := map[string]string{"app": serverApp}
	grace := int64(1)
	replicas := int32(2)
	one := int32(1)
	svc := corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "http", Port: httpPort, TargetPort: intstr.FromInt32(httpPort)},
			{Name: "redis", Port: redisPort, TargetPort: intstr.FromInt32(redisPort)},
		}},
	}
	// No probes: a kubelet probe would be a request the servers serve and kpod counts.
	server := appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: serverApp, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{
					{Name: "http", Image: image, ImagePullPolicy: corev1.PullNever,
						Command: []string{"/kpod-l7app", "http-server", fmt.Sprintf("0.0.0.0:%d", httpPort)}},
					{Name: "redis", Image: image, ImagePullPolicy: corev1.PullNever,
						Command: []string{"/usr/bin/redis-server", "--bind", "0.0.0.0", "--port", strconv.Itoa(redisPort),
							"--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--logfile", ""}},
				}},
			},
		},
	}
	var redisArgs []string
	for _, r := range redisCommands {
		redisArgs = append(redisArgs, "'"+r.cmd+"'")
	}
	var httpArgs []string
	for _, h := range httpRequests {
		httpArgs = append(httpArgs, h.arg)
	}
	// The client waits at its gate (as the gated workloads do), then runs the HTTP client
	// clientConns times (one keep-alive connection each) and the Redis client once
	// (clientConns connections), each to the Service's address from the environment the
	// kubelet gives it (L7_SERVICE_HOST, L7_SERVICE_PORT_<port name>), and sleeps.
	script := fmt.Sprintf(`exec 3<>/e2e/%[1]s.gate 4>/e2e/%[1]s.ready
printf r >&4
head -c 1 <&3 >/dev/null
exec 3<&- 4>&-
i=0
while [ $i -lt %[2]d ]; do
	i=$((i + 1))
	/kpod-l7app http-client "http://$L7_SERVICE_HOST:$L7_SERVICE_PORT_HTTP" %[3]d %[4]s || echo "failed: http-client run $i"
done
/kpod-l7app redis-client "$L7_SERVICE_HOST:$L7_SERVICE_PORT_REDIS" %[2]d %[3]d %[5]s || echo "failed: redis-client"
echo "client done"
exec /kpod-workload sleep
`, clientApp, clientConns, clientRounds, strings.Join(httpArgs, " "), strings.Join(redisArgs, " "))
	clabels := map[string]string{"app": clientApp}
	typ := corev1.HostPathDirectory
	client := appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: clientApp, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: clabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: clabels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{Name: "client", Image: image, ImagePullPolicy: corev1.PullNever,
						Command:      []string{"/bin/sh", "-c", script},
						VolumeMounts: []corev1.VolumeMount{{Name: "gates", MountPath: "/e2e"}}}},
					Volumes: []corev1.Volume{{Name: "gates", VolumeSource: corev1.VolumeSource{
						HostPath: &corev1.HostPathVolumeSource{Path: gates, Type: &typ}}}},
				},
			},
		},
	}
	var out []byte
	for _, o := range []any{svc, server, client} {
		b, err := json.Marshal(o)
		if err != nil {
			panic(err)
		}
		out = append(append(out, b...), '\n')
	}
	return out
}

// testServiceTraffic runs the Service scenario and checks the l7 family on both ends. It
// returns the scenario's pods (two servers, then the client) for the interface checks.
func testServiceTraffic(t *testing.T, c *cluster, image, gates string) []*corev1.Pod {
	t.Helper()
	gate := filepath.Join(gates, clientApp+".gate")
	_ = os.Remove(gate)
	_ = os.Remove(filepath.Join(gates, clientApp+".ready"))
	if err := unix.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	manifests := serviceManifests(image, gates)
	lines := strings.SplitN(string(manifests), "\n", 3)
	// The Service first: the client's environment names it only if it exists when the pod starts.
	c.mustKubectl(t, []byte(lines[0]+"\n"+lines[1]), "create", "-f", "-")

	// ---- the servers: Running, listening, both behind the Service in kube-proxy's rules ------
	var servers []*corev1.Pod
	eventually(t, 2*time.Minute, time.Second, "two l7-server pods Running and listening", func() error {
		servers = nil
		for _, p := range c.listPods(t, ns, "app="+serverApp) {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || containerID(&p, "http") == "" || containerID(&p, "redis") == "" {
				return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			}
			pid, err := podPID(&p)
			if err != nil {
				return err
			}
			for _, port := range []int{httpPort, redisPort} {
				out, err := inNetNS(pid, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
				if err != nil || strings.TrimSpace(out) == "" {
					return fmt.Errorf("pod %s: nothing listens on %d yet (%v)", p.Name, port, err)
				}
			}
			servers = append(servers, &p)
		}
		if len(servers) != 2 {
			return fmt.Errorf("%d l7-server pods", len(servers))
		}
		return nil
	})
	sort.Slice(servers, func(i, j int) bool { return servers[i].Name < servers[j].Name })
	var svc corev1.Service
	if err := json.Unmarshal(c.mustKubectl(t, nil, "-n", ns, "get", "service", svcName, "-o", "json"), &svc); err != nil {
		t.Fatal(err)
	}
	clusterIP := svc.Spec.ClusterIP
	eventually(t, time.Minute, time.Second, "kube-proxy's rules for the Service's two backends on both ports", func() error {
		out, err := exec.Command("nft", "list", "table", "ip", "kube-proxy").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft list table ip kube-proxy: %v: %s", err, out)
		}
		rules := string(out)
		for _, port := range []struct {
			name string
			num  int
		}{{"http", httpPort}, {"redis", redisPort}} {
			// The service-ips map sends ClusterIP . tcp . port to the service port's chain
			// (service-<hash>-<namespace>/<service>/tcp/<port name>), which DNATs to the
			// endpoints, either directly ("dnat ip to numgen random mod 2 map { 0 : IP . port,
			// ... }", kube-proxy 1.37 without affinity or masquerading) or through one chain per
			// endpoint (endpoint-<hash>-<namespace>/<service>/tcp/<port name>__<IP>/<port>).
			chain := fmt.Sprintf("%s/%s/tcp/%s", ns, svcName, port.name)
			if !regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("%s . tcp . %d : goto service-", clusterIP, port.num)) +
				`[A-Z0-9]{8}-` + regexp.QuoteMeta(chain) + `\b`).MatchString(rules) {
				return fmt.Errorf("the Service %s:%d is not in kube-proxy's service-ips map yet", clusterIP, port.num)
			}
			body := nftChain(rules, regexp.MustCompile(`^service-[A-Z0-9]{8}-`+regexp.QuoteMeta(chain)+`$`))
			if body == "" {
				return fmt.Errorf("no chain for %s yet", chain)
			}
			for _, p := range servers {
				direct := fmt.Sprintf("%s . %d", p.Status.PodIP, port.num)
				viaChain := fmt.Sprintf("%s__%s/%d", chain, p.Status.PodIP, port.num)
				if !strings.Contains(body, direct) && !strings.Contains(body, viaChain) {
					return fmt.Errorf("%s's chain does not lead to %s:%d (%s) yet: %s", chain, p.Status.PodIP, port.num, p.Name, body)
				}
			}
		}
		return nil
	})
	for _, p := range servers {
		t.Logf("server pod %s IP %s (uid %s)", p.Name, p.Status.PodIP, p.UID)
	}
	t.Logf("Service %s/%s: ClusterIP %s, ports %d (http) and %d (redis), two endpoints each in kube-proxy's nftables rules", ns, svcName, clusterIP, httpPort, redisPort)

	// ---- the client, at its gate ---------------------------------------------------------------
	c.mustKubectl(t, []byte(lines[2]), "create", "-f", "-")
	var client *corev1.Pod
	eventually(t, 2*time.Minute, time.Second, "the l7-client pod at its gate", func() error {
		ps := c.listPods(t, ns, "app="+clientApp)
		if len(ps) != 1 || ps[0].Status.Phase != corev1.PodRunning || containerID(&ps[0], "client") == "" {
			return fmt.Errorf("%d l7-client pods", len(ps))
		}
		if st, err := os.Stat(filepath.Join(gates, clientApp+".ready")); err != nil || st.Size() < 1 {
			return fmt.Errorf("%s not at its gate yet", ps[0].Name)
		}
		client = &ps[0]
		return nil
	})
	t.Logf("client pod %s IP %s (uid %s)", client.Name, client.Status.PodIP, client.UID)
	ends := append(append([]*corev1.Pod{}, servers...), client)

	// Nothing has talked to the servers yet, and the client has sent nothing: no l7 series.
	time.Sleep(cycle)
	before, err := get(context.Background(), metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ends {
		for _, name := range []string{"kpod_l7_requests_total", "kpod_l7_parse_errors_total"} {
			if ss := before.find(name, map[string]string{"k8s_namespace_name": ns, "k8s_pod_name": p.Name}); len(ss) > 0 {
				t.Fatalf("before the client started, pod %s already has %s", p.Name, ss[0])
			}
		}
	}

	// ---- release the client, wait for its report -------------------------------------------
	f, err := os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening the client's gate: %v", err)
	}
	if _, err := f.Write([]byte{'g'}); err != nil {
		t.Fatalf("releasing the client: %v", err)
	}
	f.Close()
	released := time.Now()
	var clientLog []string
	eventually(t, 2*time.Minute, time.Second, "the client's report", func() error {
		clientLog = logLines(c.podLog(client, "client", 1<<20))
		for _, l := range clientLog {
			if l == "client done" {
				return nil
			}
		}
		return fmt.Errorf("no 'client done' yet (%d lines)", len(clientLog))
	})
	t.Logf("the client finished %v after its gate opened", time.Since(released).Round(100*time.Millisecond))
	var httpKeys, redisKeys []string
	for _, h := range httpRequests {
		httpKeys = append(httpKeys, h.key)
	}
	for _, r := range redisCommands {
		redisKeys = append(redisKeys, r.key)
	}
	wantHTTP, wantRedis := expected(httpKeys), expected(redisKeys)
	gotHTTP, gotRedis := map[string]int64{}, map[string]int64{}
	for _, l := range clientLog {
		if strings.HasPrefix(l, "failed:") || strings.HasPrefix(l, "kpod-l7app:") {
			t.Errorf("client: %s", l)
		}
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "count" {
			continue
		}
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			t.Fatalf("client line %q", l)
		}
		if strings.HasSuffix(f[2], "xx") { // an HTTP status class; Redis's are ok and error
			gotHTTP[f[1]+" "+f[2]] += n
		} else {
			gotRedis[f[1]+" "+f[2]] += n
		}
	}
	if !maps.Equal(gotHTTP, wantHTTP) || !maps.Equal(gotRedis, wantRedis) {
		t.Fatalf("the client reports HTTP %v and Redis %v; it was to make HTTP %v and Redis %v", gotHTTP, gotRedis, wantHTTP, wantRedis)
	}
	t.Logf("the client reports every request answered as designed: HTTP %v, Redis %v (%d connections each through %s)",
		gotHTTP, gotRedis, clientConns, clusterIP)

	// ---- kpod's counts ------------------------------------------------------------------------
	clientKey := map[string]string{"k8s_namespace_name": ns, "k8s_pod_name": client.Name, "k8s_container_name": "client"}
	serverSum := func(s *scrape, protocol, container string) map[string]int64 {
		sum := map[string]int64{}
		for _, p := range servers {
			sum = addCounts(sum, l7Counts(s, map[string]string{"k8s_namespace_name": ns, "k8s_pod_name": p.Name,
				"k8s_container_name": container, "protocol": protocol, "role": "server"}))
		}
		return sum
	}
	var final *scrape
	eventually(t, 3*cycle, 2*time.Second, "kpod's l7 counts of the client and the servers", func() error {
		s, err := get(context.Background(), metricsURL)
		if err != nil {
			return err
		}
		if got := l7Counts(s, merge(clientKey, "protocol", "http", "role", "client")); !maps.Equal(got, wantHTTP) {
			return fmt.Errorf("client http %v", got)
		}
		if got := l7Counts(s, merge(clientKey, "protocol", "redis", "role", "client")); !maps.Equal(got, wantRedis) {
			return fmt.Errorf("client redis %v", got)
		}
		if got := serverSum(s, "http", "http"); !maps.Equal(got, wantHTTP) {
			return fmt.Errorf("servers http %v", got)
		}
		if got := serverSum(s, "redis", "redis"); !maps.Equal(got, wantRedis) {
			return fmt.Errorf("servers redis %v", got)
		}
		return nil
	})
	// One more cycle: nothing may go on counting.
	time.Sleep(cycle)
	final, err = get(context.Background(), metricsURL)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("client pod", func(t *testing.T) {
		checkL7Pod(t, final, clientKey, "http", "client", wantHTTP)
		checkL7Pod(t, final, clientKey, "redis", "client", wantRedis)
		if ss := final.find("kpod_l7_requests_total", merge(clientKey, "role", "server")); len(ss) > 0 {
			t.Errorf("the client has server requests: %s", ss[0])
		}
	})
	served := map[string]map[string]map[string]int64{} // server pod name -> protocol -> its own count of answered requests by "method status"
	t.Run("server pods", func(t *testing.T) {
		// Each server's own count, read after the scrape (the signal and INFO are not in it).
		servedHTTP, servedRedis := map[string]int64{}, map[string]int64{}
		for _, p := range servers {
			key := func(container string) map[string]string {
				return map[string]string{"k8s_namespace_name": ns, "k8s_pod_name": p.Name, "k8s_container_name": container}
			}
			h := httpServerCounts(t, c, p)
			r := redisServerCounts(t, p)
			t.Logf("%s served HTTP %v and Redis %v (their own counts)", p.Name, h, r)
			checkL7Pod(t, final, key("http"), "http", "server", h)
			checkL7Pod(t, final, key("redis"), "redis", "server", r)
			for _, ctr := range []string{"http", "redis"} {
				if ss := final.find("kpod_l7_requests_total", merge(key(ctr), "role", "client")); len(ss) > 0 {
					t.Errorf("server %s/%s has client requests: %s", p.Name, ctr, ss[0])
				}
			}
			servedHTTP, servedRedis = addCounts(servedHTTP, h), addCounts(servedRedis, r)
			served[ns+"/"+p.Name] = map[string]map[string]int64{"http": h, "redis": r}
		}
		if !maps.Equal(servedHTTP, wantHTTP) || !maps.Equal(servedRedis, wantRedis) {
			t.Errorf("the servers served HTTP %v and Redis %v together; the client made HTTP %v and Redis %v", servedHTTP, servedRedis, wantHTTP, wantRedis)
		}
	})
	t.Run("service graph: client pod → Service", func(t *testing.T) {
		testServiceEdges(t, final, ns+"/"+client.Name, ns+"/"+svcName, wantHTTP, wantRedis, served)
	})
	return ends
}

// testServiceEdges: the topology family's edges of the client pod (named namespace/name from
// the API) carry exactly the client's requests, per protocol, to the Service it dialled (its
// ClusterIP: the client's socket knows nothing else), split by the backend kube-proxy sent each
// connection to (the node's conntrack table tells kpod) exactly as each server counted what it
// served: its requests, its failures (HTTP 4xx and 5xx, Redis error replies) and a latency
// sample per request on the client side; none without a backend. Its connections too, one per
// client run and protocol, by backend. The server side sees the backend too: each server pod's latency
// samples are on the edge client → that pod, as many as that server's own count, and nothing
// else goes from the client to a server pod.
func testServiceEdges(t *testing.T, s *scrape, clientEnd, svcEnd string, wantHTTP, wantRedis map[string]int64, served map[string]map[string]map[string]int64) {
	t.Helper()
	sum := func(m map[string]int64, failed bool) (n int64) {
		for k, v := range m {
			if !failed || strings.HasSuffix(k, " 4xx") || strings.HasSuffix(k, " 5xx") || strings.HasSuffix(k, " error") {
				n += v
			}
		}
		return n
	}
	if len(served) != 2 {
		t.Fatalf("the servers' own counts: %v, want two servers", served)
	}
	for _, tc := range []struct {
		protocol, connType string
		want               map[string]int64
	}{{"http", "", wantHTTP}, {"redis", "database", wantRedis}} {
		key := map[string]string{"client": clientEnd, "server": svcEnd, "protocol": tc.protocol, "connection_type": tc.connType}
		var all int64
		for backend, byProtocol := range served {
			all += sum(byProtocol[tc.protocol], false)
			for _, m := range []struct {
				name string
				want int64
			}{
				{"traces_service_graph_request_total", sum(byProtocol[tc.protocol], false)},
				{"traces_service_graph_request_failed_total", sum(byProtocol[tc.protocol], true)},
				{"traces_service_graph_request_client_seconds_count", sum(byProtocol[tc.protocol], false)},
			} {
				got, ok := s.value(t, m.name, merge(key, "backend", backend))
				if !ok || got != float64(m.want) {
					t.Errorf("%s %v backend %s: kpod %g (present %v), that server's own count %d", m.name, key, backend, got, ok, m.want)
				} else {
					t.Logf("%s %s → %s %s backend %s: %d, exact", m.name, clientEnd, svcEnd, tc.protocol, backend, m.want)
				}
			}
		}
		if all != sum(tc.want, false) {
			t.Errorf("%s: the servers served %d requests, the client made %d", tc.protocol, all, sum(tc.want, false))
		}
		for _, x := range s.find("traces_service_graph_request_total", key) {
			if x.Labels["backend"] == "" {
				t.Errorf("requests to the Service without a backend: %s", x)
			}
		}
	}
	// The client's connections, by backend too: each carried clientRounds rounds of its
	// protocol's requests, so a server's own count says how many connections reached it.
	conns := map[string]string{"client": clientEnd, "server": svcEnd}
	var allConns float64
	for backend, byProtocol := range served {
		want := float64(sumCounts(byProtocol["http"])/int64(clientRounds*len(httpRequests)) + sumCounts(byProtocol["redis"])/int64(clientRounds*len(redisCommands)))
		allConns += want
		key := merge(conns, "backend", backend)
		if got, ok := s.value(t, "kpod_topology_connections_total", key); !ok || got != want {
			t.Errorf("kpod_topology_connections_total %v: kpod %g (present %v), the server's count says %g", key, got, ok, want)
		} else {
			t.Logf("kpod_topology_connections_total %s → %s backend %s: %g, exact", clientEnd, svcEnd, backend, want)
		}
	}
	if allConns != 2*clientConns {
		t.Errorf("the servers' counts make %g connections, the client opened %d", allConns, 2*clientConns)
	}
	for _, x := range s.find("kpod_topology_connections_total", conns) {
		if x.Labels["backend"] == "" {
			t.Errorf("connections to the Service without a backend: %s", x)
		}
	}
	if ss := s.find("traces_service_graph_request_server_seconds_count", conns); len(ss) > 0 {
		t.Errorf("server-side latency on the edge to the Service (no server sees the ClusterIP): %s", ss[0])
	}
	for backend, byProtocol := range served {
		for protocol, counts := range byProtocol {
			n := sumCounts(counts)
			key := map[string]string{"client": clientEnd, "server": backend, "protocol": protocol}
			if got, ok := s.value(t, "traces_service_graph_request_server_seconds_count", key); !ok || got != float64(n) {
				t.Errorf("server-side latency samples %v: kpod %g (present %v), that server's own count %d", key, got, ok, n)
			} else {
				t.Logf("server-side latency samples %s → %s %s: %d, exact", clientEnd, backend, protocol, n)
			}
		}
	}
	for _, x := range s.Samples {
		if !strings.HasPrefix(x.Name, "traces_service_graph_") && !strings.HasPrefix(x.Name, "kpod_topology_") {
			continue
		}
		if x.Labels["client"] != clientEnd || x.Labels["server"] == svcEnd {
			continue
		}
		if served[x.Labels["server"]] == nil || !strings.HasPrefix(x.Name, "traces_service_graph_request_server_seconds") {
			t.Errorf("an edge of the client to another end than the Service or a server's own latency: %s", x)
		}
	}
}

func sumCounts(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// nftChain is the body of the first chain of an `nft list table` output whose name matches re
// ("" if there is none).
func nftChain(rules string, re *regexp.Regexp) string {
	var body []string
	in := false
	for _, l := range strings.Split(rules, "\n") {
		f := strings.Fields(l)
		switch {
		case !in && len(f) == 3 && f[0] == "chain" && f[2] == "{" && re.MatchString(f[1]):
			in = true
		case in && len(f) == 1 && f[0] == "}":
			return strings.Join(body, "\n")
		case in:
			body = append(body, strings.TrimSpace(l))
		}
	}
	return ""
}

// checkL7Pod compares a container's kpod_l7_requests_total of one protocol and role with want
// ("METHOD status" -> n), and the count of its duration histogram per method; no parse errors.
func checkL7Pod(t *testing.T, s *scrape, key map[string]string, protocol, role string, want map[string]int64) {
	t.Helper()
	got := l7Counts(s, merge(key, "protocol", protocol, "role", role))
	if !maps.Equal(got, want) {
		t.Errorf("%s/%s %s %s requests: kpod %v, want %v", key["k8s_pod_name"], key["k8s_container_name"], protocol, role, got, want)
	} else {
		t.Logf("%s/%s %s %s requests: %v (exact)", key["k8s_pod_name"], key["k8s_container_name"], protocol, role, got)
	}
	perMethod := map[string]int64{}
	for k, v := range want {
		m, _, _ := strings.Cut(k, " ")
		perMethod[m] += v
	}
	for m, n := range perMethod {
		v, _ := s.value(t, "kpod_l7_request_duration_seconds_count", merge(key, "protocol", protocol, "role", role, "method", m))
		if int64(v) != n {
			t.Errorf("%s/%s %s %s %s durations: %g samples, want %d", key["k8s_pod_name"], key["k8s_container_name"], protocol, role, m, v, n)
		}
	}
	for _, x := range s.find("kpod_l7_parse_errors_total", key) {
		if x.Value != 0 {
			t.Errorf("parse errors: %s", x)
		}
	}
}

// l7Counts are the kpod_l7_requests_total samples matching key, by "METHOD status".
func l7Counts(s *scrape, key map[string]string) map[string]int64 {
	out := map[string]int64{}
	for _, x := range s.find("kpod_l7_requests_total", key) {
		out[x.Labels["method"]+" "+x.Labels["status"]] += int64(x.Value)
	}
	return out
}

func addCounts(a, b map[string]int64) map[string]int64 {
	out := maps.Clone(a)
	for k, v := range b {
		out[k] += v
	}
	return out
}

// httpServerCounts asks a server pod's kpod-l7app http-server for its counts (SIGUSR1: it
// prints them and "counted" to its log).
func httpServerCounts(t *testing.T, c *cluster, p *corev1.Pod) map[string]int64 {
	t.Helper()
	pid := containerPID(t, p, "http")
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var counts map[string]int64
	eventually(t, 30*time.Second, 200*time.Millisecond, p.Name+"'s HTTP server counts", func() error {
		lines := logLines(c.podLog(p, "http", 1<<20))
		counts = map[string]int64{}
		for _, l := range lines {
			if l == "counted" {
				return nil
			}
			if f := strings.Fields(l); len(f) == 4 && f[0] == "count" {
				n, _ := strconv.ParseInt(f[3], 10, 64)
				counts[f[1]+" "+f[2]] += n
			}
		}
		return fmt.Errorf("no 'counted' in the log yet")
	})
	return counts
}

// redisServerCounts reads a server pod's redis-server statistics (INFO commandstats, over its
// pod IP from this host) for the client's commands, as "METHOD status" -> n: ok the calls that
// did not fail, error the failed and rejected ones.
func redisServerCounts(t *testing.T, p *corev1.Pod) map[string]int64 {
	t.Helper()
	out, err := exec.Command("redis-cli", "-h", p.Status.PodIP, "-p", strconv.Itoa(redisPort), "info", "commandstats").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli info commandstats on %s: %v: %s", p.Name, err, out)
	}
	counts := map[string]int64{}
	for _, l := range strings.Split(string(out), "\n") {
		name, kv, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		method := strings.ToUpper(strings.TrimPrefix(name, "cmdstat_"))
		field := map[string]int64{}
		for _, f := range strings.Split(kv, ",") {
			if k, v, ok := strings.Cut(f, "="); ok {
				field[k], _ = strconv.ParseInt(v, 10, 64)
			}
		}
		if n := field["calls"] - field["failed_calls"]; n > 0 {
			counts[method+" ok"] += n
		}
		if n := field["failed_calls"] + field["rejected_calls"]; n > 0 {
			counts[method+" error"] += n
		}
	}
	return counts
}

// ---- interface counters -------------------------------------------------------------------------

// ifaceMetrics are kpod's interface counters and the fields of `ip -s -s -j link` that are
// the same kernel counters (struct rtnl_link_stats64, read over netlink in the pod's network
// namespace): /proc/net/dev's rx drop column is rx_dropped + rx_missed_errors.
var ifaceMetrics = []struct {
	name string
	get  func(l ipLink) uint64
}{
	{"kpod_net_iface_rx_bytes_total", func(l ipLink) uint64 { return l.Stats.RX.Bytes }},
	{"kpod_net_iface_rx_packets_total", func(l ipLink) uint64 { return l.Stats.RX.Packets }},
	{"kpod_net_iface_rx_errors_total", func(l ipLink) uint64 { return l.Stats.RX.Errors }},
	{"kpod_net_iface_rx_drops_total", func(l ipLink) uint64 { return l.Stats.RX.Dropped + l.Stats.RX.Missed }},
	{"kpod_net_iface_tx_bytes_total", func(l ipLink) uint64 { return l.Stats.TX.Bytes }},
	{"kpod_net_iface_tx_packets_total", func(l ipLink) uint64 { return l.Stats.TX.Packets }},
	{"kpod_net_iface_tx_errors_total", func(l ipLink) uint64 { return l.Stats.TX.Errors }},
	{"kpod_net_iface_tx_drops_total", func(l ipLink) uint64 { return l.Stats.TX.Dropped }},
}

type ipLink struct {
	Name  string `json:"ifname"`
	Stats struct {
		RX struct {
			Bytes, Packets, Errors, Dropped uint64
			Missed                          uint64 `json:"missed_errors"`
		} `json:"rx"`
		TX struct{ Bytes, Packets, Errors, Dropped uint64 } `json:"tx"`
	} `json:"stats64"`
}

// podLinks reads a pod's interfaces (without lo) in its network namespace with ip(8).
func podLinks(pid int) (map[string]ipLink, error) {
	out, err := inNetNS(pid, "ip", "-s", "-s", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []ipLink
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("ip -j link: %v: %s", err, out)
	}
	m := map[string]ipLink{}
	for _, l := range links {
		if l.Name != "lo" {
			m[l.Name] = l
		}
	}
	return m, nil
}

// testIfaceExact checks every pod's kpod_net_iface_* series against its interfaces' counters
// read in its network namespace: the same set of interfaces, every counter exact. The
// counters are read, the endpoint scraped a full cycle later (so its values were collected
// after that reading) and the counters read again; a pod whose counters did not move in
// between must show exactly them. A pod with traffic in the window (a broadcast on the
// bridge) is compared in the next window.
func testIfaceExact(t *testing.T, pods []*corev1.Pod) {
	t.Helper()
	pids := map[string]int{}
	for _, p := range pods {
		pid, err := podPID(p)
		if err != nil {
			t.Fatal(err)
		}
		pids[p.Name] = pid
	}
	left := append([]*corev1.Pod{}, pods...)
	for window := 1; len(left) > 0; window++ {
		if window > 6 {
			var names []string
			for _, p := range left {
				names = append(names, p.Name)
			}
			t.Fatalf("the interface counters of %v moved in every window of %v", names, cycle)
		}
		before := map[string]map[string]ipLink{}
		for _, p := range left {
			l, err := podLinks(pids[p.Name])
			if err != nil {
				t.Fatal(err)
			}
			before[p.Name] = l
		}
		time.Sleep(cycle)
		s, err := get(context.Background(), metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		var moved []*corev1.Pod
		for _, p := range left {
			after, err := podLinks(pids[p.Name])
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(before[p.Name], after) {
				t.Logf("window %d: %s's counters moved, next window", window, p.Name)
				moved = append(moved, p)
				continue
			}
			key := map[string]string{"k8s_namespace_name": p.Namespace, "k8s_pod_name": p.Name}
			kpodNames := map[string]bool{}
			for _, x := range s.find("kpod_net_iface_rx_bytes_total", key) {
				kpodNames[x.Labels["network_interface_name"]] = true
				// kpod's own name for the pod level: k8s_attributes gives none of the pod's
				// containers' names to it (it would while a two-container pod starts).
				if c := x.Labels["k8s_container_name"]; c != "POD" {
					t.Errorf("%s: an interface series with k8s_container_name %q, want POD: %s", p.Name, c, x)
				}
			}
			var names []string
			for n := range after {
				names = append(names, n)
				if !kpodNames[n] {
					t.Errorf("%s: kpod has no series of interface %s", p.Name, n)
				}
			}
			for n := range kpodNames {
				if _, ok := after[n]; !ok {
					t.Errorf("%s: kpod reports interface %s, which is not in the pod's namespace", p.Name, n)
				}
			}
			sort.Strings(names)
			for _, n := range names {
				var vals []string
				for _, m := range ifaceMetrics {
					want := m.get(after[n])
					got, ok := s.value(t, m.name, merge(key, "network_interface_name", n))
					if !ok || got != float64(want) {
						t.Errorf("%s %s %s: kpod %g (present %v), the namespace's counter %d", p.Name, n, m.name, got, ok, want)
					}
					vals = append(vals, strconv.FormatUint(want, 10))
				}
				t.Logf("%s %s: rx bytes/packets/errors/drops, tx bytes/packets/errors/drops %s: exact (window %d)", p.Name, n, strings.Join(vals, "/"), window)
			}
		}
		left = moved
	}
}

// ---- processes and namespaces of pods ------------------------------------------------------------

// podPID is the host pid of a process of the pod (any: they share the network namespace).
func podPID(p *corev1.Pod) (int, error) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	needle := "/pod" + string(p.UID) + "/"
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), needle) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process of pod %s (%s) found", p.Name, p.UID)
}

// containerPID is the host pid of a container's first process (its command).
func containerPID(t *testing.T, p *corev1.Pod, container string) int {
	t.Helper()
	id := containerID(p, container)
	b, err := os.ReadFile(filepath.Join(cgroup2Root(), "kubepods", strings.ToLower(string(p.Status.QOSClass)), "pod"+string(p.UID), id, "cgroup.procs"))
	if err != nil {
		b, err = os.ReadFile(filepath.Join(cgroup2Root(), "kubepods", "pod"+string(p.UID), id, "cgroup.procs"))
	}
	if err != nil {
		t.Fatalf("container %s of %s: %v", container, p.Name, err)
	}
	pids := strings.Fields(string(b))
	if len(pids) != 1 {
		t.Fatalf("container %s of %s has the processes %v, want its command alone", container, p.Name, pids)
	}
	pid, err := strconv.Atoi(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// inNetNS runs a host program in the network namespace of process pid (nsenter --net: the
// program, its cgroup and mount namespace stay the host's).
func inNetNS(pid int, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", prog}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nsenter --net (pid %d) %s %v: %v: %s", pid, prog, args, err, out)
	}
	return string(out), nil
}

// logLines are the messages of a CRI log file's lines ("<time> <stream> <tag> <message>").
func logLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) == 4 && (f[1] == "stdout" || f[1] == "stderr") {
			out = append(out, f[3])
		}
	}
	return out
}
