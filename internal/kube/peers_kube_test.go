//go:build kube

// Against a real kube-apiserver: `make kube` starts one on 127.0.0.1 and sets
// KPOD_TEST_KUBECONFIG.

package kube

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestKubePeersAtScale: the topology's cluster-wide informers over 1,000 pods (each as a
// Deployment's pod looks: owner, labels, one container with env, ports, probes and
// resources, status with conditions and a container status), 300 Services with ClusterIPs
// and 300 EndpointSlices (270 of pods, 30 of addresses outside the cluster's pods). Every
// pod IP, ClusterIP and non-pod endpoint resolves to exactly its object, the informers hold
// exactly what the API lists, and the live heap they add is measured (logged; BENCHMARKS.md).
func TestKubePeersAtScale(t *testing.T) {
	kubeconfig := os.Getenv("KPOD_TEST_KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("KPOD_TEST_KUBECONFIG is not set: run `make kube`, which starts a kube-apiserver for this test")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 500, 500 // creating the objects; kpod's own client keeps the defaults
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { utilnet.CloseIdleConnectionsFor(hc.Transport) })
	cs, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const nPods, nSvcs, nExternal, perSlice = 1000, 300, 30, 3
	ns := fmt.Sprintf("kpod-peers-%d", time.Now().UnixNano()%1e6)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Without a controller manager the namespace's objects are not garbage-collected.
		del := metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))} // no kubelet to finish a graceful deletion
		_ = cs.CoreV1().Pods(ns).DeleteCollection(ctx, del, metav1.ListOptions{})
		_ = cs.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, del, metav1.ListOptions{})
		if svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, s := range svcs.Items {
				_ = cs.CoreV1().Services(ns).Delete(ctx, s.Name, del)
			}
		}
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns, del)
	})

	podIP := func(i int) string { return fmt.Sprintf("10.244.%d.%d", i/250, i%250+2) }
	deploy := func(i int) string { return fmt.Sprintf("app-%03d", i%nSvcs) }
	uids := make([]string, nPods)
	parallel(t, nPods, func(i int) error {
		p := fakePod(i, deploy(i), podIP(i))
		status := p.Status
		created, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		uids[i] = string(created.UID)
		created.Status = status
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	})
	clusterIPs := make([]string, nSvcs)
	parallel(t, nSvcs, func(i int) error {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: deploy(i), Namespace: ns, Labels: map[string]string{"app": deploy(i)}},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		if i >= nExternal {
			s.Spec.Selector = map[string]string{"app": deploy(i)}
		}
		created, err := cs.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		clusterIPs[i] = created.Spec.ClusterIP
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: deploy(i) + "-x1", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: deploy(i), discoveryv1.LabelManagedBy: "kpod-test"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}}}
		for j := 0; j < perSlice; j++ {
			e := discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}
			if i < nExternal { // a Service without a selector: addresses of no pod
				e.Addresses = []string{fmt.Sprintf("10.250.%d.%d", i, j+1)}
			} else {
				k := i + j*nSvcs // the pods of deployment i
				e.Addresses = []string{podIP(k)}
				e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-5d8f7c9b4-%05d", deploy(k), k)}
				e.NodeName = ptr("node-1")
			}
			es.Endpoints = append(es.Endpoints, e)
		}
		_, err = cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{})
		return err
	})

	before := liveHeap()
	prc := rest.CopyConfig(rc)
	prc.QPS, prc.Burst = 0, 0
	p, err := startPeers(ctx, prc, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	after := liveHeap()
	runtime.KeepAlive(p)

	// What the API holds cluster-wide (the informers list every namespace).
	var wantPods, wantSvcs, wantSlices int
	if l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err == nil {
		wantPods = len(l.Items)
	}
	if l, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err == nil {
		wantSvcs = len(l.Items)
	}
	if l, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err == nil {
		wantSlices = len(l.Items)
	}
	if gp, gs, ge := p.Counts(); gp != wantPods || gs != wantSvcs || ge != wantSlices || wantPods < nPods || wantSvcs < nSvcs || wantSlices < nSvcs {
		t.Errorf("informers hold %d pods, %d Services, %d EndpointSlices; the API lists %d, %d, %d (of them ours %d, %d, %d)",
			gp, gs, ge, wantPods, wantSvcs, wantSlices, nPods, nSvcs, nSvcs)
	}
	for i := 0; i < nPods; i++ {
		want := Peer{Kind: PeerPod, Namespace: ns, Name: fmt.Sprintf("%s-5d8f7c9b4-%05d", deploy(i), i),
			Workload: "Deployment/" + deploy(i), UID: uids[i], Node: "node-1"}
		if got, ok := p.Lookup(netip.MustParseAddr(podIP(i))); !ok || got != want {
			t.Fatalf("pod %d: %s is %+v, want %+v", i, podIP(i), got, want)
		}
		if got, ok := p.Pod(uids[i]); !ok || got != want {
			t.Fatalf("pod %d by UID: %+v, want %+v", i, got, want)
		}
	}
	for i := 0; i < nSvcs; i++ {
		want := Peer{Kind: PeerService, Namespace: ns, Name: deploy(i)}
		if got, ok := p.Lookup(netip.MustParseAddr(clusterIPs[i])); !ok || got != want {
			t.Fatalf("Service %d: %s is %+v, want %+v", i, clusterIPs[i], got, want)
		}
		if i < nExternal {
			if got, ok := p.Lookup(netip.MustParseAddr(fmt.Sprintf("10.250.%d.1", i))); !ok || got != want {
				t.Fatalf("Service %d's non-pod endpoint is %+v, want %+v", i, got, want)
			}
		}
	}
	if got, ok := p.Lookup(netip.MustParseAddr("10.251.0.1")); ok {
		t.Errorf("an address nobody has resolved to %+v", got)
	}
	t.Logf("informers over %d pods, %d Services, %d EndpointSlices (cluster-wide): live heap %.1f MiB before, %.1f MiB after, +%.1f MiB",
		wantPods, wantSvcs, wantSlices, mib(before), mib(after), mib(after)-mib(before))
}

func ptr[T any](v T) *T { return &v }

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// liveHeap is the heap in use after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fakePod is pod i of deployment d as a Deployment's pod looks in the API.
func fakePod(i int, d, ip string) *corev1.Pod {
	yes := true
	rs := d + "-5d8f7c9b4"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%05d", rs, i),
			Labels:      map[string]string{"app": d, "pod-template-hash": "5d8f7c9b4", "tier": "backend"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z", "prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs,
				UID: "6c1e9a2e-0000-4000-8000-000000000001", Controller: &yes, BlockOwnerDeletion: &yes}}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/" + d + ":1.2.3",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "DB_HOST", Value: "db.shop.svc"}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: "192.168.1.10",
			StartTime: &metav1.Time{Time: time.Unix(1764547200, 0)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "registry.example/" + d + ":1.2.3",
				ImageID:     "registry.example/" + d + "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				ContainerID: fmt.Sprintf("containerd://%064x", i),
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: time.Unix(1764547201, 0)}}}}}},
	}
}

// parallel runs f(0..n-1) on 8 goroutines and fails the test on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- fmt.Errorf("%d: %w", i, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
