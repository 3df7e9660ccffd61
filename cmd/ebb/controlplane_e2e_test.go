package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ebbscale/ebb/kube/controlplane"
	"github.com/ebbscale/ebb/queries/storetest"
)

// controlPlane is this package's control plane (etcd, kube-apiserver with
// KEDA's CRDs), started by the first test that needs it; the KEDA operator
// starts with the first test that calls startKEDA.
var controlPlane = controlplane.Shared{Config: controlplane.Config{KEDACRDs: true}}

func TestMain(m *testing.M) { os.Exit(controlPlane.Main(m)) }

// kubeEnv is a test's view of the control plane: an admin client and the
// namespace its objects go into.
type kubeEnv struct {
	cp     *controlplane.ControlPlane
	client kubernetes.Interface
	ns     string
}

func startKube(t *testing.T, ns string) *kubeEnv {
	t.Helper()
	return newKubeEnv(t, controlPlane.Get(t), ns)
}

// startKEDA is startKube with the KEDA operator running.
func startKEDA(t *testing.T, ns string) *kubeEnv {
	t.Helper()
	return newKubeEnv(t, controlPlane.KEDA(t), ns)
}

func newKubeEnv(t *testing.T, cp *controlplane.ControlPlane, ns string) *kubeEnv {
	t.Helper()
	if err := cp.EnsureNamespace(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return &kubeEnv{cp: cp, client: kubernetes.NewForConfigOrDie(cp.Admin), ns: ns}
}

// deployment creates a Deployment of one replica (no kubelet runs: its pods
// stay Pending) and deletes it when the test ends.
func (k *kubeEnv) deployment(t *testing.T, name string, annotations map[string]string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
			},
		},
	}
	d, err := k.client.AppsV1().Deployments(k.ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := k.client.AppsV1().Deployments(k.ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete deployment %s: %v", name, err)
		}
	})
	return d
}

// scaledObject creates a ScaledObject for the Deployment of the same name
// (pollingInterval 1 s, minReplicaCount 0), waits until KEDA reports it
// Ready, and deletes it when the test ends.
func (k *kubeEnv) scaledObject(t *testing.T, name string, cooldown int, triggers ...map[string]any) {
	t.Helper()
	ts := make([]any, len(triggers))
	for i, tr := range triggers {
		ts[i] = tr
	}
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "ScaledObject",
		"metadata":   map[string]any{"name": name, "namespace": k.ns},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": name},
			"pollingInterval": int64(1),
			"cooldownPeriod":  int64(cooldown),
			"minReplicaCount": int64(0),
			"maxReplicaCount": int64(3),
			"triggers":        ts,
		},
	}}
	ri, err := k.cp.Resource(so)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ri.Create(ctx, so, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ri.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete scaledobject %s: %v", name, err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cond(got, "Ready") == "True" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ScaledObject %s not Ready after 60s: status %v\nKEDA's log:\n%s", name, got.Object["status"], k.cp.Log("keda-operator"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cond returns the status of obj's condition typ, "" when it has none.
func cond(obj *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

func (k *kubeEnv) replicas(t *testing.T, name string) int32 {
	t.Helper()
	d, err := k.client.AppsV1().Deployments(k.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

// waitReplicas polls the Deployment's spec.replicas every 50 ms until ok
// holds, for at most timeout, and returns when it first saw it hold.
func (k *kubeEnv) waitReplicas(t *testing.T, name, want string, ok func(int32) bool, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := k.replicas(t, name)
		if ok(n) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s: spec.replicas %d after %v, want %s\nKEDA's log:\n%s", name, n, timeout, want, k.cp.Log("keda-operator"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// holdReplicas checks spec.replicas every 50 ms until done returns true
// (at most timeout): it must stay want all along.
func (k *kubeEnv) holdReplicas(t *testing.T, name string, want int32, why string, done func() bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if n := k.replicas(t, name); n != want {
			t.Fatalf("deployment %s: spec.replicas %d, want %d: %s", name, n, want, why)
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s: the wait for %s did not end within %v", name, why, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := k.replicas(t, name); n != want {
		t.Fatalf("deployment %s: spec.replicas %d, want %d: %s", name, n, want, why)
	}
}

func zero(n int32) bool  { return n == 0 }
func awake(n int32) bool { return n >= 1 }

// ebbTriggers are an `external` and an `external-push` trigger at ebb's
// gRPC address for shop/w, with its 10 s window and 3 s idle period.
func ebbTriggers(addr string) []map[string]any {
	md := map[string]any{"scalerAddress": addr, "workload": "w"}
	for k, v := range liveRef.ScalerMetadata {
		if k != "scalerAddress" {
			md[k] = v
		}
	}
	return []map[string]any{
		{"type": "external", "metadata": md},
		{"type": "external-push", "metadata": md},
	}
}

// grpcCalls returns how many GetMetrics and IsActive calls ebb has
// answered, whatever their code: each KEDA poll of an `external` trigger
// makes one of each.
func (e *e2e) grpcCalls(t *testing.T) int {
	t.Helper()
	n := 0
	for line := range strings.Lines(e.metrics(t)) {
		if !strings.HasPrefix(line, "ebb_grpc_requests_total{") ||
			!(strings.Contains(line, "ExternalScaler/IsActive\"") || strings.Contains(line, "ExternalScaler/GetMetrics\"")) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}

// callsAfter returns a condition that holds once ebb has answered n more
// GetMetrics and IsActive calls than it has now.
func (e *e2e) callsAfter(t *testing.T, n int) func() bool {
	want := e.grpcCalls(t) + n
	return func() bool { return e.grpcCalls(t) >= want }
}

// unavailable returns a condition that holds once ebb's GetMetrics for
// shop/w answers an error: the store's data is older than --max-staleness.
func (e *e2e) unavailable() func() bool {
	return func() bool {
		_, err := e.client.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: liveRef})
		return err != nil
	}
}

// startLiveWith starts a real Prometheus scraping x and `ebb serve` on it
// as startLive does, with the extra flags.
func startLiveWith(t *testing.T, x *exporter, flags ...string) *e2e {
	t.Helper()
	prom := storetest.StartPrometheus(t, storetest.PromOptions{ScrapeTarget: x.addr, ScrapeInterval: liveScrape})
	e := startServe(t, prom.URL, nil, append(liveServeFlags(), flags...)...)
	e.prom = prom
	return e
}
