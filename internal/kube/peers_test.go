package kube

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSlimPeerPod(t *testing.T) {
	yes := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: "u-1", Name: "web-5d8f7c9b4-x2x4k", Namespace: "shop",
			Labels:      map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b4"},
			Annotations: map[string]string{"big": "annotation"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f7c9b4", Controller: &yes},
				{Kind: "Other", Name: "not-the-controller"}}},
		Spec:   corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.5", PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "fd00::5"}}},
	}
	out, _ := slimPeerPod(p)
	s := out.(*corev1.Pod)
	if len(s.Spec.Containers) != 0 || s.Annotations["big"] != "" || s.Labels["app"] != "" || len(s.OwnerReferences) != 1 {
		t.Errorf("slim kept what naming does not use: %+v", s)
	}
	keys, _ := podIPKeys(s)
	if len(keys) != 2 || keys[0] != "10.1.0.5" || keys[1] != "fd00::5" {
		t.Errorf("IP keys %v", keys)
	}
	if got := peerOfPod(s); got != (Peer{Kind: PeerPod, Namespace: "shop", Name: "web-5d8f7c9b4-x2x4k", Workload: "Deployment/web", UID: "u-1", Node: "node-1"}) {
		t.Errorf("peer %+v", got)
	}
	p.Spec.HostNetwork = true
	out, _ = slimPeerPod(p)
	if got := peerOfPod(out.(*corev1.Pod)); got != (Peer{Kind: PeerNode, Name: "node-1"}) {
		t.Errorf("hostNetwork pod: %+v, want its node", got)
	}
	p.Status.Phase = corev1.PodSucceeded
	out, _ = slimPeerPod(p)
	if keys, _ := podIPKeys(out.(*corev1.Pod)); len(keys) != 0 {
		t.Errorf("a finished pod keeps its IP: %v", keys)
	}
}

func TestSlimServiceAndSlice(t *testing.T) {
	out, _ := slimService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: "shop", Labels: map[string]string{"a": "b"}},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, Selector: map[string]string{"app": "cart"}}})
	if keys, _ := serviceIPKeys(out); len(keys) != 1 || keys[0] != "10.96.0.10" || out.(*corev1.Service).Spec.Selector != nil {
		t.Errorf("service keys %v, slim %+v", keys, out)
	}
	out, _ = slimService(&corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "None", ClusterIPs: []string{"None"}}})
	if keys, _ := serviceIPKeys(out); len(keys) != 0 {
		t.Errorf("a headless service has keys %v", keys)
	}
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "db-x", Namespace: "shop",
		Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.7"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "db-0"}},
			{Addresses: []string{"172.16.4.4"}}, // outside the cluster's pods
		}}
	out, _ = slimSlice(es)
	if keys, _ := sliceIPKeys(out); len(keys) != 1 || keys[0] != "172.16.4.4" {
		t.Errorf("slice keys %v, want the endpoint that is not a pod", keys)
	}
}

// TestSlimIdempotent: the informers may hand an object that is already slim to the transform
// again (seen with a real API server: the pods lost their controller); slimming it twice
// keeps what naming uses.
func TestSlimIdempotent(t *testing.T) {
	yes := true
	for _, host := range []bool{false, true} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{UID: "u-1", Name: "web-5d8f7c9b4-x2x4k", Namespace: "shop",
				Labels:          map[string]string{"pod-template-hash": "5d8f7c9b4"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f7c9b4", Controller: &yes}}},
			Spec:   corev1.PodSpec{NodeName: "node-1", HostNetwork: host},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}}},
		}
		once, _ := slimPeerPod(p)
		twice, _ := slimPeerPod(once)
		if a, b := peerOfPod(once.(*corev1.Pod)), peerOfPod(twice.(*corev1.Pod)); a != b || (!host && a.Workload != "Deployment/web") || (host && a.Kind != PeerNode) {
			t.Errorf("host network %v: once %+v, twice %+v", host, a, b)
		}
		k1, _ := podIPKeys(once)
		k2, _ := podIPKeys(twice)
		if !reflect.DeepEqual(k1, k2) || len(k1) != 1 {
			t.Errorf("IP keys once %v, twice %v", k1, k2)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}}}
	s1, _ := slimService(svc)
	s2, _ := slimService(s1)
	if !reflect.DeepEqual(s1, s2) {
		t.Errorf("Service once %+v, twice %+v", s1, s2)
	}
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "ext-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "ext"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.250.0.1"}},
			{Addresses: []string{"10.1.0.5"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web"}}}}
	e1, _ := slimSlice(es)
	e2, _ := slimSlice(e1)
	if !reflect.DeepEqual(e1, e2) {
		t.Errorf("EndpointSlice once %+v, twice %+v", e1, e2)
	}
}
