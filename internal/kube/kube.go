// Package kube watches the pods of this node through the Kubernetes API (one node-scoped
// informer holding slim pod objects) for what the cgroup tree cannot tell: namespaces and
// labels for filters, and container restart counts.
package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// mirrorAnnotation holds, on the API's mirror of a static pod, the UID the kubelet uses for
// the static pod itself, which is the one in its cgroup path.
const mirrorAnnotation = "kubernetes.io/config.mirror"

// Auth types.
const (
	AuthServiceAccount = "serviceAccount"
	AuthKubeConfig     = "kubeConfig"
)

// Config says how to reach the API server.
type Config struct {
	AuthType   string // serviceAccount (in cluster) or kubeConfig
	KubeConfig string // kubeConfig file; empty: $KUBECONFIG, then ~/.kube/config
	NodeName   string // only this node's pods are watched
}

// Pod is what kpod keeps of a pod.
type Pod struct {
	UID       string
	Namespace string
	Name      string
	Labels    labels.Set
	// Restarts maps a container id (without the runtime:// prefix) to its restart count.
	Restarts map[string]int32
}

// Watcher keeps a synced cache of the node's pods.
type Watcher struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
	done     chan struct{} // closed when the informer has returned
	once     sync.Once
	http     *http.Client
}

const byUID = "uid"

// Start connects, starts the informer and waits up to syncTimeout for the first list.
func Start(ctx context.Context, cfg Config, syncTimeout time.Duration) (*Watcher, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kpod"
	// An HTTP client of our own, so that Stop can close its connections (client-go's
	// shared transports would keep them, and their goroutines, after the receiver stops).
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cs, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if cfg.NodeName == "" {
		return nil, errors.New("node_name is needed to watch this node's pods")
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	if err := inf.SetTransform(slim); err != nil {
		return nil, err
	}
	if err := inf.AddIndexers(cache.Indexers{byUID: uidKeys}); err != nil {
		return nil, err
	}
	w := &Watcher{informer: inf, stop: make(chan struct{}), done: make(chan struct{}), http: hc}
	go func() {
		inf.Run(w.stop)
		close(w.done)
	}()
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		w.Stop()
		return nil, fmt.Errorf("pods of node %s not listed from %s within %v", cfg.NodeName, rc.Host, syncTimeout)
	}
	return w, nil
}

// Stop ends the watch and closes its connections.
func (w *Watcher) Stop() {
	w.once.Do(func() {
		close(w.stop)
		select { // the watch's connection is idle only once the informer has let go of it
		case <-w.done:
		case <-time.After(5 * time.Second):
		}
		utilnet.CloseIdleConnectionsFor(w.http.Transport) // unwraps client-go's round trippers
	})
}

// Synced reports whether the cache holds a full list.
func (w *Watcher) Synced() bool { return w.informer.HasSynced() }

// Pod returns the pod whose cgroup carries uid (its own UID, or the static pod UID its mirror
// pod is annotated with).
func (w *Watcher) Pod(uid string) (*Pod, bool) {
	objs, err := w.informer.GetIndexer().ByIndex(byUID, uid)
	if err != nil || len(objs) == 0 {
		return nil, false
	}
	return toPod(objs[0].(*corev1.Pod)), true
}

func uidKeys(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	keys := []string{string(p.UID)}
	if m := p.Annotations[mirrorAnnotation]; m != "" {
		keys = append(keys, m)
	}
	return keys, nil
}

// slim keeps only what kpod uses, so that a node's pods cost little memory.
func slim(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // tombstones and the like pass through
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		UID: p.UID, Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, ResourceVersion: p.ResourceVersion,
	}}
	if m := p.Annotations[mirrorAnnotation]; m != "" {
		out.Annotations = map[string]string{mirrorAnnotation: m}
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			out.Status.ContainerStatuses = append(out.Status.ContainerStatuses,
				corev1.ContainerStatus{Name: cs.Name, ContainerID: cs.ContainerID, RestartCount: cs.RestartCount})
		}
	}
	return out, nil
}

func toPod(p *corev1.Pod) *Pod {
	out := &Pod{UID: string(p.UID), Namespace: p.Namespace, Name: p.Name, Labels: labels.Set(p.Labels), Restarts: map[string]int32{}}
	for _, cs := range p.Status.ContainerStatuses {
		if _, id, ok := strings.Cut(cs.ContainerID, "://"); ok && id != "" {
			out.Restarts[id] = cs.RestartCount
		}
	}
	return out
}

func restConfig(cfg Config) (*rest.Config, error) {
	switch cfg.AuthType {
	case AuthServiceAccount, "":
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (auth_type serviceAccount): %w", err)
		}
		return rc, nil
	case AuthKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if cfg.KubeConfig != "" {
			rules.ExplicitPath = cfg.KubeConfig
		}
		rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		return rc, nil
	}
	return nil, fmt.Errorf("unknown auth_type %q (want %s or %s)", cfg.AuthType, AuthServiceAccount, AuthKubeConfig)
}

// Filter decides which pods are reported.
type Filter struct {
	Namespaces        []string // empty: every namespace
	ExcludeNamespaces []string
	Selector          labels.Selector // nil: every pod
}

// Allows reports whether a pod passes the filter.
func (f Filter) Allows(p *Pod) bool {
	if len(f.Namespaces) > 0 && !slices.Contains(f.Namespaces, p.Namespace) {
		return false
	}
	if slices.Contains(f.ExcludeNamespaces, p.Namespace) {
		return false
	}
	return f.Selector == nil || f.Selector.Matches(p.Labels)
}

// ParseSelector parses a label selector ("app=web,tier!=cache,release").
func ParseSelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	return labels.Parse(s)
}
