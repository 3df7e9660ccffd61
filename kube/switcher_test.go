package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ebbscale/ebb/activator"
	"github.com/ebbscale/ebb/queries"
)

// The Switcher is the activator's view of the cluster, and the Watcher
// gives it each workload's hold timeout.
var (
	_ activator.Endpoints = (*Switcher)(nil)
	_                     = activator.Config{HoldTimeoutFor: (*Watcher)(nil).HoldTimeout}
)

const activatorPort = 8012

// holding is an opted-in Deployment whose pods carry labels.
func holding(ns, name string, labels map[string]string) *appsv1.Deployment {
	return withTemplate(deployment(ns, name, map[string]string{AnnotationHoldRequests: "true"}), labels)
}

func svcPort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: target}
}

func service(ns, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

func slicePortOf(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: new(name), Protocol: new(corev1.ProtocolTCP), Port: new(port)}
}

func endpoint(addr string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: new(ready)}}
}

// ownSlice is a slice of Service svc as the EndpointSlice controller
// writes it.
func ownSlice(ns, svc, name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			labelServiceName: svc,
			labelManagedBy:   "endpointslice-controller.k8s.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       ports,
	}
}

// wantSlice is the slice ebb must write for Service svc (uid-<svc>) with
// the activator at addrs and the Service's ports named ports.
func wantSlice(ns, svc string, addrs []string, ports ...string) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      svc + ".ebb",
			Labels: map[string]string{
				"kubernetes.io/service-name":             svc,
				"endpointslice.kubernetes.io/managed-by": "ebb.dev",
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: svc, UID: types.UID("uid-" + svc), Controller: new(true),
			}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{},
		Ports:       []discoveryv1.EndpointPort{},
	}
	for _, a := range addrs {
		sl.Endpoints = append(sl.Endpoints, endpoint(a, true))
	}
	for _, p := range ports {
		sl.Ports = append(sl.Ports, slicePortOf(p, activatorPort))
	}
	return sl
}

// switchRig is a Switcher and its Watcher on a fake clientset.
type switchRig struct {
	client   *fake.Clientset
	sw       *Switcher
	reg      *prometheus.Registry
	logs     *logRecorder
	barriers chan string
	n        atomic.Int64
}

// startSwitcher runs a Watcher and a Switcher on client until the test
// ends and returns once the Switcher has synced. cfg's activator settings
// are kept; the rest is filled in.
func startSwitcher(t *testing.T, client *fake.Clientset, cfg SwitcherConfig) *switchRig {
	t.Helper()
	r := &switchRig{client: client, reg: prometheus.NewRegistry(), logs: &logRecorder{}, barriers: make(chan string, 16)}
	// The fake clientset keeps no resourceVersions; ebb's writes get them
	// as from an API server.
	var version atomic.Int64
	version.Store(1000)
	for _, verb := range []string{"create", "update"} {
		client.PrependReactor(verb, "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if o, ok := a.(k8stesting.CreateAction); ok {
				if sl, ok := o.GetObject().(*discoveryv1.EndpointSlice); ok {
					sl.ResourceVersion = fmt.Sprint(version.Add(1))
				}
			}
			return false, nil, nil
		})
	}
	w, err := NewWatcher(WatcherConfig{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client, cfg.Workloads, cfg.Logger, cfg.Metrics = client, w, slog.New(r.logs), NewSwitchMetrics(r.reg)
	if cfg.ActivatorPort == 0 {
		cfg.ActivatorPort = activatorPort
	}
	if cfg.ActivatorService == "" && cfg.ActivatorIPs == nil {
		cfg.ActivatorIPs = []string{"10.0.0.7"}
	}
	cfg.QPS, cfg.Burst = 1000, 1000 // no test waits on the rate limit
	r.sw, err = NewSwitcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.sw.afterItem = func(it item) {
		if it.ns == "" && strings.HasPrefix(it.name, "barrier") {
			r.barriers <- it.name
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- w.Run(ctx) }()
	go func() { done <- r.sw.Run(ctx) }()
	select {
	case <-r.sw.Synced():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	return r
}

// barrier returns once the Switcher has done everything queued before it.
// Its one worker takes items in order.
func (r *switchRig) barrier(t *testing.T) {
	t.Helper()
	name := fmt.Sprintf("barrier-%d", r.n.Add(1))
	r.sw.queue.Add(item{kind: itemService, name: name})
	select {
	case got := <-r.barriers:
		if got != name {
			t.Fatalf("barrier: got %s, want %s", got, name)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("barrier %s not reached in 10s", name)
	}
}

// ebbSlice returns ebb's slice of Service ns/svc from the API, or nil.
func (r *switchRig) ebbSlice(t *testing.T, ns, svc string) *discoveryv1.EndpointSlice {
	t.Helper()
	sl, err := r.client.DiscoveryV1().EndpointSlices(ns).Get(context.Background(), svc+".ebb", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

// waitSlice waits until ebb's slice of ns/svc is exactly want, or absent
// for nil.
func (r *switchRig) waitSlice(t *testing.T, ns, svc string, want *discoveryv1.EndpointSlice) {
	t.Helper()
	var got *discoveryv1.EndpointSlice
	err := waitFor(func() bool {
		got = r.ebbSlice(t, ns, svc)
		if got == nil || want == nil {
			return (got == nil) == (want == nil)
		}
		got = got.DeepCopy()
		got.TypeMeta, got.ResourceVersion, got.ManagedFields = metav1.TypeMeta{}, "", nil
		return apiequality.Semantic.DeepEqual(got, want)
	})
	if err != nil {
		t.Fatalf("slice %s/%s.ebb:\n got  %s\n want %s", ns, svc, toJSON(got), toJSON(want))
	}
}

// waitFor is eventually that leaves the failure message to its caller.
func waitFor(cond func() bool) error {
	return wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (r *switchRig) publish(ns, name string, active bool) {
	st := idleState(key(ns, name), t0)
	if active {
		st = activeState(key(ns, name), t0)
	}
	r.sw.Publish(st)
}

func (r *switchRig) updateSlice(t *testing.T, sl *discoveryv1.EndpointSlice) {
	t.Helper()
	if _, err := r.client.DiscoveryV1().EndpointSlices(sl.Namespace).Update(context.Background(), sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// settled waits until value() reaches want, lets the Switcher finish what
// it has queued, and fails unless value() is then still want.
func (r *switchRig) settled(t *testing.T, what string, value func() float64, want float64) {
	t.Helper()
	if waitFor(func() bool { return value() >= want }) != nil {
		t.Errorf("%s: got %g, want %g", what, value(), want)
		return
	}
	r.barrier(t)
	if got := value(); got != want {
		t.Errorf("%s: got %g, want %g", what, got, want)
	}
}

// updateSynced updates a slice of a Service and returns once the Switcher
// has synced that Service from a cache that holds the update.
func (r *switchRig) updateSynced(t *testing.T, sl *discoveryv1.EndpointSlice) {
	t.Helper()
	r.updateSlice(t, sl)
	key := types.NamespacedName{Namespace: sl.Namespace, Name: sl.Labels[labelServiceName]}
	eventually(t, "the update in the cache", func() bool {
		for _, c := range r.sw.slicesOf(key) {
			if c.Name == sl.Name {
				return apiequality.Semantic.DeepEqual(c.Endpoints, slimSlice(sl).Endpoints)
			}
		}
		return false
	})
	r.sw.queue.Add(item{kind: itemService, ns: key.Namespace, name: key.Name})
	r.barrier(t)
}

func (r *switchRig) switches(to string) float64 {
	return counterValue(r.reg, "ebb_activator_switches_total", map[string]string{"to": to})
}

func (r *switchRig) sliceWrites(verb, result string) float64 {
	return counterValue(r.reg, "ebb_activator_slice_writes_total", map[string]string{"verb": verb, "result": result})
}

// counterValue returns the counter of name whose labels are exactly
// labels, or -1.
func counterValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

var (
	webLabels = map[string]string{"app": "web", "pod-template-hash": "5d4f"}
	webSel    = map[string]string{"app": "web"}
	http80    = svcPort("http", 80, intstr.FromInt32(8080))
)

func TestSwitcherProxyServeProxy(t *testing.T) {
	own := ownSlice("team-a", "web", "web-x7k2p", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}, endpoint("10.1.0.5", true))
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		own,
	)
	r := startSwitcher(t, client, SwitcherConfig{})

	r.barrier(t)
	if sl := r.ebbSlice(t, "team-a", "web"); sl != nil {
		t.Fatalf("before any decision: got slice %s, want none", toJSON(sl))
	}

	// ebb answers idle while the pod still runs: proxy mode at once.
	r.publish("team-a", "web", false)
	want := wantSlice("team-a", "web", []string{"10.0.0.7"}, "http")
	r.waitSlice(t, "team-a", "web", want)

	// KEDA scales to zero; then demand wakes the workload: still proxy
	// mode until a pod of its own is ready.
	own.Endpoints = nil
	r.updateSynced(t, own)
	r.publish("team-a", "web", true)
	r.barrier(t)
	if r.ebbSlice(t, "team-a", "web") == nil {
		t.Fatal("active without a ready pod: ebb's slice deleted, want kept")
	}
	own.Endpoints = []discoveryv1.Endpoint{endpoint("10.1.0.9", false)}
	r.updateSynced(t, own)
	if r.ebbSlice(t, "team-a", "web") == nil {
		t.Fatal("pod not ready yet: ebb's slice deleted, want kept")
	}

	// The pod turns ready: serve mode.
	own.Endpoints = []discoveryv1.Endpoint{endpoint("10.1.0.9", true)}
	r.updateSlice(t, own)
	r.waitSlice(t, "team-a", "web", nil)

	// Idle again: proxy mode again.
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", want)

	r.settled(t, "switches to proxy", func() float64 { return r.switches(toProxy) }, 2)
	r.settled(t, "switches to serve", func() float64 { return r.switches(toServe) }, 1)
	r.settled(t, "creates", func() float64 { return r.sliceWrites("create", resultOK) }, 2)
	r.settled(t, "deletes", func() float64 { return r.sliceWrites("delete", resultOK) }, 1)
	var modes []string
	for _, l := range r.logs.at(slog.LevelInfo) {
		if strings.HasPrefix(l.msg, "workload in") {
			modes = append(modes, l.msg+" "+l.attrs["workload"])
		}
	}
	wantModes := []string{
		"workload in proxy mode: the activator holds its requests team-a/web",
		"workload in serve mode: its Services reach its pods team-a/web",
		"workload in proxy mode: the activator holds its requests team-a/web",
	}
	if strings.Join(modes, "\n") != strings.Join(wantModes, "\n") {
		t.Errorf("mode logs:\n got  %q\n want %q", modes, wantModes)
	}
}

// leftover is a slice of ebb's from an earlier run.
func leftover(ns, svc string, addrs ...string) *discoveryv1.EndpointSlice {
	return wantSlice(ns, svc, addrs, "http")
}

func TestSwitcherReconcilesOnStart(t *testing.T) {
	apiLabels := map[string]string{"app": "api"}
	client := fake.NewClientset(
		// web is up: its leftover goes.
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		ownSlice("team-a", "web", "web-x7k2p", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}, endpoint("10.1.0.5", true)),
		leftover("team-a", "web", "10.0.0.7"),
		// api is at zero: its leftover stays, with today's activator.
		holding("team-a", "api", apiLabels),
		service("team-a", "api", apiLabels, http80),
		ownSlice("team-a", "api", "api-q8n4z", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}),
		leftover("team-a", "api", "10.0.0.3"),
		// old no longer holds requests; gone has no Service any more.
		withTemplate(deployment("team-a", "old", nil), map[string]string{"app": "old"}),
		service("team-a", "old", map[string]string{"app": "old"}, http80),
		leftover("team-a", "old", "10.0.0.7"),
		leftover("team-a", "gone", "10.0.0.7"),
		// batch went idle while ebb was down: its slice is missing.
		holding("team-b", "batch", map[string]string{"app": "batch"}),
		service("team-b", "batch", map[string]string{"app": "batch"}, http80),
	)
	r := startSwitcher(t, client, SwitcherConfig{})
	// The collector's first tick publishes every workload.
	r.publish("team-b", "batch", false)
	r.publish("team-a", "web", true)

	r.waitSlice(t, "team-a", "web", nil)
	r.waitSlice(t, "team-a", "old", nil)
	r.waitSlice(t, "team-a", "gone", nil)
	r.waitSlice(t, "team-a", "api", leftover("team-a", "api", "10.0.0.7"))
	r.waitSlice(t, "team-b", "batch", wantSlice("team-b", "batch", []string{"10.0.0.7"}, "http"))
	r.settled(t, "updates", func() float64 { return r.sliceWrites("update", resultOK) }, 1)
	r.settled(t, "deletes", func() float64 { return r.sliceWrites("delete", resultOK) }, 3)
	// web served at once; api and batch are in proxy mode.
	r.settled(t, "switches to serve", func() float64 { return r.switches(toServe) }, 1)
	r.settled(t, "switches to proxy", func() float64 { return r.switches(toProxy) }, 1)
}

func TestSwitcherNamedTargetPort(t *testing.T) {
	labels := map[string]string{"app": "llm"}
	client := fake.NewClientset(
		holding("team-a", "llm", labels),
		service("team-a", "llm", labels,
			svcPort("api", 8000, intstr.FromString("openai")),
			svcPort("metrics", 9090, intstr.FromInt32(9090)),
			corev1.ServicePort{Name: "grpc", Port: 50051, TargetPort: intstr.FromString("grpc"), AppProtocol: new("kubernetes.io/h2c")}),
		// The controller resolves the named ports per pod.
		ownSlice("team-a", "llm", "llm-a1b2c", []discoveryv1.EndpointPort{
			slicePortOf("api", 8080), slicePortOf("metrics", 9090), slicePortOf("grpc", 9000),
		}, endpoint("10.1.0.5", true), endpoint("10.1.0.6", false)),
	)
	r := startSwitcher(t, client, SwitcherConfig{})

	for _, c := range []struct {
		port int32
		want []string
	}{
		{8000, []string{"10.1.0.5:8080"}},
		{0, []string{"10.1.0.5:8080"}}, // no port named http: the first
		{9090, []string{"10.1.0.5:9090"}},
		{50051, []string{"10.1.0.5:9000"}},
		{8080, nil}, // a target port is not a Service port
	} {
		got, _ := r.sw.Ready("team-a", "llm", c.port)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("Ready(port %d): got %v, want %v", c.port, got, c.want)
		}
	}

	r.publish("team-a", "llm", false)
	want := wantSlice("team-a", "llm", []string{"10.0.0.7"}, "api", "metrics", "grpc")
	want.Ports[2].AppProtocol = new("kubernetes.io/h2c")
	r.waitSlice(t, "team-a", "llm", want)
}

func TestSwitcherReadyPrefersHTTP(t *testing.T) {
	labels := map[string]string{"app": "web"}
	client := fake.NewClientset(
		holding("team-a", "web", labels),
		service("team-a", "web", labels, svcPort("metrics", 9090, intstr.FromInt32(9090)), http80),
		ownSlice("team-a", "web", "web-1", []discoveryv1.EndpointPort{slicePortOf("metrics", 9090), slicePortOf("http", 8080)},
			endpoint("10.1.0.5", true)),
	)
	r := startSwitcher(t, client, SwitcherConfig{})
	if got, _ := r.sw.Ready("team-a", "web", 0); strings.Join(got, ",") != "10.1.0.5:8080" {
		t.Errorf("Ready(0): got %v, want the port named http: [10.1.0.5:8080]", got)
	}
}

func TestSwitcherServiceWithoutSelector(t *testing.T) {
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		// A Service whose endpoints someone writes by hand selects nothing.
		service("team-a", "external", nil, http80),
		ownSlice("team-a", "external", "external-1", []discoveryv1.EndpointPort{slicePortOf("http", 80)}, endpoint("192.0.2.10", true)),
	)
	r := startSwitcher(t, client, SwitcherConfig{})
	if wl, ok := r.sw.Resolve("team-a", "external", 80); ok {
		t.Errorf("Resolve(external): got %s, ok; want not held", wl)
	}
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
	// Touch the Service without a selector, so that it is synced after web.
	_, changed := r.sw.Ready("team-a", "external", 0)
	ext := service("team-a", "external", nil, http80)
	ext.Labels = map[string]string{"touched": "yes"}
	if _, err := client.CoreV1().Services("team-a").Update(context.Background(), ext, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("update of Service external not seen in 10s")
	}
	r.barrier(t)
	if sl := r.ebbSlice(t, "team-a", "external"); sl != nil {
		t.Fatalf("Service without a selector: got slice %s, want none", toJSON(sl))
	}
}

func TestSwitcherTwoServices(t *testing.T) {
	own := ownSlice("team-a", "web", "web-1", []discoveryv1.EndpointPort{slicePortOf("http", 8080)})
	ownGRPC := ownSlice("team-a", "web-grpc", "web-grpc-1", []discoveryv1.EndpointPort{slicePortOf("grpc", 9000)})
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		service("team-a", "web-grpc", map[string]string{"app": "web", "pod-template-hash": "5d4f"}, svcPort("grpc", 9000, intstr.FromInt32(9000))),
		service("team-a", "other", map[string]string{"app": "other"}, http80),
		own, ownGRPC,
	)
	r := startSwitcher(t, client, SwitcherConfig{})
	for _, name := range []string{"web", "web-grpc"} {
		if wl, ok := r.sw.Resolve("team-a", name, 0); !ok || wl != key("team-a", "web") {
			t.Errorf("Resolve(%s): got %s, %v; want team-a/web", name, wl, ok)
		}
	}
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
	r.waitSlice(t, "team-a", "web-grpc", wantSlice("team-a", "web-grpc", []string{"10.0.0.7"}, "grpc"))

	// Awake; one Service has a ready pod before the other.
	r.publish("team-a", "web", true)
	own.Endpoints = []discoveryv1.Endpoint{endpoint("10.1.0.5", true)}
	r.updateSlice(t, own)
	r.waitSlice(t, "team-a", "web", nil)
	if r.ebbSlice(t, "team-a", "web-grpc") == nil {
		t.Fatal("web-grpc without a ready endpoint: ebb's slice deleted, want kept")
	}
	r.settled(t, "switches to serve while web-grpc is held", func() float64 { return r.switches(toServe) }, 0)
	ownGRPC.Endpoints = []discoveryv1.Endpoint{endpoint("10.1.0.5", true)}
	r.updateSlice(t, ownGRPC)
	r.waitSlice(t, "team-a", "web-grpc", nil)
	r.settled(t, "switches to serve", func() float64 { return r.switches(toServe) }, 1)
	r.settled(t, "switches to proxy", func() float64 { return r.switches(toProxy) }, 1)
	if sl := r.ebbSlice(t, "team-a", "other"); sl != nil {
		t.Errorf("a Service of another workload: got slice %s, want none", toJSON(sl))
	}
}

func TestSwitcherActivatorService(t *testing.T) {
	ebbPorts := []discoveryv1.EndpointPort{slicePortOf("grpc", 9090), slicePortOf("activator", 8012)}
	ebbV4 := ownSlice("ebb-system", "ebb", "ebb-abcde", ebbPorts, endpoint("10.0.0.7", true), endpoint("10.0.0.8", false))
	ebbV6 := ownSlice("ebb-system", "ebb", "ebb-fghij", ebbPorts, endpoint("fd00::7", true))
	ebbV6.AddressType = discoveryv1.AddressTypeIPv6
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		ebbV4, ebbV6,
	)
	// Watching only team-a still reads ebb's own Service's slices.
	r := startSwitcher(t, client, SwitcherConfig{Namespaces: []string{"team-a"}, ActivatorService: "ebb-system/ebb"})
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))

	// A second ebb replica turns ready.
	ebbV4.Endpoints[1] = endpoint("10.0.0.8", true)
	r.updateSlice(t, ebbV4)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7", "10.0.0.8"}, "http"))
	r.settled(t, "updates", func() float64 { return r.sliceWrites("update", resultOK) }, 1)

	// An IPv6 Service gets the IPv6 addresses.
	v6 := service("team-a", "web6", webSel, http80)
	v6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	if _, err := client.CoreV1().Services("team-a").Create(context.Background(), v6, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := wantSlice("team-a", "web6", []string{"fd00::7"}, "http")
	want.AddressType = discoveryv1.AddressTypeIPv6
	r.waitSlice(t, "team-a", "web6", want)
}

func TestSwitcherStaticIPs(t *testing.T) {
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80))
	r := startSwitcher(t, client, SwitcherConfig{ActivatorIPs: []string{"10.250.0.1", " 10.0.0.9", "10.250.0.1"}, ActivatorPort: 18012})
	r.publish("team-a", "web", false)
	want := wantSlice("team-a", "web", []string{"10.0.0.9", "10.250.0.1"}, "http")
	want.Ports[0].Port = new(int32(18012))
	r.waitSlice(t, "team-a", "web", want)
}

func TestSwitcherCreateForbidden(t *testing.T) {
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80))
	var refuse atomic.Bool
	refuse.Store(true)
	client.PrependReactor("create", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		if !refuse.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "web.ebb",
			errors.New(`User "system:serviceaccount:ebb-system:ebb" cannot create resource "endpointslices" in API group "discovery.k8s.io" in the namespace "team-a"`))
	})
	r := startSwitcher(t, client, SwitcherConfig{})
	r.publish("team-a", "web", false)
	eventually(t, "a refused create", func() bool { return r.sliceWrites("create", resultDenied) >= 1 })

	warns := r.logs.at(slog.LevelWarn)
	if len(warns) != 1 {
		t.Fatalf("warnings: got %+v, want one", warns)
	}
	wantErr := `create endpointslices.discovery.k8s.io in namespace "team-a": endpointslices.discovery.k8s.io "web.ebb" is forbidden: ` +
		`User "system:serviceaccount:ebb-system:ebb" cannot create resource "endpointslices" in API group "discovery.k8s.io" in the namespace "team-a"; ` +
		`ebb's permissions are in deploy/02-rbac.yaml`
	if warns[0].msg != "Service not switched; retrying" || warns[0].attrs["service"] != "team-a/web" || warns[0].attrs["err"] != wantErr {
		t.Errorf("warning: got %q %v,\n want service team-a/web and err %q", warns[0].msg, warns[0].attrs, wantErr)
	}

	// Granted: the retry succeeds.
	refuse.Store(false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
}

func TestSwitcherWriteError(t *testing.T) {
	var ae *AccessError
	s := &Switcher{cfg: SwitcherConfig{Logger: slog.New(slog.DiscardHandler)}, warned: map[types.NamespacedName]string{}}
	web := types.NamespacedName{Namespace: "team-a", Name: "web"}
	err := s.wrote(web, "delete", apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "web.ebb", errors.New("no")))
	if !errors.As(err, &ae) || ae.Verb != "delete" || ae.Resource != "endpointslices.discovery.k8s.io" || ae.Namespace != "team-a" || !apierrors.IsForbidden(err) {
		t.Errorf("forbidden delete: got %v, want an *AccessError for delete endpointslices.discovery.k8s.io in team-a", err)
	}
	err = s.wrote(web, "update", apierrors.NewConflict(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "web.ebb", errors.New("stale")))
	if !apierrors.IsConflict(err) || !strings.HasPrefix(err.Error(), "update endpointslices.discovery.k8s.io web.ebb: ") {
		t.Errorf("conflict: got %v", err)
	}
}

func TestSwitcherReadyWakes(t *testing.T) {
	own := ownSlice("team-a", "web", "web-1", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}, endpoint("10.1.0.5", false))
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80), own)
	r := startSwitcher(t, client, SwitcherConfig{})

	addrs, changed := r.sw.Ready("team-a", "web", 80)
	if len(addrs) != 0 {
		t.Fatalf("before: got %v, want no ready address", addrs)
	}
	select {
	case <-changed:
		t.Fatal("channel closed before any change")
	default:
	}
	own.Endpoints = []discoveryv1.Endpoint{endpoint("10.1.0.5", true), endpoint("10.1.0.6", true)}
	r.updateSlice(t, own)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed within 10s of the endpoint turning ready")
	}
	if addrs, _ := r.sw.Ready("team-a", "web", 80); strings.Join(addrs, ",") != "10.1.0.5:8080,10.1.0.6:8080" {
		t.Fatalf("after: got %v, want [10.1.0.5:8080 10.1.0.6:8080]", addrs)
	}

	// ebb's own slice is never an endpoint of the Service.
	_, changed = r.sw.Ready("team-a", "web", 80)
	r.publish("team-a", "web", false)
	<-changed
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
	eventually(t, "ebb's slice in the cache", func() bool {
		return len(r.sw.slicesOf(types.NamespacedName{Namespace: "team-a", Name: "web"})) == 2
	})
	if addrs, _ := r.sw.Ready("team-a", "web", 0); strings.Join(addrs, ",") != "10.1.0.5:8080,10.1.0.6:8080" {
		t.Fatalf("with ebb's slice: got %v, want only the pods", addrs)
	}
	// An unknown Service: nothing, and a channel that a Service of that
	// name will close.
	addrs, changed = r.sw.Ready("team-a", "late", 0)
	if addrs != nil {
		t.Fatalf("unknown Service: got %v", addrs)
	}
	if _, err := client.CoreV1().Services("team-a").Create(context.Background(), service("team-a", "late", webSel, http80), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("channel of an unknown Service not closed when it was created")
	}
}

func TestSwitcherResolve(t *testing.T) {
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80, svcPort("admin", 8081, intstr.FromInt32(8081))),
		withTemplate(deployment("team-a", "plain", nil), map[string]string{"app": "plain"}),
		service("team-a", "plain", map[string]string{"app": "plain"}, http80),
	)
	r := startSwitcher(t, client, SwitcherConfig{})
	for _, c := range []struct {
		ns, svc string
		port    int32
		want    queries.WorkloadKey
		ok      bool
	}{
		{"team-a", "web", 0, key("team-a", "web"), true},
		{"team-a", "web", 80, key("team-a", "web"), true},
		{"team-a", "web", 8081, key("team-a", "web"), true},
		{"team-a", "web", 8080, queries.WorkloadKey{}, false}, // not a port of the Service
		{"team-a", "plain", 80, queries.WorkloadKey{}, false}, // does not hold requests
		{"team-b", "web", 80, queries.WorkloadKey{}, false},   // unknown
	} {
		if got, ok := r.sw.Resolve(c.ns, c.svc, c.port); got != c.want || ok != c.ok {
			t.Errorf("Resolve(%s, %s, %d): got %s, %v; want %s, %v", c.ns, c.svc, c.port, got, ok, c.want, c.ok)
		}
	}
	// Opting in later is seen.
	if _, err := client.AppsV1().Deployments("team-a").Update(context.Background(), holding("team-a", "plain", map[string]string{"app": "plain"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "plain opted in", func() bool {
		wl, ok := r.sw.Resolve("team-a", "plain", 80)
		return ok && wl == key("team-a", "plain")
	})
}

func TestNewSwitcherConfig(t *testing.T) {
	f := func(cfg SwitcherConfig, want string) {
		t.Helper()
		if cfg.Client == nil {
			cfg.Client = fake.NewClientset()
		}
		if cfg.Workloads == nil {
			w, err := NewWatcher(WatcherConfig{Client: cfg.Client})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Workloads = w
		}
		_, err := NewSwitcher(cfg)
		if got := errorText(err); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	ips := []string{"10.0.0.7"}
	f(SwitcherConfig{ActivatorIPs: ips}, "switcher: activator port = 0, must be in [1, 65535]")
	f(SwitcherConfig{ActivatorPort: 70000, ActivatorIPs: ips}, "switcher: activator port = 70000, must be in [1, 65535]")
	f(SwitcherConfig{ActivatorPort: 8012}, "switcher: neither an activator service nor activator IPs")
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: ips, ActivatorService: "ebb-system/ebb"}, "switcher: both an activator service and activator IPs; set one")
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorService: "ebb"}, `switcher: activator service "ebb", want namespace/name`)
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: []string{"ebb.local"}}, `switcher: activator IP "ebb.local": want a routable IPv4 or IPv6 address`)
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: []string{"127.0.0.1"}}, `switcher: activator IP "127.0.0.1": want a routable IPv4 or IPv6 address`)
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: ips, QPS: -1}, "switcher: qps = -1, must be positive")
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: ips}, "")

	// One Switcher per Watcher, registered before it runs.
	w, err := NewWatcher(WatcherConfig{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: ips, Workloads: w}, "")
	w.running.Store(true)
	f(SwitcherConfig{ActivatorPort: 8012, ActivatorIPs: ips, Workloads: w}, "switcher: watcher: OnHoldChange after Run")
}

func TestSwitcherNotServingIsNotReady(t *testing.T) {
	// publishNotReadyAddresses: the controller marks a starting pod ready,
	// and only serving says it is not; a terminating pod is not ready
	// either.
	starting := endpoint("10.1.0.5", true)
	starting.Conditions.Serving = new(false)
	leaving := endpoint("10.1.0.6", false)
	leaving.Conditions.Serving, leaving.Conditions.Terminating = new(true), new(true)
	own := ownSlice("team-a", "web", "web-1", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}, starting, leaving)
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80), own)
	r := startSwitcher(t, client, SwitcherConfig{})

	if addrs, _ := r.sw.Ready("team-a", "web", 0); addrs != nil {
		t.Errorf("Ready: got %v, want none", addrs)
	}
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
	r.publish("team-a", "web", true)
	r.barrier(t)
	if r.ebbSlice(t, "team-a", "web") == nil {
		t.Fatal("active with a pod that is not serving: ebb's slice deleted, want kept")
	}
	starting.Conditions.Serving = new(true)
	own.Endpoints = []discoveryv1.Endpoint{starting, leaving}
	r.updateSlice(t, own)
	r.waitSlice(t, "team-a", "web", nil)
	if addrs, _ := r.sw.Ready("team-a", "web", 0); strings.Join(addrs, ",") != "10.1.0.5:8080" {
		t.Errorf("Ready once serving: got %v, want [10.1.0.5:8080]", addrs)
	}
}

func TestSwitcherOptOutWhileHeld(t *testing.T) {
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80))
	r := startSwitcher(t, client, SwitcherConfig{})
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))

	// The team turns holding off while the workload is at zero.
	if _, err := client.AppsV1().Deployments("team-a").Update(context.Background(), withTemplate(deployment("team-a", "web", nil), webLabels), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitSlice(t, "team-a", "web", nil)
	r.settled(t, "switches to serve", func() float64 { return r.switches(toServe) }, 1)
	if _, ok := r.sw.Resolve("team-a", "web", 0); ok {
		t.Error("Resolve after opting out: ok = true")
	}
}

func TestSwitcherSelectorChange(t *testing.T) {
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80))
	r := startSwitcher(t, client, SwitcherConfig{})
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
	if wl, ok := r.sw.Resolve("team-a", "web", 80); !ok || wl != key("team-a", "web") {
		t.Fatalf("Resolve: got %s, %v; want team-a/web", wl, ok)
	}

	// The Service now selects other pods: it is no longer web's.
	if _, err := client.CoreV1().Services("team-a").Update(context.Background(), service("team-a", "web", map[string]string{"app": "web-v2"}, http80), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitSlice(t, "team-a", "web", nil)
	if wl, ok := r.sw.Resolve("team-a", "web", 80); ok {
		t.Errorf("Resolve after the selector changed: got %s, ok; want not held", wl)
	}
	// And back: web is still idle, so proxy mode again.
	if _, err := client.CoreV1().Services("team-a").Update(context.Background(), service("team-a", "web", webSel, http80), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
}

// benchSwitcher returns a Switcher whose caches hold n opted-in workloads,
// each with a Service and a slice with one ready pod, filled without
// informers.
func benchSwitcher(b *testing.B, n int) *Switcher {
	b.Helper()
	w, err := NewWatcher(WatcherConfig{Client: fake.NewClientset()})
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSwitcher(SwitcherConfig{Client: fake.NewClientset(), Workloads: w, ActivatorPort: activatorPort, ActivatorIPs: []string{"10.0.0.7"}})
	if err != nil {
		b.Fatal(err)
	}
	c := s.stores[metav1.NamespaceAll]
	for i := range n {
		ns, name := fmt.Sprintf("team-%d", i%100), fmt.Sprintf("web-%d", i)
		labels := map[string]string{"app": name}
		s.setHold(key(ns, name), Hold{Labels: labels}, true)
		if err := c.services.Add(slimEndpoints0(service(ns, name, labels, http80))); err != nil {
			b.Fatal(err)
		}
		sl := ownSlice(ns, name, name+"-1", []discoveryv1.EndpointPort{slicePortOf("http", 8080)},
			endpoint(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), true))
		if err := c.slices.Add(slimSlice(sl)); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func slimEndpoints0(obj any) any {
	o, _ := slimEndpoints(obj)
	return o
}

var benchSink int

func BenchmarkSwitcherResolve(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchSwitcher(b, n)
			ns, name := fmt.Sprintf("team-%d", (n-1)%100), fmt.Sprintf("web-%d", n-1)
			b.ReportAllocs()
			for b.Loop() {
				if wl, ok := s.Resolve(ns, name, 80); ok {
					benchSink += len(wl.Name)
				}
			}
		})
	}
}

func BenchmarkSwitcherReady(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchSwitcher(b, n)
			ns, name := fmt.Sprintf("team-%d", (n-1)%100), fmt.Sprintf("web-%d", n-1)
			b.ReportAllocs()
			for b.Loop() {
				addrs, _ := s.Ready(ns, name, 0)
				benchSink += len(addrs)
			}
		})
	}
}

func TestSwitcherRestoresDeletedSlice(t *testing.T) {
	client := fake.NewClientset(holding("team-a", "web", webLabels), service("team-a", "web", webSel, http80))
	r := startSwitcher(t, client, SwitcherConfig{})
	r.publish("team-a", "web", false)
	want := wantSlice("team-a", "web", []string{"10.0.0.7"}, "http")
	r.waitSlice(t, "team-a", "web", want)
	// Someone deletes ebb's slice, at once or after the cache has it.
	for _, wait := range []bool{false, true} {
		if wait {
			eventually(t, "ebb's slice in the cache", func() bool { return len(r.sw.slicesOf(types.NamespacedName{Namespace: "team-a", Name: "web"})) == 1 })
		}
		if err := client.DiscoveryV1().EndpointSlices("team-a").Delete(context.Background(), "web.ebb", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		r.waitSlice(t, "team-a", "web", want)
	}
	r.settled(t, "creates", func() float64 { return r.sliceWrites("create", resultOK) }, 3)
}

func TestSwitcherListForbidden(t *testing.T) {
	f := func(resource, group, wantResource string, namespaces []string, wantNS string) {
		t.Helper()
		client := fake.NewClientset()
		client.PrependReactor("list", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: resource}, "",
				fmt.Errorf(`User "system:serviceaccount:ebb-system:ebb" cannot list resource %q in API group %q`, resource, group))
		})
		w, err := NewWatcher(WatcherConfig{Client: client, Namespaces: namespaces})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSwitcher(SwitcherConfig{Client: client, Workloads: w, Namespaces: namespaces, ActivatorPort: activatorPort, ActivatorIPs: []string{"10.0.0.7"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = w.Run(ctx) }()
		err = s.Run(ctx)
		var ae *AccessError
		if !errors.As(err, &ae) || ae.Verb != "list" || ae.Resource != wantResource || ae.Namespace != wantNS || !apierrors.IsForbidden(err) {
			t.Fatalf("got %v, want an *AccessError for list %s in %q", err, wantResource, wantNS)
		}
		if err := s.Run(ctx); err == nil || err.Error() != "switcher: already running" {
			t.Errorf("second Run: got %v, want already running", err)
		}
	}
	f("services", "", "services", nil, "")
	f("endpointslices", "discovery.k8s.io", "endpointslices.discovery.k8s.io", []string{"team-a"}, "team-a")
}

// TestSwitcherNamespace: a bare Service name ("Host: web") is placed in the
// namespace of the one Service of that name in proxy mode; none held, or
// held in two namespaces, places nothing.
func TestSwitcherNamespace(t *testing.T) {
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		holding("team-b", "web", webLabels),
		service("team-b", "web", webSel, http80),
	)
	r := startSwitcher(t, client, SwitcherConfig{})
	if ns, ok := r.sw.Namespace("web"); ok {
		t.Errorf("nothing held: Namespace(web) = %q, want none", ns)
	}
	r.publish("team-a", "web", false)
	r.waitSlice(t, "team-a", "web", wantSlice("team-a", "web", []string{"10.0.0.7"}, "http"))
	if ns, ok := r.sw.Namespace("web"); !ok || ns != "team-a" {
		t.Errorf("team-a/web held: Namespace(web) = %q, %v; want team-a", ns, ok)
	}
	if ns, ok := r.sw.Namespace("api"); ok {
		t.Errorf("Namespace(api) = %q, want none", ns)
	}
	r.publish("team-b", "web", false)
	r.waitSlice(t, "team-b", "web", wantSlice("team-b", "web", []string{"10.0.0.7"}, "http"))
	if ns, ok := r.sw.Namespace("web"); ok {
		t.Errorf("web held in two namespaces: Namespace(web) = %q, want none (ambiguous)", ns)
	}
}

// TestSwitcherWarnsOncePerRefusal: a refusal is logged at warn once, and
// again only when another verb is refused or the Service switched between.
func TestSwitcherWarnsOncePerRefusal(t *testing.T) {
	var log bytes.Buffer
	s := &Switcher{cfg: SwitcherConfig{Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))}, warned: map[types.NamespacedName]string{}}
	web := types.NamespacedName{Namespace: "team-a", Name: "web"}
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "web.ebb", errors.New("no"))
	warns := func() int { return strings.Count(log.String(), "level=WARN") }
	for i, step := range []struct {
		verb string
		err  error
		want int
	}{
		{"create", forbidden, 1},
		{"create", forbidden, 1}, // the same refusal again: debug
		{"get", forbidden, 2},    // another verb refused: news
		{"get", forbidden, 2},
		{"update", nil, 2}, // switched: the next refusal is news again
		{"get", forbidden, 3},
	} {
		_ = s.wrote(web, step.verb, step.err)
		if got := warns(); got != step.want {
			t.Fatalf("step %d (%s, %v): %d warnings, want %d\n%s", i, step.verb, step.err, got, step.want, &log)
		}
	}
	if !strings.Contains(log.String(), `cannot get`) && !strings.Contains(log.String(), `get endpointslices.discovery.k8s.io`) {
		t.Errorf("no warning names the refused get:\n%s", &log)
	}
}

// TestSwitcherIdleReady: ebb may answer idle for a workload that holds
// requests only once ebb's slice of each of its Services is written, and
// Switched says when. Workloads that hold nothing are never held back.
func TestSwitcherIdleReady(t *testing.T) {
	own := ownSlice("team-a", "web", "web-x7k2p", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}, endpoint("10.1.0.5", true))
	client := fake.NewClientset(
		holding("team-a", "web", webLabels),
		service("team-a", "web", webSel, http80),
		service("team-a", "web-admin", webSel, http80), // a second Service of web
		own,
		ownSlice("team-a", "web-admin", "web-admin-p4c9w", []discoveryv1.EndpointPort{slicePortOf("http", 8080)}, endpoint("10.1.0.5", true)),
		holding("team-a", "lonely", map[string]string{"app": "lonely"}), // no Service selects it
	)
	switched := make(chan queries.WorkloadKey, 4)
	r := startSwitcher(t, client, SwitcherConfig{Switched: func(w queries.WorkloadKey) { switched <- w }})
	web := queries.WorkloadKey{Namespace: "team-a", Name: "web"}
	r.barrier(t)
	for _, c := range []struct {
		w    queries.WorkloadKey
		want bool
	}{
		{web, false}, // holds requests, no slice yet
		{queries.WorkloadKey{Namespace: "team-a", Name: "lonely"}, true},
		{queries.WorkloadKey{Namespace: "team-a", Name: "no-hold"}, true},
	} {
		if got := r.sw.IdleReady(c.w); got != c.want {
			t.Errorf("before any decision: IdleReady(%s) = %v, want %v", c.w, got, c.want)
		}
	}

	r.publish("team-a", "web", false)
	for range 2 { // one call per Service
		select {
		case got := <-switched:
			if got != web {
				t.Errorf("Switched(%s), want %s", got, web)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Switched not called within 10s of the idle decision")
		}
	}
	if !r.sw.IdleReady(web) {
		t.Error("both slices written: IdleReady(web) = false, want true")
	}

	// Awake with a ready pod: serve mode, the slices go, and the next idle
	// answer has to wait for them again.
	r.publish("team-a", "web", true)
	r.waitSlice(t, "team-a", "web", nil)
	r.waitSlice(t, "team-a", "web-admin", nil)
	if r.sw.IdleReady(web) {
		t.Error("serve mode: IdleReady(web) = true, want false")
	}
}

// TestSwitcherIdleReadyBeforeSync: until the Switcher has read the cluster
// it cannot tell which workloads hold requests: nothing may be answered idle.
func TestSwitcherIdleReadyBeforeSync(t *testing.T) {
	w, err := NewWatcher(WatcherConfig{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := NewSwitcher(SwitcherConfig{Client: fake.NewClientset(), Workloads: w, ActivatorPort: 8012, ActivatorIPs: []string{"10.0.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	if sw.IdleReady(queries.WorkloadKey{Namespace: "team-a", Name: "no-hold"}) {
		t.Error("before Run: IdleReady = true, want false")
	}
}

// BenchmarkSwitcherIdleReady is the collector's question for every idle
// workload every tick when the activator is on: for a workload that holds
// nothing (one map lookup), and for one that does, in a namespace of
// n/100 Services that all hold requests (one pass over them).
func BenchmarkSwitcherIdleReady(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		s := benchSwitcher(b, n)
		close(s.ready) // as if synced: the caches are filled by hand
		ns := fmt.Sprintf("team-%d", (n-1)%100)
		for _, c := range []struct {
			name string
			w    queries.WorkloadKey
		}{
			{"holds-nothing", queries.WorkloadKey{Namespace: ns, Name: "batch"}},
			{"holds", queries.WorkloadKey{Namespace: ns, Name: fmt.Sprintf("web-%d", n-1)}},
		} {
			b.Run(fmt.Sprintf("%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if s.IdleReady(c.w) {
						benchSink++
					}
				}
			})
		}
	}
}
