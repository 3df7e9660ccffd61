//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ebbscale/ebb/internal/netnstest"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/kube/controlplane"
	"github.com/ebbscale/ebb/queries/storetest"
)

// The workload of the activator's end-to-end tests is shop/w, the one the
// test exporter reports (liveRef): a Deployment that holds requests while
// idle, and a Service w whose port http (80) targets the pods' port named
// http (8080).
const (
	actNS          = "shop"
	actWorkload    = "w"
	actHost        = actWorkload + "." + actNS + ".svc.cluster.local"
	actBackendPort = 8080
	actEbbSlice    = actWorkload + ".ebb"  // ebb's EndpointSlice of Service w
	actOwnSlice    = actWorkload + "-pods" // the test's, standing in for the EndpointSlice controller's
	actOwnManager  = "test.ebb.dev"
)

// actEnv is a real control plane, a network namespace for the "pods",
// a real Prometheus scraping a test exporter, and `ebb serve` with the
// activator on the host's end of the veth pair, running as the
// ServiceAccount of deploy/ with its RBAC.
type actEnv struct {
	cp     *controlplane.ControlPlane
	client kubernetes.Interface // admin
	netns  *netnstest.NS
	e      *e2e
	x      *exporter
	svc    *corev1.Service
	// kubeconfig is the ServiceAccount's, which ebb runs as, and flags
	// are the flags ebb was started with, to start it again.
	kubeconfig string
	flags      []string
}

// haveControllerManager reports whether `make test-deps` built
// kube-controller-manager.
func haveControllerManager() bool {
	_, err := os.Stat(controlplane.DefaultBinaries().ControllerManager)
	return err == nil
}

// startControlPlane starts a control plane of the test's own, stopped when
// the test ends; a missing binary skips the test (fails it under CI=true)
// as the harness's Shared does.
func startControlPlane(t *testing.T, opts controlplane.Config) *controlplane.ControlPlane {
	t.Helper()
	cp, err := controlplane.Start(context.Background(), opts)
	if controlplane.IsMissingBinary(err) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %v\n*** under CI=true this test fails.\n\n", t.Name(), err)
		t.Skipf("SKIPPED, no control plane: %v", err)
	}
	if err != nil {
		t.Fatalf("controlplane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("controlplane: %v", err)
		}
	})
	return cp
}

// startActivatorEnv starts everything but the "pods": shop/w has replicas
// replicas in its spec, and no ready endpoint.
func startActivatorEnv(t *testing.T, opts controlplane.Config, replicas int32) *actEnv {
	t.Helper()
	a := &actEnv{netns: netnstest.New(t)}
	a.cp = startControlPlane(t, opts)
	a.client = kubernetes.NewForConfigOrDie(a.cp.Admin)
	ctx := context.Background()

	// ebb runs as deploy/'s ServiceAccount, with deploy/'s RBAC.
	var objs []byte
	for _, f := range []string{"00-namespace.yaml", "01-serviceaccount.yaml", "02-rbac.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(append(objs, b...), "\n---\n"...)
	}
	decoded, err := controlplane.Decode(strings.NewReader(string(objs)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cp.Apply(ctx, decoded); err != nil {
		t.Fatal(err)
	}
	sa, err := a.cp.ServiceAccount(ctx, "ebb-system", "ebb")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "ebb.kubeconfig")
	if err := controlplane.WriteKubeconfig(sa, kubeconfig); err != nil {
		t.Fatal(err)
	}

	if err := a.cp.EnsureNamespace(ctx, actNS); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": actWorkload}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: actWorkload, Namespace: actNS, Annotations: map[string]string{kube.AnnotationHoldRequests: "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.invalid/app:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: actBackendPort}},
				}}},
			},
		},
	}
	if _, err := a.client.AppsV1().Deployments(actNS).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: actWorkload, Namespace: actNS},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if a.svc, err = a.client.CoreV1().Services(actNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	a.x = startExporter(t)
	prom := storetest.StartPrometheus(t, storetest.PromOptions{ScrapeTarget: a.x.addr, ScrapeInterval: liveScrape})
	host := a.netns.HostIP.String()
	// startLive's flags, with the activator and the cluster.
	a.kubeconfig = kubeconfig
	a.flags = []string{"--interval=" + liveInterval.String(), "--max-staleness=3s", "--min-uptime=0s", "--query-timeout=2s",
		"--kubeconfig=" + kubeconfig,
		"--activator-addr=" + net.JoinHostPort(host, "0"),
		"--activator-ip=" + host}
	a.e = startServe(t, prom.URL, nil, a.flags...)
	a.e.prom = prom
	a.x.waitScrapes(t, 2) // shop/w's series exists, flat: a rate of 0
	return a
}

// waitIdle opens StreamIsActive for shop/w and returns it once ebb has
// answered idle (the first message may be the true of a new trigger).
func (a *actEnv) waitIdle(t *testing.T) *activeStream {
	t.Helper()
	s := a.e.streamActive(t, liveRef)
	for active := s.next(t, 30*time.Second); active; active = s.next(t, 30*time.Second) {
	}
	return s
}

// slice returns ebb's EndpointSlice of Service w, nil when there is none.
func (a *actEnv) slice(t *testing.T) *discoveryv1.EndpointSlice {
	t.Helper()
	sl, err := a.client.DiscoveryV1().EndpointSlices(actNS).Get(context.Background(), actEbbSlice, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get endpointslice %s: %v", actEbbSlice, err)
	}
	return sl
}

// waitSlice polls the API server until ebb's slice exists (present) or
// not, for at most timeout, and returns it.
func (a *actEnv) waitSlice(t *testing.T, present bool, timeout time.Duration) *discoveryv1.EndpointSlice {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sl := a.slice(t)
		if (sl != nil) == present {
			return sl
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpointslice %s/%s present=%v after %v, want present=%v\nebb's log:\n%s", actNS, actEbbSlice, sl != nil, timeout, present, a.e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishReady publishes the test's own EndpointSlice for Service w, as
// the EndpointSlice controller would for a ready pod at addr.
func (a *actEnv) publishReady(t *testing.T, addr string) {
	t.Helper()
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: actOwnSlice, Namespace: actNS, Labels: map[string]string{
			discoveryv1.LabelServiceName: actWorkload,
			discoveryv1.LabelManagedBy:   actOwnManager,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{addr},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](actBackendPort)}},
	}
	if _, err := a.client.DiscoveryV1().EndpointSlices(actNS).Create(context.Background(), sl, metav1.CreateOptions{}); err != nil {
		t.Fatalf("publish the ready endpoint %s: %v", addr, err)
	}
}

// activatorURL is the activator's address as ebb's slice gives it: the
// activator's IP and the slice's port.
func activatorURL(t *testing.T, sl *discoveryv1.EndpointSlice) string {
	t.Helper()
	if len(sl.Endpoints) != 1 || len(sl.Endpoints[0].Addresses) != 1 || len(sl.Ports) != 1 || sl.Ports[0].Port == nil {
		t.Fatalf("ebb's slice: endpoints %v, ports %v; want one address and one port", sl.Endpoints, sl.Ports)
	}
	return "http://" + net.JoinHostPort(sl.Endpoints[0].Addresses[0], strconv.Itoa(int(*sl.Ports[0].Port)))
}

// echoBackend is the "pod": an HTTP server inside the network namespace
// that answers each request with its body and counts every body it got.
type echoBackend struct {
	mu     sync.Mutex
	bodies map[string]int
	first  time.Time // when the first request arrived
}

// startBackend serves the echo backend on addr inside the namespace until
// the test ends.
func (a *actEnv) startBackend(t *testing.T, addr string) *echoBackend {
	t.Helper()
	l, err := a.netns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, a.netns, err)
	}
	b := &echoBackend{bodies: make(map[string]int)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		if b.first.IsZero() {
			b.first = time.Now()
		}
		b.bodies[string(body)]++
		b.mu.Unlock()
		w.Header().Set("X-Backend", "netns")
		io.WriteString(w, "echo: ")
		w.Write(body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// counts returns a copy of the bodies the backend got, with their counts.
func (b *echoBackend) counts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.bodies))
	for k, v := range b.bodies {
		out[k] = v
	}
	return out
}

// metricValue returns the value of series (name{labels} exactly as
// /metrics prints it) on page, and whether it is there.
func metricValue(page, series string) (float64, bool) {
	for line := range strings.Lines(page) {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// waitMetric polls ebb's /metrics until series has the value want, for at
// most timeout.
func (a *actEnv) waitMetric(t *testing.T, series string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		page := a.e.metrics(t)
		got, ok := metricValue(page, series)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v) after %v, want %v\n%s", series, got, ok, timeout, want, grepLines(page, "ebb_activator"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wl is the label set of shop/w's activator series.
const wl = `namespace="shop",workload="w"`

// directClient talks to the activator only: no proxy from the environment,
// enough connections for every request at once.
func directClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}}
}

// replicas returns shop/w's spec.replicas.
func (a *actEnv) replicas(t *testing.T) int32 {
	t.Helper()
	d, err := a.client.AppsV1().Deployments(actNS).Get(context.Background(), actWorkload, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

// scaledObject creates KEDA's ScaledObject for shop/w (pollingInterval
// 1 s, cooldownPeriod 5 s, minReplicaCount 0) and waits until KEDA
// reports it Ready.
func (a *actEnv) scaledObject(t *testing.T, triggers ...any) {
	t.Helper()
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "ScaledObject",
		"metadata":   map[string]any{"name": actWorkload, "namespace": actNS},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": actWorkload},
			"pollingInterval": int64(1),
			"cooldownPeriod":  int64(5),
			"minReplicaCount": int64(0),
			"maxReplicaCount": int64(1),
			"triggers":        triggers,
		},
	}}
	ri, err := a.cp.Resource(so)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ri.Create(ctx, so, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := ri.Get(ctx, actWorkload, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == "True" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ScaledObject %s/%s not Ready after 60s: status %v\nKEDA's log:\n%s", actNS, actWorkload, got.Object["status"], a.cp.Log("keda-operator"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watcher is a typed client's Watch.
type watcher interface {
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// firstEvent watches the object name of c from now until the test ends
// and sends the resourceVersion of the first added or modified version
// that satisfies ok. In this control plane a resourceVersion is etcd's
// revision, one counter for every write, so two of them order the writes.
func (a *actEnv) firstEvent(t *testing.T, c watcher, name string, ok func(runtime.Object) bool) <-chan uint64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := c.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		t.Fatalf("watch %s: %v", name, err)
	}
	out := make(chan uint64, 1)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified || !ok(ev.Object) {
				continue
			}
			m, err := meta.Accessor(ev.Object)
			if err != nil {
				return
			}
			rv, err := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
			if err != nil {
				return
			}
			out <- rv
			return
		}
	}()
	return out
}
