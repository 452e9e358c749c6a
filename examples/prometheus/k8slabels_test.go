package prometheus_test

// The snapshot is taken on a host without a Kubernetes API server, so the k8s_attributes
// processor cannot add pod names, namespaces and container names, and queries written for a
// cluster (by namespace, by pod) would find nothing. The snapshot generator therefore adds
// them itself, derived from the ids kpod puts on every pod and container series:
//
//	k8s_namespace_name = "kpod-snapshot"
//	k8s_pod_name       = "pod-" + the first 8 characters of k8s_pod_uid
//	k8s_container_name = "ctr-" + the first 8 characters of container_id (container series only)
//
// Node-level series (no k8s_pod_uid) get nothing, as k8s_attributes gives them nothing in a
// cluster; pod-level series (interfaces: k8s_pod_uid, no container_id, kpod's own
// k8s_container_name="POD") get the namespace and pod name only, as k8s_attributes associates
// them by pod UID alone. The real-cluster snapshot
// will have the labels k8s_attributes writes instead.

const snapshotNamespace = "kpod-snapshot"

// k8sLabelsFor returns the labels the rewrite adds to a series with these labels.
func k8sLabelsFor(labels map[string]string) map[string]string {
	uid := labels["k8s_pod_uid"]
	if uid == "" {
		return nil
	}
	out := map[string]string{
		"k8s_namespace_name": snapshotNamespace,
		"k8s_pod_name":       "pod-" + prefix(uid, 8),
	}
	if cid := labels["container_id"]; cid != "" {
		out["k8s_container_name"] = "ctr-" + prefix(cid, 8)
	}
	return out
}

func prefix(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}
