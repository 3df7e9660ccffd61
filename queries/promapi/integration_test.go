package promapi_test

import (
	"context"
	"errors"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/storetest"
)

// The stores hold 10 minutes of samples, one every 15 s from storetest.Epoch,
// and are queried at the last one.
var (
	step = 15 * time.Second
	n    = 41 // 0 s, 15 s, …, 600 s
	at   = storetest.Epoch.Add(10 * time.Minute)
)

// stores are one real Prometheus and one real VictoriaMetrics with the same
// history, started by the first test that needs them and stopped in TestMain.
var stores struct {
	once     sync.Once
	prom, vm *storetest.Server
	promErr  error
	vmErr    error
	stops    []func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, stop := range stores.stops {
		stop()
	}
	os.Exit(code)
}

func startStores() {
	var wg sync.WaitGroup
	var promStop, vmStop func()
	wg.Add(2)
	go func() {
		defer wg.Done()
		stores.prom, promStop, stores.promErr = storetest.LaunchPrometheus(storetest.PromOptions{History: history()})
	}()
	go func() {
		defer wg.Done()
		stores.vm, vmStop, stores.vmErr = storetest.LaunchVictoriaMetrics(storetest.VMOptions{History: history()})
	}()
	wg.Wait()
	for _, stop := range []func(){promStop, vmStop} {
		if stop != nil {
			stores.stops = append(stores.stops, stop)
		}
	}
}

// eachStore runs fn against each store, as a subtest named after it, with a
// source for it.
func eachStore(t *testing.T, fn func(t *testing.T, srv *storetest.Server, src *promapi.Prometheus)) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs real stores; skipped with -short")
	}
	stores.once.Do(startStores)
	for _, s := range []struct {
		srv  *storetest.Server
		err  error
		name string
	}{{stores.prom, stores.promErr, "prometheus"}, {stores.vm, stores.vmErr, "victoriametrics"}} {
		t.Run(s.name, func(t *testing.T) {
			srv := storetest.Require(t, s.srv, s.err)
			src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			fn(t, srv, src)
		})
	}
}

// counter is an istio_requests_total series growing at rate per second.
func counter(rate float64, labels map[string]string) storetest.Series {
	// Starting at 1000 keeps Prometheus from shortening its extrapolation
	// toward a zero crossing; linear growth makes its rate exact.
	return storetest.Series{Metric: "istio_requests_total", Labels: labels,
		Samples: storetest.Linear(storetest.Epoch, step, n, 1000, rate*step.Seconds())}
}

// activator is an ebb replica's activator series for one workload: its
// request counter growing at rate per second (history adds its pending gauge).
func activator(rate float64, labels map[string]string) storetest.Series {
	l := map[string]string{"job": "ebb"}
	for k, v := range labels {
		l[k] = v
	}
	return storetest.Series{Metric: queries.ActivatorRequestsMetric, Labels: l,
		Samples: storetest.Linear(storetest.Epoch, step, n, 1000, rate*step.Seconds())}
}

// destination and source are the labels Istio's server-side and client-side
// proxies put on a request to workload ns/name behind Service ns/svc.
func destination(ns, name, fromNS, from, code string) map[string]string {
	return map[string]string{"reporter": "destination", "source_workload_namespace": fromNS, "source_workload": from,
		"destination_workload_namespace": ns, "destination_workload": name,
		"destination_service_namespace": ns, "destination_service_name": name, "response_code": code}
}

func source(ns, name, svc, fromNS, from, code string) map[string]string {
	l := destination(ns, name, fromNS, from, code)
	l["reporter"] = "source"
	l["destination_service_namespace"], l["destination_service_name"] = ns, svc
	if name == "unknown" {
		l["destination_workload_namespace"] = "unknown"
	}
	return l
}

// gpu is a constant dcgm-exporter gauge of one GPU on a node.
func gpu(metric string, v float64, node, dev string, labels map[string]string) storetest.Series {
	l := map[string]string{"gpu": dev, "UUID": "GPU-" + node + "-" + dev, "Hostname": node, "modelName": "NVIDIA A100-SXM4-40GB", "container": "main"}
	for k, val := range labels {
		l[k] = val
	}
	return storetest.Series{Metric: metric, Labels: l, Samples: storetest.Constant(storetest.Epoch, step, n, v)}
}

// exported are the labels of a pod's GPU scraped through the exporter's own
// pod, so that Prometheus renamed the pod's labels to exported_*.
func exported(ns, pod string) map[string]string {
	return map[string]string{"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-7xk2p", "exported_namespace": ns, "exported_pod": pod}
}

func history() []storetest.Series {
	const util, prof = "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
	held := func(v float64, labels map[string]string) storetest.Series {
		l := map[string]string{"job": "ebb"}
		for k, val := range labels {
			l[k] = val
		}
		return storetest.Series{Metric: queries.ActivatorPendingMetric, Labels: l, Samples: storetest.Constant(storetest.Epoch, step, n, v)}
	}
	return append([]storetest.Series{
		// shop/web runs: its own proxies report 2 + 0.5 req/s. Its callers
		// report the same requests again (2 req/s), and a few that found no
		// endpoint during a rollout (0.25 req/s): neither may count.
		counter(2, destination("shop", "web", "istio-system", "istio-ingressgateway", "200")),
		counter(0.5, destination("shop", "web", "shop", "cart", "503")),
		counter(2, source("shop", "web", "web", "istio-system", "istio-ingressgateway", "200")),
		counter(0.25, source("shop", "unknown", "web", "istio-system", "istio-ingressgateway", "503")),
		// shop/cart runs: 1.25 req/s.
		counter(1.25, destination("shop", "cart", "shop", "web", "200")),
		// shop/sleepy has zero replicas: only callers report it, as
		// "unknown" behind Service shop/sleepy: 0.5 + 0.25 req/s.
		counter(0.5, source("shop", "unknown", "sleepy", "istio-system", "istio-ingressgateway", "503")),
		counter(0.25, source("shop", "unknown", "sleepy", "shop", "web", "503")),
		// ml/infer runs: 4 req/s.
		counter(4, destination("ml", "infer", "istio-system", "istio-ingressgateway", "200")),
		// ml/web has zero replicas and shares its name with shop/web: 1 req/s.
		counter(1, source("ml", "unknown", "web", "istio-system", "istio-ingressgateway", "503")),

		// Two ebb replicas' activators hold requests for workloads at zero
		// (--activator-addr): one scraped by a plain job, one through a
		// ServiceMonitor that renamed its namespace label. shop/sleepy:
		// 0.5 + 0.25 req/s reached them and 2 + 1 are held now; ml/dormant,
		// which nothing else reports: 0.125 req/s and 1 held.
		activator(0.5, map[string]string{"namespace": "shop", "workload": "sleepy", "instance": "10.42.0.17:8080"}),
		activator(0.25, map[string]string{"namespace": "ebb-system", "exported_namespace": "shop", "workload": "sleepy", "instance": "10.42.1.9:8080"}),
		activator(0.125, map[string]string{"namespace": "ml", "workload": "dormant", "instance": "10.42.0.17:8080"}),
		held(2, map[string]string{"namespace": "shop", "workload": "sleepy", "instance": "10.42.0.17:8080"}),
		held(1, map[string]string{"namespace": "ebb-system", "exported_namespace": "shop", "workload": "sleepy", "instance": "10.42.1.9:8080"}),
		held(1, map[string]string{"namespace": "ml", "workload": "dormant", "instance": "10.42.0.17:8080"}),

		// Deployment ml/infer: two pods with one GPU each at 63%, seen
		// through the exporter's pod (exported_* labels).
		gpu(util, 63, "node-a", "0", exported("ml", "infer-7c9d8f6b5-x2k4z")),
		gpu(util, 63, "node-a", "1", exported("ml", "infer-7c9d8f6b5-q9w8r")),
		// StatefulSet ml/trainer: pod 0 has two GPUs at 30% and 40%; pod 1
		// has a GPU with the profiling metric (0.5, so 50%, which wins over
		// its 90% utilization) and a GPU at 20% without it.
		gpu(util, 30, "node-b", "0", map[string]string{"namespace": "ml", "pod": "trainer-0"}),
		gpu(util, 40, "node-b", "1", map[string]string{"namespace": "ml", "pod": "trainer-0"}),
		gpu(util, 90, "node-b", "2", map[string]string{"namespace": "ml", "pod": "trainer-1"}),
		gpu(prof, 0.5, "node-b", "2", map[string]string{"namespace": "ml", "pod": "trainer-1"}),
		gpu(util, 20, "node-b", "3", map[string]string{"namespace": "ml", "pod": "trainer-1"}),
		// A bare pod is its own workload.
		gpu(util, 12.5, "node-c", "0", exported("research", "notebook-alice")),
		// A GPU in no pod carries only the exporter's own pod.
		gpu(util, 0, "node-c", "1", map[string]string{"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-7xk2p"}),
	}, burstHistory()...)
}

// checkSamples compares samples, in any order, with a tolerance of 1e-9.
func checkSamples(t *testing.T, got, want []queries.Sample) {
	t.Helper()
	sorted := func(s []queries.Sample) []queries.Sample {
		s = append([]queries.Sample(nil), s...)
		sort.Slice(s, func(i, j int) bool { return s[i].Workload.String() < s[j].Workload.String() })
		return s
	}
	got, want = sorted(got), sorted(want)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Workload == want[i].Workload && math.Abs(got[i].Value-want[i].Value) <= 1e-9
	}
	if !ok {
		t.Errorf("samples =\n%v\nwant\n%v", got, want)
	}
}

func sample(ns, name string, v float64) queries.Sample {
	return queries.Sample{Workload: queries.WorkloadKey{Namespace: ns, Name: name}, Value: v}
}

func TestIntegrationRequests(t *testing.T) {
	want := []queries.Sample{
		sample("shop", "web", 2+0.5), // destination-reported only: not + 2 + 0.25 from callers
		sample("shop", "cart", 1.25),
		// Zero replicas: callers' "unknown" rows for Service shop/sleepy,
		// plus what the activators saw and hold.
		sample("shop", "sleepy", 0.5+0.25+(0.5+2)+(0.25+1)),
		sample("ml", "dormant", 0.125+1), // only the activator knows it
		sample("ml", "infer", 4),
		sample("ml", "web", 1),     // zero replicas, kept apart from shop/web
		sample("hist", "burst", 0), // busy until +4m only (history_test.go)
	}
	eachStore(t, func(t *testing.T, _ *storetest.Server, src *promapi.Prometheus) {
		// Rates are constant, so every window gives the same values.
		for _, w := range []time.Duration{time.Minute, 5 * time.Minute} {
			got, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalRequests, Window: w}, at)
			if err != nil {
				t.Fatalf("window %v: %v", w, err)
			}
			checkSamples(t, got, want)
		}
	})
}

func TestIntegrationGPU(t *testing.T) {
	want := []queries.Sample{
		sample("ml", "infer", 63+63),                 // two pods, one GPU each
		sample("ml", "trainer", (30+40)/2+(50+20)/2), // pod 0: mean of 30, 40; pod 1: 0.5×100 wins over 90, mean with 20
		sample("research", "notebook-alice", 12.5),
		// The GPU in no pod is attributed to the exporter's pod.
		sample("gpu-operator", "nvidia-dcgm-exporter-7xk2p", 0),
		sample("hist", "burst", 0), // busy until +4m only (history_test.go)
	}
	eachStore(t, func(t *testing.T, _ *storetest.Server, src *promapi.Prometheus) {
		got, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}, at)
		if err != nil {
			t.Fatal(err)
		}
		checkSamples(t, got, want)
	})
}

func TestIntegrationQuery(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []queries.Sample
	}{
		{"sum", `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop"}[1m]))`,
			[]queries.Sample{{Value: 2 + 0.5 + 1.25}}},
		{"vector reduced to its sum", `rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop"}[1m])`,
			[]queries.Sample{{Value: 2 + 0.5 + 1.25}}},
		{"scalar", `scalar(sum(DCGM_FI_DEV_GPU_UTIL{exported_namespace="ml"}))`,
			[]queries.Sample{{Value: 63 + 63}}},
		{"no series", `rate(istio_requests_total{destination_workload="nope"}[1m])`, nil},
	}
	eachStore(t, func(t *testing.T, _ *storetest.Server, src *promapi.Prometheus) {
		for _, tt := range tests {
			got, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalQuery, Expr: tt.expr}, at)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			checkSamples(t, got, tt.want)
		}
	})
}

func TestIntegrationRefusedQuery(t *testing.T) {
	wantMessage := map[string]string{
		"prometheus":      "parse error: unclosed left parenthesis",
		"victoriametrics": `error when executing query="sum(rate(`,
	}
	eachStore(t, func(t *testing.T, srv *storetest.Server, src *promapi.Prometheus) {
		_, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalQuery, Expr: "sum(rate("}, at)
		var qe *queries.QueryError
		var se *promapi.StoreError
		if !errors.As(err, &qe) || qe.Kind != queries.KindBadData || !errors.As(err, &se) {
			t.Fatalf("error = %v, want a bad_data QueryError holding a StoreError", err)
		}
		if !strings.Contains(se.Message, wantMessage[srv.Name]) {
			t.Errorf("store message = %q, want it to contain %q", se.Message, wantMessage[srv.Name])
		}
	})
}

// checkFlat fails unless points are step apart from first to last, all v.
func checkFlat(t *testing.T, points []promapi.Point, first, last time.Time, step time.Duration, v float64) {
	t.Helper()
	want := int(last.Sub(first)/step) + 1
	if len(points) != want {
		t.Fatalf("%d points from %v to %v, want %d", len(points), first, last, want)
	}
	for i, p := range points {
		if wt := first.Add(time.Duration(i) * step); !p.T.Equal(wt) || math.Abs(p.V-v) > 1e-9 {
			t.Fatalf("point %d = %v %v, want %v %v", i, p.T, p.V, wt, v)
		}
	}
}

func TestIntegrationRange(t *testing.T) {
	const expr = `sum(rate(istio_requests_total{reporter="destination",destination_workload="cart"}[1m]))`
	eachStore(t, func(t *testing.T, _ *storetest.Server, src *promapi.Prometheus) {
		from, to := storetest.Epoch.Add(2*time.Minute), at
		got, err := src.Range(context.Background(), expr, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || len(got[0].Labels) != 0 {
			t.Fatalf("Range = %v, want one series without labels", got)
		}
		checkFlat(t, got[0].Points, from, to, step, 1.25)
	})
}

func TestIntegrationRangeOverManyPoints(t *testing.T) {
	const expr = `sum(rate(istio_requests_total{reporter="destination",destination_workload="cart"}[1m]))`
	eachStore(t, func(t *testing.T, srv *storetest.Server, _ *promapi.Prometheus) {
		var queried int
		src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL, Observe: func(promapi.QueryStats) { queried++ }})
		if err != nil {
			t.Fatal(err)
		}
		// 11,300 points a second apart: one query cannot ask for them all,
		// so the first covers 10,999 s up to epoch+5m, the second the rest.
		start, end := storetest.Epoch.Add(5*time.Minute-10999*time.Second), at
		got, err := src.Range(context.Background(), expr, start, end, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if queried != 2 || len(got) != 1 {
			t.Fatalf("%d queries returned %d series, want 2 queries and 1 series", queried, len(got))
		}
		// Every point is one second after the previous one, and those whose
		// 1m window lies within the data are exact.
		pts := got[0].Points
		var inside []promapi.Point
		for i, p := range pts {
			if i > 0 && p.T.Sub(pts[i-1].T) != time.Second {
				t.Fatalf("point %d at %v follows %v", i, p.T, pts[i-1].T)
			}
			if !p.T.Before(storetest.Epoch.Add(2*time.Minute)) && !p.T.After(at) {
				inside = append(inside, p)
			}
		}
		checkFlat(t, inside, storetest.Epoch.Add(2*time.Minute), at, time.Second, 1.25)
	})
}

func TestIntegrationStoppedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real store; skipped with -short")
	}
	srv := storetest.StartVictoriaMetrics(t, storetest.VMOptions{History: history()[:1]})
	src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	got, err := src.Instant(context.Background(), shape, at)
	if err != nil {
		t.Fatal(err)
	}
	checkSamples(t, got, []queries.Sample{sample("shop", "web", 2)})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = src.Instant(context.Background(), shape, at)
	var qe *queries.QueryError
	if !errors.As(err, &qe) || qe.Kind != queries.KindUnreachable {
		t.Errorf("after Stop: error = %v, want kind unreachable", err)
	}
}

// TestIntegrationVictoriaMetricsAnswersNow checks that a query at now sees
// the samples of the last seconds on VictoriaMetrics, which by default
// answers a query within its -search.latencyOffset (30s) of now as of 30s
// ago: a workload that woke 10s ago would be idle for 20s more. Prometheus
// answers as of now anyway (the other stores' tests query fixed times).
func TestIntegrationVictoriaMetricsAnswersNow(t *testing.T) {
	if testing.Short() {
		t.Skip("needs real stores; skipped with -short")
	}
	stores.once.Do(startStores)
	srv := storetest.Require(t, stores.vm, stores.vmErr)
	src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// shop/woke's sidecar counted its first requests 12s and 2s ago, at 2
	// a second; nothing before that.
	now := time.Now().Truncate(time.Second)
	labels := destination("shop", "woke", "istio-system", "istio-ingressgateway", "200")
	if err := srv.Import([]storetest.Series{{Metric: "istio_requests_total", Labels: labels, Samples: []storetest.Sample{
		{T: now.Add(-12 * time.Second), V: 1000}, {T: now.Add(-2 * time.Second), V: 1020},
	}}}); err != nil {
		t.Fatal(err)
	}
	got, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	var woke *queries.Sample
	for i := range got {
		if got[i].Workload == (queries.WorkloadKey{Namespace: "shop", Name: "woke"}) {
			woke = &got[i]
		}
	}
	if woke == nil || woke.Value <= 0 {
		t.Fatalf("requests at now = %v, want shop/woke above 0 (its requests of the last 12s)", got)
	}
}
