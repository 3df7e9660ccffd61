//go:build linux

package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"github.com/ebbscale/ebb/kube/controlplane"
)

// podMetricsCRD serves metrics.k8s.io/v1beta1 PodMetrics from the API
// server itself, in place of metrics-server (which needs kubelets): the
// same group, version, resource and JSON, so client-go's metrics client,
// the API server's authorizer and RBAC see what they see with
// metrics-server. A CRD in a *.k8s.io group needs the
// api-approved.kubernetes.io annotation.
const podMetricsCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: pods.metrics.k8s.io
  annotations:
    api-approved.kubernetes.io: "unapproved, a test's stand-in for metrics-server"
spec:
  group: metrics.k8s.io
  scope: Namespaced
  names: {plural: pods, singular: podmetrics, kind: PodMetrics, listKind: PodMetricsList}
  versions:
    - name: v1beta1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`

// TestAutopilotRBACIsMinimal runs `ebb recommend --source metrics-server`
// as the chart's ServiceAccount with the autopilot's rules alone
// (autopilot.enabled, every other feature off) on a real API server, with
// PodMetrics served as metrics-server serves them. It shows that those
// rules are enough, exactly those the autopilot uses, and each needed: list
// PodMetrics (the usage), list ReplicaSets and pods (which workload a pod
// is), get namespaces (a --namespace that does not exist), list Deployments
// and StatefulSets (the workloads and their requests). With each one taken
// away, the report or its warnings name the verb and resource the API
// server refused.
func TestAutopilotRBACIsMinimal(t *testing.T) {
	cp := startControlPlane(t, controlplane.Config{})
	admin := kubernetes.NewForConfigOrDie(cp.Admin)
	ctx := context.Background()
	crd, err := controlplane.Decode(strings.NewReader(podMetricsCRD))
	if err != nil {
		t.Fatal(err)
	}
	objs := append(renderChartRBAC(t, "rbac.serving=false", "rbac.state=false", "activator.enabled=false", "autopilot.enabled=true"), crd...)
	if err := cp.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	sa, err := cp.ServiceAccount(ctx, featRelease, featRelease)
	if err != nil {
		t.Fatal(err)
	}
	asEbb := kubernetes.NewForConfigOrDie(sa)
	metricsAsEbb := metricsclient.NewForConfigOrDie(sa)
	shopWithMetrics(t, cp, admin)

	r := saRBAC{client: admin, namespace: featRelease, name: featRelease}
	roles := r.boundRoles(t)
	want := [][3]string{
		{"metrics.k8s.io", "pods", "list"}, {"apps", "replicasets", "list"}, {"", "pods", "list"}, {"", "namespaces", "get"},
		{"apps", "deployments", "list"}, {"apps", "statefulsets", "list"},
	}
	got := roles.grants()
	byName := func(a, b [3]string) int { return strings.Compare(strings.Join(a[:], "/"), strings.Join(b[:], "/")) }
	slices.SortFunc(got, byName)
	slices.SortFunc(want, byName)
	if !slices.Equal(got, want) {
		t.Errorf("the chart's autopilot ClusterRoles grant %v, want exactly %v", got, want)
	}
	t.Run("nothing broader", func(t *testing.T) {
		for _, at := range []authorizationv1.ResourceAttributes{
			{Group: "metrics.k8s.io", Resource: "pods", Verb: "get"},
			{Group: "metrics.k8s.io", Resource: "pods", Verb: "watch"},
			{Group: "metrics.k8s.io", Resource: "nodes", Verb: "list"},
			{Group: "apps", Resource: "replicasets", Verb: "get"},
			{Group: "apps", Resource: "replicasets", Verb: "watch"},
			{Group: "apps", Resource: "deployments", Verb: "watch"},
			{Group: "apps", Resource: "deployments", Verb: "patch"},
			{Resource: "pods", Verb: "get"},
			{Resource: "pods", Verb: "watch"},
			{Resource: "pods", Subresource: "log", Verb: "get"},
			{Resource: "namespaces", Verb: "list"},
			{Resource: "nodes", Verb: "list"},
			{Resource: "secrets", Verb: "get"},
		} {
			if r.may(t, at) {
				t.Errorf("%s may %s %s/%s: the chart grants the autopilot more than it uses", r.user(), at.Verb, at.Group, at.Resource+"/"+at.Subresource)
			}
		}
	})

	run := func(t *testing.T) (rows map[string]string, stderr string, err error) {
		t.Helper()
		mock := msMock(time.Now().UTC().Truncate(time.Minute))
		args := []string{"--source=metrics-server", "--sample=10m", "--every=1m", "--namespace=shop", "--namespace=ghost", "--format=json"}
		// As msRun, and metrics-server's next sample between two of
		// ebb's: the PodMetrics move on by a minute.
		deps := msDeps(asEbb, metricsAsEbb, mock)
		var out, errOut bytes.Buffer
		sampled := make(chan struct{})
		deps.live.sampled = func(int, int) { sampled <- struct{}{} }
		done := make(chan error, 1)
		go func() { done <- recommend(context.Background(), args, &out, &errOut, deps) }()
	loop:
		for {
			select {
			case <-sampled:
				mock.Add(time.Minute)
				setPodMetrics(t, cp, mock.Now())
			case err = <-done:
				break loop
			}
		}
		stdout, stderr := out.String(), errOut.String()
		if err != nil && !strings.HasPrefix(err.Error(), "no workload to recommend for") {
			t.Fatalf("%v\nstderr: %s", err, stderr)
		}
		_, report := msReport(t, stdout)
		rows = map[string]string{}
		for name, w := range report {
			if len(w.Containers) == 1 {
				rows[name] = w.Containers[0].CPU.NotEnoughData
				if rows[name] == "" {
					rows[name] = "ok"
				}
			}
		}
		return rows, stderr, err
	}

	t.Run("every rule", func(t *testing.T) {
		rows, stderr, err := run(t)
		if err != nil {
			t.Fatal(err)
		}
		if rows["shop/web"] != "ok" || rows["ghost/*"] != `namespace "ghost" does not exist` {
			t.Errorf("rows %q, want shop/web recommended and ghost/* not existing", rows)
		}
		if strings.Contains(strings.ReplaceAll(stderr, "warning: namespace \"ghost\" does not exist\n", ""), "warning:") {
			t.Errorf("warnings with every rule:\n%s", stderr)
		}
	})
	refused := func(verb, resource, group, ns string) string {
		return `is forbidden: User "` + r.user() + `" cannot ` + verb + ` resource "` + resource + `" in API group "` + group + `" in the namespace "` + ns + `"`
	}
	for _, c := range []struct {
		grant [3]string
		check func(t *testing.T, rows map[string]string, stderr string, err error)
	}{
		{[3]string{"metrics.k8s.io", "pods", "list"}, func(t *testing.T, rows map[string]string, _ string, _ error) {
			if !strings.Contains(rows["shop/web"], refused("list", "pods", "metrics.k8s.io", "shop")) {
				t.Errorf("shop/web: %q, want the refused list of pods.metrics.k8s.io", rows["shop/web"])
			}
		}},
		{[3]string{"apps", "replicasets", "list"}, func(t *testing.T, _ map[string]string, stderr string, _ error) {
			if !strings.Contains(stderr, "warning: list replicasets.apps in namespace \"shop\": replicasets.apps "+refused("list", "replicasets", "apps", "shop")) {
				t.Errorf("stderr lacks the refused list of replicasets:\n%s", stderr)
			}
		}},
		{[3]string{"", "pods", "list"}, func(t *testing.T, _ map[string]string, stderr string, _ error) {
			if !strings.Contains(stderr, `warning: list pods in namespace "shop": pods `+refused("list", "pods", "", "shop")) {
				t.Errorf("stderr lacks the refused list of pods:\n%s", stderr)
			}
		}},
		{[3]string{"apps", "deployments", "list"}, func(t *testing.T, rows map[string]string, stderr string, err error) {
			// shop/web is a Deployment: without the list, ebb finds no
			// workload, and says which list was refused.
			if _, ok := rows["shop/web"]; ok || err == nil {
				t.Errorf("shop/web: %q, err %v; want no row and no workload to recommend for", rows["shop/web"], err)
			}
			if !strings.Contains(stderr, `warning: list deployments.apps in namespace "shop": deployments.apps `+refused("list", "deployments", "apps", "shop")) {
				t.Errorf("stderr lacks the refused list of deployments:\n%s", stderr)
			}
		}},
		{[3]string{"apps", "statefulsets", "list"}, func(t *testing.T, rows map[string]string, stderr string, _ error) {
			if !strings.Contains(stderr, `warning: list statefulsets.apps in namespace "shop": statefulsets.apps `+refused("list", "statefulsets", "apps", "shop")) {
				t.Errorf("stderr lacks the refused list of statefulsets:\n%s", stderr)
			}
		}},
		{[3]string{"", "namespaces", "get"}, func(t *testing.T, rows map[string]string, _ string, _ error) {
			// Without it ebb cannot tell a namespace that does not
			// exist from one without workloads: ghost is only empty.
			if got, want := rows["ghost/*"], `no Deployments or StatefulSets in namespace "ghost"`; got != want {
				t.Errorf("ghost/*: %q, want %q: ebb may not read namespaces", got, want)
			}
		}},
	} {
		t.Run("without "+c.grant[2]+" "+c.grant[1]+"."+c.grant[0], func(t *testing.T) {
			roles.without(t, r, c.grant)
			defer roles.without(t, r, [3]string{})
			rows, stderr, err := run(t)
			c.check(t, rows, stderr, err)
		})
	}
}

// shopWithMetrics creates the namespace shop with the Deployment web: its
// ReplicaSet, two pods owned by it as the ReplicaSet controller names
// them, and a PodMetrics of each as metrics-server reports them.
func shopWithMetrics(t *testing.T, cp *controlplane.ControlPlane, admin kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	if err := cp.EnsureNamespace(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	ctr := corev1.Container{Name: "app", Image: "registry.invalid/web:1", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}}
	d, err := admin.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsLabels := map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5d"}
	rs, err := admin.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f8b6c5d", Namespace: "shop", Labels: rsLabels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: rsLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: rsLabels}, Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range webPods {
		_, err := admin.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: rsLabels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	setPodMetrics(t, cp, time.Now().UTC().Truncate(time.Minute))
}

// webPods are shop/web's pods.
var webPods = []string{"web-7d9f8b6c5d-x2x4z", "web-7d9f8b6c5d-q8w7v"}

// setPodMetrics writes the PodMetrics of shop/web's pods as metrics-server
// reports them at time at: 300m cores and 200 MiB each.
func setPodMetrics(t *testing.T, cp *controlplane.ControlPlane, at time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, name := range webPods {
		pm := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
			"metadata":  map[string]any{"name": name, "namespace": "shop", "labels": map[string]any{"app": "web"}},
			"timestamp": at.UTC().Format(time.RFC3339), "window": "30s",
			"containers": []any{map[string]any{"name": "app", "usage": map[string]any{"cpu": "300m", "memory": "200Mi"}}},
		}}
		ri, err := cp.Resource(pm)
		if err != nil {
			t.Fatal(err)
		}
		old, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			pm.SetResourceVersion(old.GetResourceVersion())
			_, err = ri.Update(ctx, pm, metav1.UpdateOptions{})
		} else {
			_, err = ri.Create(ctx, pm, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
