package live

import (
	"context"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/ebbscale/ebb/autopilot"
)

// t0 is when the tests' sampling starts.
var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func ptr[T any](v T) *T { return &v }

// app is a container requesting cpu and memory, with the memory as limit.
func app(name, cpu, memory string) corev1.Container {
	q := resource.MustParse
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: q(cpu), corev1.ResourceMemory: q(memory)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: q(memory)},
	}}
}

func deployment(ns, name string, replicas int32, cs ...corev1.Container) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: cs},
		}},
	}
}

func statefulSet(ns, name string, replicas int32, cs ...corev1.Container) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: cs},
		}},
	}
}

func controller(kind, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr(true)}}
}

func replicaSet(ns, name, deployment string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: controller(KindDeployment, deployment)}}
}

func pod(ns, name, kind, owner string, cs ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: controller(kind, owner)},
		Spec:       corev1.PodSpec{Containers: cs},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// usage is one container's usage: cores and MiB.
type usage struct {
	container string
	cpu, mib  float64
}

func podMetrics(ns, name string, at time.Time, us ...usage) metricsv1beta1.PodMetrics {
	pm := metricsv1beta1.PodMetrics{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Timestamp:  metav1.NewTime(at), Window: metav1.Duration{Duration: 15 * time.Second},
	}
	for _, u := range us {
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: u.container, Usage: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(u.cpu*1000), resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(int64(u.mib*autopilot.MiB), resource.BinarySI),
		}})
	}
	return pm
}

// metricsServer is a fake metrics.k8s.io whose answer to the n-th list
// (from 1) in a namespace ("" for all) is answer(n, namespace).
func metricsServer(answer func(n int, ns string) ([]metricsv1beta1.PodMetrics, error)) *metricsfake.Clientset {
	c := metricsfake.NewSimpleClientset()
	n := map[string]int{}
	c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ns := a.GetNamespace()
		n[ns]++
		items, err := answer(n[ns], ns)
		if err != nil {
			return true, nil, err
		}
		return true, &metricsv1beta1.PodMetricsList{Items: items}, nil
	})
	return c
}

// refuse makes client answer verb on resource with Forbidden.
func refuse(client *fake.Clientset, verb, group, res string) {
	client.PrependReactor(verb, res, func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: res}, "",
			errForbidden(verb, group, res, a.GetNamespace()))
	})
}

type forbiddenReason string

func (f forbiddenReason) Error() string { return string(f) }

func errForbidden(verb, group, res, ns string) error {
	return forbiddenReason(`User "system:serviceaccount:ebb-system:ebb" cannot ` + verb + ` resource "` + res +
		`" in API group "` + group + `" in the namespace "` + ns + `"`)
}

// noMetricsAPI is what client-go answers when the metrics.k8s.io
// APIService is missing.
func noMetricsAPI() error {
	return apierrors.NewGenericServerResponse(404, "get", schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "", "", 0, false)
}

// run runs s on h, advancing the mock clock by s.Every after each sample.
func run(t *testing.T, s *Sampler, h *autopilot.History, mock *clock.Mock) error {
	t.Helper()
	progress := make(chan int)
	s.Clock = mock
	s.Progress = func(done, _ int) { progress <- done }
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background(), h) }()
	for {
		select {
		case <-progress:
			mock.Add(s.Every)
		case err := <-errc:
			return err
		}
	}
}

func newMock() *clock.Mock {
	m := clock.NewMock()
	m.Set(t0)
	return m
}

func history(t *testing.T, cfg autopilot.Config, start, end time.Time, step time.Duration) *autopilot.History {
	t.Helper()
	h, err := autopilot.NewHistory(cfg, start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func recommend(t *testing.T, h *autopilot.History) *autopilot.Report {
	t.Helper()
	r, err := autopilot.Recommend(h, autopilot.DefaultPrices(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func row(t *testing.T, r *autopilot.Report, ns, name string) autopilot.WorkloadReport {
	t.Helper()
	for _, w := range r.Workloads {
		if w.Namespace == ns && w.Name == name {
			return w
		}
	}
	t.Fatalf("no row %s/%s in %d rows", ns, name, len(r.Workloads))
	return autopilot.WorkloadReport{}
}

// shop is a namespace with the Deployment web (2 replicas, its ReplicaSet
// and pods) and the StatefulSet db (1 replica).
func shop() []runtime.Object {
	return []runtime.Object{
		namespace("shop"),
		deployment("shop", "web", 2, app("app", "1", "1Gi")),
		replicaSet("shop", "web-7d9f8b6c5d", "web"),
		pod("shop", "web-7d9f8b6c5d-x2x4z", "ReplicaSet", "web-7d9f8b6c5d", app("app", "1", "1Gi")),
		pod("shop", "web-7d9f8b6c5d-q8w7v", "ReplicaSet", "web-7d9f8b6c5d", app("app", "1", "1Gi")),
		statefulSet("shop", "db", 1, app("postgres", "2", "4Gi")),
		pod("shop", "db-0", KindStatefulSet, "db", app("postgres", "2", "4Gi")),
	}
}

func apiForbidden(verb, group, res, ns string) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: res}, "", errForbidden(verb, group, res, ns))
}
