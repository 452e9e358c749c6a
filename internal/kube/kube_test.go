package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(ns string, lbl map[string]string, mirror string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: "u-1", Name: "web-0", Namespace: ns, Labels: lbl,
			Annotations: map[string]string{"big": "annotation"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "x"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "web", ContainerID: "containerd://abc", RestartCount: 3, Image: "x"},
			{Name: "side", ContainerID: "", RestartCount: 0}, // not started yet
		}},
	}
	if mirror != "" {
		p.Annotations[mirrorAnnotation] = mirror
	}
	return p
}

func TestSlimKeepsWhatKpodUses(t *testing.T) {
	out, err := slim(pod("prod", map[string]string{"app": "web"}, "static-uid"))
	if err != nil {
		t.Fatal(err)
	}
	p := out.(*corev1.Pod)
	if len(p.Spec.Containers) != 0 || p.Annotations["big"] != "" || p.Status.ContainerStatuses[0].Image != "" {
		t.Errorf("slim kept fields kpod does not use: %+v", p)
	}
	if p.Annotations[mirrorAnnotation] != "static-uid" || p.Labels["app"] != "web" || p.Namespace != "prod" {
		t.Errorf("slim dropped fields kpod uses: %+v", p)
	}
	keys, _ := uidKeys(p)
	if len(keys) != 2 || keys[0] != "u-1" || keys[1] != "static-uid" {
		t.Errorf("index keys %v, want the UID and the static pod UID", keys)
	}
	info := toPod(p)
	if len(info.Restarts) != 1 || info.Restarts["abc"] != 3 {
		t.Errorf("restarts %v, want abc=3 (runtime prefix stripped, unstarted container skipped)", info.Restarts)
	}
}

func TestFilter(t *testing.T) {
	sel, err := ParseSelector("app=web,tier!=cache")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSelector("app in (web"); err == nil {
		t.Error("a malformed selector parsed")
	}
	for _, tc := range []struct {
		name string
		f    Filter
		p    *Pod
		want bool
	}{
		{"no filter", Filter{}, &Pod{Namespace: "a"}, true},
		{"excluded namespace", Filter{ExcludeNamespaces: []string{"kube-system"}}, &Pod{Namespace: "kube-system"}, false},
		{"included namespace", Filter{Namespaces: []string{"prod"}}, &Pod{Namespace: "prod"}, true},
		{"not included", Filter{Namespaces: []string{"prod"}}, &Pod{Namespace: "dev"}, false},
		{"selector matches", Filter{Selector: sel}, &Pod{Labels: map[string]string{"app": "web", "tier": "front"}}, true},
		{"selector fails", Filter{Selector: sel}, &Pod{Labels: map[string]string{"app": "web", "tier": "cache"}}, false},
	} {
		if got := tc.f.Allows(tc.p); got != tc.want {
			t.Errorf("%s: Allows = %v, want %v", tc.name, got, tc.want)
		}
	}
}
