//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ebbscale/ebb/kube/controlplane"
)

// TestActivatorE2ESwitching switches Service shop/w between serve mode and
// proxy mode on a real API server: `ebb serve` runs as deploy/'s
// ServiceAccount (deploy/02-rbac.yaml), decides on a real Prometheus, and
// writes its EndpointSlice, which the API server validates. With
// kube-controller-manager, the garbage collector deletes ebb's slice with
// its Service.
func TestActivatorE2ESwitching(t *testing.T) {
	cm := haveControllerManager()
	a := startActivatorEnv(t, controlplane.Config{ControllerManager: cm}, 1)
	stream := a.waitIdle(t)

	// Idle, its pod still up: proxy mode, before KEDA removes the pod.
	sl := a.waitSlice(t, true, 30*time.Second)
	wantLabels := map[string]string{
		discoveryv1.LabelServiceName: actWorkload,
		discoveryv1.LabelManagedBy:   "ebb.dev",
	}
	if fmt.Sprint(sl.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels: got %v, want %v", sl.Labels, wantLabels)
	}
	wantOwner := metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: actWorkload, UID: a.svc.UID, Controller: new(true)}
	if len(sl.OwnerReferences) != 1 || !ownerEqual(sl.OwnerReferences[0], wantOwner) {
		t.Errorf("owner references: got %+v, want [%+v]", sl.OwnerReferences, wantOwner)
	}
	if sl.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("address type %s, want IPv4", sl.AddressType)
	}
	if len(sl.Endpoints) != 1 || fmt.Sprint(sl.Endpoints[0].Addresses) != "["+a.netns.HostIP.String()+"]" ||
		sl.Endpoints[0].Conditions.Ready == nil || !*sl.Endpoints[0].Conditions.Ready {
		t.Errorf("endpoints: got %+v, want one ready endpoint at the activator, %s", sl.Endpoints, a.netns.HostIP)
	}
	if len(sl.Ports) != 1 || sl.Ports[0].Name == nil || *sl.Ports[0].Name != "http" ||
		sl.Ports[0].Protocol == nil || *sl.Ports[0].Protocol != corev1.ProtocolTCP || sl.Ports[0].Port == nil {
		t.Fatalf("ports: got %+v, want one TCP port named http (the Service's port name)", sl.Ports)
	}
	port := *sl.Ports[0].Port
	// The activator answers on the slice's address and port: shop/w has
	// no ready endpoint, so a request with the wrong host is the one that
	// is not held.
	req, _ := http.NewRequest(http.MethodGet, activatorURL(t, sl), nil)
	req.Host = "nosuch.shop.svc.cluster.local"
	resp, err := directClient(1).Do(req)
	if err != nil {
		t.Fatalf("the activator at the slice's address %s: %v", req.URL.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host through the slice's address: HTTP %d, want 404", resp.StatusCode)
	}
	a.e.waitMetrics(t, `ebb_activator_slice_writes_total{result="ok",verb="create"} 1`, `ebb_activator_switches_total{to="proxy"} 1`)
	t.Logf("proxy mode: slice %s/%s at %s:%d", actNS, actEbbSlice, a.netns.HostIP, port)

	// Traffic: ebb answers active; with no ready endpoint of its own the
	// workload stays in proxy mode.
	a.x.setTraffic(10)
	if !stream.next(t, 30*time.Second) {
		t.Fatal("StreamIsActive sent false again instead of waking")
	}
	// Nothing here waits for the switcher to have handled the decision, so
	// this catches a switcher that deletes on the decision alone only when
	// it is fast; kube's fake-clientset tests check it exactly.
	if a.slice(t) == nil {
		t.Error("active without a ready endpoint: ebb's slice is gone, want it kept")
	}
	// A ready endpoint of its own: serve mode, ebb's slice deleted.
	a.publishReady(t, a.netns.PeerIP.String())
	a.waitSlice(t, false, 30*time.Second)
	a.e.waitMetrics(t, `ebb_activator_slice_writes_total{result="ok",verb="delete"} 1`, `ebb_activator_switches_total{to="serve"} 1`)

	// Idle again: the slice comes back, with the same content.
	a.x.setTraffic(0)
	if stream.next(t, 60*time.Second) {
		t.Fatal("StreamIsActive sent true again instead of going idle")
	}
	again := a.waitSlice(t, true, 30*time.Second)
	if again.UID == sl.UID {
		t.Errorf("the slice after serve mode has the first one's UID %s, want a new one", sl.UID)
	}
	if fmt.Sprint(again.Labels, again.Endpoints[0].Addresses, *again.Ports[0].Port) != fmt.Sprint(sl.Labels, sl.Endpoints[0].Addresses, port) {
		t.Errorf("the slice after serve mode differs: got %v %v %d, want %v %v %d",
			again.Labels, again.Endpoints[0].Addresses, *again.Ports[0].Port, sl.Labels, sl.Endpoints[0].Addresses, port)
	}

	t.Run("garbage collection", func(t *testing.T) {
		if !cm {
			missingControllerManager(t)
		}
		// ebb stops first: whatever deletes its slice now is the garbage
		// collector, following the owner reference.
		a.e.stop(t)
		if a.slice(t) == nil {
			t.Fatal("ebb's slice is gone once ebb stopped: nothing left for the garbage collector to show")
		}
		bg := metav1.DeletePropagationBackground
		deleted := time.Now()
		if err := a.client.CoreV1().Services(actNS).Delete(context.Background(), actWorkload, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
			t.Fatal(err)
		}
		a.waitSlice(t, false, 60*time.Second)
		t.Logf("the garbage collector deleted ebb's slice %.0f ms after its Service", ms(time.Since(deleted)))
	})
}

// missingControllerManager skips a test that needs kube-controller-manager
// when it has not been built, or fails it under CI=true.
func missingControllerManager(t *testing.T) {
	t.Helper()
	msg := fmt.Sprintf("no %s: run `make test-deps`", controlplane.DefaultBinaries().ControllerManager)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED, " + msg)
}

func ownerEqual(got, want metav1.OwnerReference) bool {
	return got.APIVersion == want.APIVersion && got.Kind == want.Kind && got.Name == want.Name && got.UID == want.UID &&
		got.Controller != nil && *got.Controller == *want.Controller
}

// actRequests is how many requests TestActivatorE2EHolds500 sends while
// shop/w is at zero.
const actRequests = 500

// actWakeAfter is when the "pod" becomes ready, after the first request.
const actWakeAfter = 3 * time.Second

// TestActivatorE2EHolds500 sends 500 concurrent requests with distinct
// bodies through the activator to shop/w at zero. ebb's StreamIsActive
// pushes true from the held requests alone: the store never sees any
// traffic (the exporter's counter stays flat, and Prometheus scrapes only
// the exporter). 3 s after the first request the backend starts in the
// network namespace and its ready endpoint is published; every request
// gets its own answer, none is lost and none reaches the backend twice.
func TestActivatorE2EHolds500(t *testing.T) {
	a := startActivatorEnv(t, controlplane.Config{}, 0)
	stream := a.waitIdle(t)
	sl := a.waitSlice(t, true, 30*time.Second)
	url := activatorURL(t, sl)

	nonce := make([]byte, 6)
	rand.Read(nonce)
	bodies := make([]string, actRequests)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("request %03d of run %x: %s", i, nonce, bytes.Repeat([]byte{'a' + byte(i%26)}, 1+i%97))
	}
	type result struct {
		code   int
		body   string
		header string
		err    error
	}
	results := make([]result, actRequests)
	client := directClient(actRequests)
	var wg sync.WaitGroup
	// Request 0 goes first, so that the push can be timed from the moment
	// the first request was written; the other 499 follow at once.
	firstWritten := make(chan time.Time, 1)
	send := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if i == 0 {
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { firstWritten <- time.Now() },
			})
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/echo", bytes.NewReader([]byte(bodies[i])))
		if err != nil {
			results[i].err = err
			return
		}
		req.Host = actHost
		resp, err := client.Do(req)
		if err != nil {
			results[i].err = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		results[i] = result{code: resp.StatusCode, body: string(b), header: resp.Header.Get("X-Backend"), err: err}
	}
	start := time.Now()
	wg.Go(func() { send(0) })
	var written time.Time
	select {
	case written = <-firstWritten:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request was not written to the activator within 10s")
	}
	for i := 1; i < actRequests; i++ {
		wg.Go(func() { send(i) })
	}

	// Demand without the store: the push comes from the held requests.
	if !stream.next(t, 10*time.Second) {
		t.Fatal("StreamIsActive pushed false while requests are held")
	}
	pushedAt := time.Now()
	pushed := pushedAt.Sub(written)
	if !a.e.isActive(t, liveRef) {
		t.Error("IsActive false while requests are held")
	}
	// GetMetrics of the requests trigger: at least one replica's worth.
	target, _ := strconv.ParseFloat(liveRef.ScalerMetadata["target"], 64)
	if v := a.e.value(t, liveRef); v < target {
		t.Errorf("GetMetrics while requests are held: %v, want at least the target, %v (one replica)", v, target)
	}
	if g := a.x.grewAt(); !g.IsZero() {
		t.Fatalf("the exporter's counter grew at %v: the store could have seen traffic", g)
	}
	if v := promQuery(t, a.e.prom, `sum(rate(istio_requests_total{destination_workload_namespace="shop",destination_workload="w"}[10s]))`); len(v) != 1 || v[0] != 0 {
		t.Errorf("the store's rate of shop/w when ebb pushed true: %v, want [0]", v)
	}
	a.waitMetric(t, "ebb_activator_pending{"+wl+"}", actRequests, 60*time.Second)
	allHeld := time.Since(start)
	page := a.e.metrics(t)
	if v, _ := metricValue(page, "ebb_activator_held_total{"+wl+"}"); v != actRequests {
		t.Errorf("ebb_activator_held_total = %v, want %d", v, actRequests)
	}
	if v, _ := metricValue(page, "ebb_activator_cold_starts_total{"+wl+"}"); v != 1 {
		t.Errorf("ebb_activator_cold_starts_total = %v, want 1", v)
	}

	// The "pod" becomes ready 3 s after the first request: a real wait,
	// the scenario's, not one for ebb's logic.
	time.Sleep(time.Until(start.Add(actWakeAfter)))
	backend := a.startBackend(t, net.JoinHostPort(a.netns.PeerIP.String(), strconv.Itoa(actBackendPort)))
	ready := time.Now()
	a.publishReady(t, a.netns.PeerIP.String())
	wg.Wait()
	done := time.Since(start)

	var ok, wrong, failed int
	for i, r := range results {
		want := "echo: " + bodies[i]
		switch {
		case r.err != nil:
			failed++
			if failed <= 5 {
				t.Errorf("request %d: %v", i, r.err)
			}
		case r.code != http.StatusOK || r.body != want || r.header != "netns":
			wrong++
			if wrong <= 5 {
				t.Errorf("request %d: HTTP %d, X-Backend %q, body %.60q; want 200 from the backend with %.60q", i, r.code, r.header, r.body, want)
			}
		default:
			ok++
		}
	}
	got := backend.counts()
	var lost, twice int
	for _, b := range bodies {
		switch n := got[b]; {
		case n == 0:
			lost++
		case n > 1:
			twice++
			t.Errorf("the backend got %.40q %d times, want once", b, n)
		}
	}
	if len(got) != actRequests || lost != 0 || twice != 0 || ok != actRequests {
		t.Errorf("answered correctly %d, wrong %d, failed %d; at the backend: %d distinct bodies, %d lost, %d twice; want %d correct, 0 lost, 0 twice",
			ok, wrong, failed, len(got), lost, twice, actRequests)
	}

	// Active with a ready endpoint of its own: serve mode.
	a.waitSlice(t, false, 30*time.Second)
	a.waitMetric(t, "ebb_activator_pending{"+wl+"}", 0, 10*time.Second)
	page = a.e.metrics(t)
	if v, _ := metricValue(page, `ebb_activator_forwarded_total{held="true",`+wl+"}"); v != actRequests {
		t.Errorf(`ebb_activator_forwarded_total{held="true"} = %v, want %d`, v, actRequests)
	}
	if rej := grepLines(grepLines(page, "ebb_activator_rejected_total{"), `workload="w"`); rej != "" {
		for line := range bytes.Lines([]byte(rej)) {
			if !bytes.HasSuffix(bytes.TrimSpace(line), []byte(" 0")) {
				t.Errorf("rejected: %s", line)
			}
		}
	}
	wakeSum, _ := metricValue(page, "ebb_activator_wake_latency_seconds_sum{"+wl+"}")
	wakeCount, _ := metricValue(page, "ebb_activator_wake_latency_seconds_count{"+wl+"}")
	if wakeCount != 1 {
		t.Errorf("ebb_activator_wake_latency_seconds_count = %v, want 1 (one wake)", wakeCount)
	}
	// The activator's first hold, from its log line (millisecond times).
	firstAtBackend := backend.firstAt()
	firstHeld := logTime(t, a.e.stderr.String(), `msg="holding requests" workload=shop/w`)
	t.Logf("%d requests held and delivered, 0 lost, 0 twice (the store's rate of shop/w: 0 throughout). "+
		"StreamIsActive pushed true %.1f ms after the first request was written, %.1f ms after the activator first held one (its log); all %d held %.0f ms after the first was sent; "+
		"the backend started %.2f s after the first was sent; wake latency (activator metric, first held request -> first byte forwarded) %.3f s; "+
		"the endpoint published -> the first request at the backend %.1f ms; all %d answered %.2f s after the first was sent",
		ok, ms(pushed), ms(pushedAt.Sub(firstHeld)), actRequests, ms(allHeld),
		ready.Sub(start).Seconds(), wakeSum, ms(firstAtBackend.Sub(ready)), actRequests, done.Seconds())
}

// logTime returns the time of ebb's first text log line that contains
// sub.
func logTime(t *testing.T, log, sub string) time.Time {
	t.Helper()
	for line := range strings.Lines(log) {
		if !strings.Contains(line, sub) {
			continue
		}
		v, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		return at
	}
	t.Fatalf("no log line with %s in:\n%s", sub, log)
	return time.Time{}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// firstAt returns when the backend got its first request.
func (b *echoBackend) firstAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

// TestActivatorE2EKEDAWakes runs the real KEDA operator with an
// external-push ScaledObject at `ebb serve`. shop/w has traffic, then none:
// ebb answers idle and its slice puts the activator in front of Service w
// before KEDA, after its cooldownPeriod, scales w to zero (checked in the
// order the API server committed the two writes). Then one request is
// held, and KEDA scales w 0 -> 1 from the push alone, while the store's
// rate of shop/w is 0. The "pod" then becomes ready in the network
// namespace and the request is delivered.
func TestActivatorE2EKEDAWakes(t *testing.T) {
	a := startActivatorEnv(t, controlplane.Config{KEDA: true}, 1)
	md := map[string]any{"scalerAddress": a.e.conn.Target()}
	for k, v := range liveRef.ScalerMetadata {
		if k != "scalerAddress" {
			md[k] = v
		}
	}
	a.x.setTraffic(10)
	a.e.waitValue(t, liveRef, "> 0", func(v float64) bool { return v > 0 }, 30*time.Second)
	sliceRV := a.firstEvent(t, a.client.DiscoveryV1().EndpointSlices(actNS), actEbbSlice, func(runtime.Object) bool { return true })
	zeroRV := a.firstEvent(t, a.client.AppsV1().Deployments(actNS), actWorkload, func(obj runtime.Object) bool {
		d, ok := obj.(*appsv1.Deployment)
		return ok && d.Spec.Replicas != nil && *d.Spec.Replicas == 0
	})
	a.scaledObject(t, map[string]any{"type": "external-push", "metadata": md})
	if n := a.replicas(t); n != 1 {
		t.Fatalf("w has %d replicas while it has traffic, want 1", n)
	}
	a.x.setTraffic(0)

	// Idle: the slice first, then KEDA's scale to zero.
	var slice, zero uint64
	for deadline := time.After(90 * time.Second); slice == 0 || zero == 0; {
		select {
		case slice = <-sliceRV:
		case zero = <-zeroRV:
		case <-deadline:
			t.Fatalf("after 90s: ebb's slice written at revision %d, w scaled to zero at %d; want both\nebb's log:\n%s", slice, zero, a.e.stderr)
		}
	}
	if zero < slice {
		t.Errorf("KEDA scaled w to zero (revision %d) before ebb's slice was written (revision %d): requests in between had no endpoint", zero, slice)
	}
	url := activatorURL(t, a.slice(t))

	// One request, held: KEDA wakes w.
	body := "wake me"
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	sent := time.Now()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader([]byte(body)))
		req.Host = actHost
		resp, err := directClient(1).Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	deadline := sent.Add(30 * time.Second)
	for a.replicas(t) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("KEDA did not scale w up within 30s of a held request\nebb's log:\n%s", a.e.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	woke := time.Since(sent)
	if v := promQuery(t, a.e.prom, `sum(rate(istio_requests_total{destination_workload_namespace="shop",destination_workload="w"}[10s]))`); len(v) != 1 || v[0] != 0 {
		t.Errorf("the store's rate of shop/w when KEDA woke w: %v, want [0]", v)
	}

	backend := a.startBackend(t, net.JoinHostPort(a.netns.PeerIP.String(), strconv.Itoa(actBackendPort)))
	a.publishReady(t, a.netns.PeerIP.String())
	r := <-res
	if r.err != nil || r.code != http.StatusOK || r.body != "echo: "+body {
		t.Fatalf("the held request: HTTP %d, %q, %v; want 200 %q", r.code, r.body, r.err, "echo: "+body)
	}
	if n := backend.counts()[body]; n != 1 {
		t.Errorf("the backend got the request %d times, want once", n)
	}
	a.waitSlice(t, false, 30*time.Second)
	t.Logf("ebb's slice written at revision %d, KEDA's scale to zero at %d; a held request -> KEDA scaled w 0 -> 1 in %.0f ms (the store's rate 0)",
		slice, zero, ms(woke))
}

// TestActivatorE2ENewScaledObjectOnIdle: a ScaledObject is created for a
// workload that has long been idle and that ebb has never been asked about.
// KEDA's first answer from ebb is idle and KEDA scales the workload to zero
// at once (it was never active, so no cooldown runs): ebb's slice must be
// in place before that scale, or requests in between find no endpoint.
func TestActivatorE2ENewScaledObjectOnIdle(t *testing.T) {
	a := startActivatorEnv(t, controlplane.Config{KEDA: true}, 1)
	md := map[string]any{"scalerAddress": a.e.conn.Target()}
	for k, v := range liveRef.ScalerMetadata {
		if k != "scalerAddress" {
			md[k] = v
		}
	}
	time.Sleep(4 * time.Second) // longer than the trigger's idleAfter (3s) with no traffic
	if a.slice(t) != nil {
		t.Fatal("ebb wrote a slice for a workload no ScaledObject has asked about")
	}
	sliceRV := a.firstEvent(t, a.client.DiscoveryV1().EndpointSlices(actNS), actEbbSlice, func(runtime.Object) bool { return true })
	zeroRV := a.firstEvent(t, a.client.AppsV1().Deployments(actNS), actWorkload, func(obj runtime.Object) bool {
		d, ok := obj.(*appsv1.Deployment)
		return ok && d.Spec.Replicas != nil && *d.Spec.Replicas == 0
	})
	a.scaledObject(t, map[string]any{"type": "external-push", "metadata": md})
	var slice, zero uint64
	for deadline := time.After(60 * time.Second); slice == 0 || zero == 0; {
		select {
		case slice = <-sliceRV:
		case zero = <-zeroRV:
		case <-deadline:
			t.Fatalf("after 60s: ebb's slice written at revision %d, w scaled to zero at %d; want both\nebb's log:\n%s", slice, zero, a.e.stderr)
		}
	}
	if zero < slice {
		t.Errorf("KEDA scaled w to zero (revision %d) before ebb's slice was written (revision %d): requests in between had no endpoint", zero, slice)
	}
	t.Logf("ebb's slice written at revision %d, KEDA's scale to zero at %d", slice, zero)
}
