package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Peer kinds.
const (
	PeerPod     = "pod"
	PeerService = "service"
	PeerNode    = "node"
)

// Peer is what an address of the cluster is: a pod (with its workload where its owner tells
// it), a Service (its ClusterIP, or an endpoint of a Service whose endpoint is not a pod), or a
// node (the address of a hostNetwork pod is its node's).
type Peer struct {
	Kind      string
	Namespace string // pods and Services
	Name      string // the pod's, the Service's or the node's name
	// Workload is the pod's controller as kind/name (Deployment/web, StatefulSet/db, ...);
	// a ReplicaSet made by a Deployment is named after the Deployment.
	Workload string
	UID      string // pods
	Node     string // pods: the node they run on
}

// Peers resolves addresses of the whole cluster from three cluster-wide informers that keep
// only what naming an address needs: Pods (UID, name, namespace, IPs, host network, node,
// controller), Services (ClusterIPs) and EndpointSlices (addresses of endpoints that are not
// pods). RBAC: list and watch on pods, services and endpointslices (discovery.k8s.io).
type Peers struct {
	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	svcs    cache.SharedIndexInformer
	slices  cache.SharedIndexInformer
	stop    chan struct{}
	once    sync.Once
	http    *http.Client
}

const (
	byIP      = "ip"
	byPodUID  = "uid"
	byService = "service"
)

// StartPeers connects, starts the informers and waits up to syncTimeout for their first lists.
func StartPeers(ctx context.Context, cfg Config, syncTimeout time.Duration) (*Peers, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kpod-topology"
	return startPeers(ctx, rc, syncTimeout)
}

func startPeers(ctx context.Context, rc *rest.Config, syncTimeout time.Duration) (*Peers, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cs, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	p := &Peers{factory: f, stop: make(chan struct{}), http: hc,
		pods: f.Core().V1().Pods().Informer(), svcs: f.Core().V1().Services().Informer(),
		slices: f.Discovery().V1().EndpointSlices().Informer()}
	for _, s := range []struct {
		inf   cache.SharedIndexInformer
		slim  cache.TransformFunc
		index cache.Indexers
	}{
		{p.pods, slimPeerPod, cache.Indexers{byIP: podIPKeys, byPodUID: func(o any) ([]string, error) {
			if pod, ok := o.(*corev1.Pod); ok {
				return []string{string(pod.UID)}, nil
			}
			return nil, nil
		}}},
		{p.svcs, slimService, cache.Indexers{byIP: serviceIPKeys}},
		{p.slices, slimSlice, cache.Indexers{byIP: sliceIPKeys}},
	} {
		if err := s.inf.SetTransform(s.slim); err != nil {
			return nil, err
		}
		if err := s.inf.AddIndexers(s.index); err != nil {
			return nil, err
		}
	}
	f.Start(p.stop)
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), p.pods.HasSynced, p.svcs.HasSynced, p.slices.HasSynced) {
		p.Stop()
		return nil, fmt.Errorf("pods, services and endpointslices not listed from %s within %v", rc.Host, syncTimeout)
	}
	return p, nil
}

// Stop ends the watches and closes their connections.
func (p *Peers) Stop() {
	p.once.Do(func() {
		close(p.stop)
		p.factory.Shutdown() // waits for the informers to return
		utilnet.CloseIdleConnectionsFor(p.http.Transport)
	})
}

// Counts returns how many pods, Services and EndpointSlices the informers hold.
func (p *Peers) Counts() (pods, services, slices int) {
	return len(p.pods.GetStore().ListKeys()), len(p.svcs.GetStore().ListKeys()), len(p.slices.GetStore().ListKeys())
}

// Lookup names an address: a pod's IP (a hostNetwork pod's IP is its node's), a Service's
// ClusterIP, or an address a Service's EndpointSlice lists without a pod behind it.
func (p *Peers) Lookup(a netip.Addr) (Peer, bool) {
	key := a.Unmap().String()
	if objs, _ := p.pods.GetIndexer().ByIndex(byIP, key); len(objs) > 0 {
		return peerOfPod(objs[0].(*corev1.Pod)), true
	}
	if objs, _ := p.svcs.GetIndexer().ByIndex(byIP, key); len(objs) > 0 {
		s := objs[0].(*corev1.Service)
		return Peer{Kind: PeerService, Namespace: s.Namespace, Name: s.Name}, true
	}
	if objs, _ := p.slices.GetIndexer().ByIndex(byIP, key); len(objs) > 0 {
		es := objs[0].(*discoveryv1.EndpointSlice)
		return Peer{Kind: PeerService, Namespace: es.Namespace, Name: es.Labels[discoveryv1.LabelServiceName]}, true
	}
	return Peer{}, false
}

// ServiceIPs returns the ClusterIPs of every Service.
func (p *Peers) ServiceIPs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, ip := range p.svcs.GetIndexer().ListIndexFuncValues(byIP) {
		if a, err := netip.ParseAddr(ip); err == nil {
			out[a] = true
		}
	}
	return out
}

// WatchServices calls set with the ClusterIPs of each Service as it is added (on) or deleted
// (off), and with the old and new ones of a changed Service, as the watch delivers them: the
// Services that exist when it is called are delivered as added.
func (p *Peers) WatchServices(set func(addrs []netip.Addr, on bool)) error {
	ips := func(obj any) []netip.Addr {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		keys, _ := serviceIPKeys(obj)
		var out []netip.Addr
		for _, k := range keys {
			if a, err := netip.ParseAddr(k); err == nil {
				out = append(out, a)
			}
		}
		return out
	}
	_, err := p.svcs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { set(ips(obj), true) },
		UpdateFunc: func(old, obj any) {
			set(ips(old), false)
			set(ips(obj), true)
		},
		DeleteFunc: func(obj any) { set(ips(obj), false) },
	})
	return err
}

// Pod returns the pod with this UID.
func (p *Peers) Pod(uid string) (Peer, bool) {
	objs, _ := p.pods.GetIndexer().ByIndex(byPodUID, uid)
	if len(objs) == 0 {
		return Peer{}, false
	}
	return peerOfPod(objs[0].(*corev1.Pod)), true
}

// hostNetworkAnnotation marks a slim pod that runs in its node's network namespace (the
// slim object keeps no spec but the node name).
const hostNetworkAnnotation = "kpod.io/host-network"

func peerOfPod(pod *corev1.Pod) Peer {
	if pod.Annotations[hostNetworkAnnotation] != "" {
		return Peer{Kind: PeerNode, Name: pod.Spec.NodeName}
	}
	out := Peer{Kind: PeerPod, Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName}
	for _, o := range pod.OwnerReferences {
		name := o.Name
		kind := o.Kind
		// A Deployment's ReplicaSet is <deployment>-<pod-template-hash>.
		if h := pod.Labels["pod-template-hash"]; kind == "ReplicaSet" && h != "" && strings.HasSuffix(name, "-"+h) {
			kind, name = "Deployment", strings.TrimSuffix(name, "-"+h)
		}
		out.Workload = kind + "/" + name
	}
	return out
}

// slimPeerPod keeps UID, name, namespace, node, phase, IPs, the controller and the one label that
// names a Deployment; host networking becomes an annotation.
func slimPeerPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: p.UID, Name: p.Name, Namespace: p.Namespace, ResourceVersion: p.ResourceVersion},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName}}
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			yes := true // kept: the informer may slim an object twice (see TestSlimIdempotent)
			out.OwnerReferences = []metav1.OwnerReference{{Kind: o.Kind, Name: o.Name, Controller: &yes}}
		}
	}
	if h := p.Labels["pod-template-hash"]; h != "" {
		out.Labels = map[string]string{"pod-template-hash": h}
	}
	out.Status.Phase = p.Status.Phase
	if p.Spec.HostNetwork || p.Annotations[hostNetworkAnnotation] != "" {
		out.Annotations = map[string]string{hostNetworkAnnotation: "true"}
	}
	for _, ip := range p.Status.PodIPs {
		out.Status.PodIPs = append(out.Status.PodIPs, corev1.PodIP{IP: ip.IP})
	}
	if len(out.Status.PodIPs) == 0 && p.Status.PodIP != "" {
		out.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	return out, nil
}

// podIPKeys indexes a pod under its IPs; a finished pod's IP may already be someone else's.
func podIPKeys(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil, nil
	}
	var keys []string
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			keys = append(keys, a.Unmap().String())
		}
	}
	return keys, nil
}

func slimService(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion}}
	for _, ip := range s.Spec.ClusterIPs {
		if ip != corev1.ClusterIPNone && ip != "" {
			out.Spec.ClusterIPs = append(out.Spec.ClusterIPs, ip)
		}
	}
	if len(out.Spec.ClusterIPs) == 0 && s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
		out.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	}
	return out, nil
}

func serviceIPKeys(obj any) ([]string, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, ip := range s.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			keys = append(keys, a.Unmap().String())
		}
	}
	return keys, nil
}

// slimSlice keeps the Service name and the addresses of endpoints that are not pods (a
// Service without a selector, pointing at something outside the cluster's pods): pods are
// named by the pod informer.
func slimSlice(obj any) (any, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: es.Name, Namespace: es.Namespace, ResourceVersion: es.ResourceVersion,
		Labels: map[string]string{discoveryv1.LabelServiceName: es.Labels[discoveryv1.LabelServiceName]}}, AddressType: es.AddressType}
	for _, e := range es.Endpoints {
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
			continue
		}
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{Addresses: e.Addresses})
	}
	return out, nil
}

func sliceIPKeys(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || es.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	var keys []string
	for _, e := range es.Endpoints {
		for _, ip := range e.Addresses {
			if a, err := netip.ParseAddr(ip); err == nil {
				keys = append(keys, a.Unmap().String())
			}
		}
	}
	return keys, nil
}
