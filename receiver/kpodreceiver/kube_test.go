//go:build kube

// Tests against a real kube-apiserver: `make kube` starts one on 127.0.0.1
// (scripts/cluster-up.sh --control-plane-only), runs them with KPOD_TEST_KUBECONFIG set and
// stops it again.

package kpodreceiver

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestKubeFilters: pods in an excluded namespace or failing the label selector produce no
// series at all; the others keep theirs, with kpod.container.restarts from the API, which
// follows a status update.
func TestKubeFilters(t *testing.T) {
	fakepod.RequireRoot(t)
	kubeconfig := os.Getenv("KPOD_TEST_KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("KPOD_TEST_KUBECONFIG is not set: run `make kube`, which starts a kube-apiserver for this test")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
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
	node := fmt.Sprintf("kpod-test-%d", time.Now().UnixNano()%1e6)
	keepNS, dropNS := node+"-keep", node+"-drop"
	for _, ns := range []string{keepNS, dropNS} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type apiPod struct {
		pod *fakepod.Pod
		ctr *fakepod.Container
		api *corev1.Pod
	}
	mk := func(ns, name, app string) apiPod {
		t.Helper()
		p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: "localhost/none"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, *metav1.NewDeleteOptions(0))
		})
		fp := fakepod.New(t, fakepod.Options{UID: string(p.UID)})
		c := fp.AddContainer()
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", ContainerID: "containerd://" + c.ID, RestartCount: 2, Ready: true}}
		if p, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.Start("sleep").WaitReady()
		return apiPod{fp, c, p}
	}
	keep := mk(keepNS, "web", "web")
	dropped := mk(dropNS, "web", "web")
	unselected := mk(keepNS, "db", "db")
	unknown := fakepod.New(t, fakepod.Options{}) // a pod cgroup the API does not know
	unknown.AddContainer().Start("sleep").WaitReady()

	cfg := customConfig("memory", "oom")
	cfg.NodeName = node
	cfg.Kubernetes = KubernetesConfig{Enabled: true, AuthType: "kubeConfig", KubeConfig: kubeconfig, SyncTimeout: 30 * time.Second}
	cfg.Filters = FilterConfig{ExcludeNamespaces: []string{"kube-system", dropNS}, LabelSelector: "app=web"}
	s := startScraper(t, cfg)

	md := scrape(t, s)
	failDump(t, md)
	rm, ok := resourceOf(md, keep.pod.UID, keep.ctr.ID)
	if !ok {
		t.Fatal("the pod that passes the filters has no series")
	}
	if got := intValue(t, rm, "kpod.container.restarts", nil); got != 2 {
		t.Errorf("restarts = %d, want 2", got)
	}
	for what, p := range map[string]*fakepod.Pod{"excluded namespace": dropped.pod, "label selector": unselected.pod, "unknown to the API": unknown} {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			if uid, _ := md.ResourceMetrics().At(i).Resource().Attributes().Get("k8s.pod.uid"); uid.Str() == p.UID {
				t.Errorf("pod filtered by %s has series", what)
			}
		}
	}
	if got := intValue(t, nodeResource(t, md), "kpod.discovery.pods", nil); got != 1 {
		t.Errorf("kpod.discovery.pods = %d, want 1 (only the reported pod)", got)
	}

	// A restart recorded by the kubelet reaches the metric through the watch.
	p, err := cs.CoreV1().Pods(keepNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.ContainerStatuses[0].RestartCount = 5
	if _, err := cs.CoreV1().Pods(keepNS).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		md = scrape(t, s)
		rm, _ = resourceOf(md, keep.pod.UID, keep.ctr.ID)
		if got := intValue(t, rm, "kpod.container.restarts", nil); got == 5 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("restarts = %d ten seconds after the status update, want 5", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
