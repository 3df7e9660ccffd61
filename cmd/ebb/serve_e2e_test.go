package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries/storetest"
)

// The e2e world: data from dataStart to dataEnd, 15 s apart; ebb's clock
// starts at evalAt, well inside it.
var (
	dataStart = storetest.Epoch
	dataEnd   = storetest.Epoch.Add(70 * time.Minute)
	evalAt    = storetest.Epoch.Add(30 * time.Minute)
	step      = 15 * time.Second
	nSamples  = int(dataEnd.Sub(dataStart)/step) + 1
)

func e2eHistory() []storetest.Series {
	counter := func(rps float64, labels map[string]string) storetest.Series {
		return storetest.Series{Metric: "istio_requests_total", Labels: labels,
			Samples: storetest.Linear(dataStart, step, nSamples, 0, rps*step.Seconds())}
	}
	gauge := func(metric string, v float64, labels map[string]string) storetest.Series {
		return storetest.Series{Metric: metric, Labels: labels, Samples: storetest.Constant(dataStart, step, nSamples, v)}
	}
	return []storetest.Series{
		// shop/cart: 10 req/s reported by its own sidecars, in two series.
		// (namespace is the reporting proxy's, as a PodMonitor scrape labels it.)
		counter(6, map[string]string{"namespace": "shop", "reporter": "destination", "destination_workload_namespace": "shop", "destination_workload": "cart", "response_code": "200"}),
		counter(4, map[string]string{"namespace": "shop", "reporter": "destination", "destination_workload_namespace": "shop", "destination_workload": "cart", "response_code": "503"}),
		// shop/asleep has zero replicas: only the gateway reports its demand, 2 req/s.
		counter(2, map[string]string{"namespace": "istio-system", "reporter": "source", "destination_workload": "unknown", "destination_service_namespace": "shop", "destination_service_name": "asleep"}),
		// shop/wave: 3 req/s until evalAt+1m, then its counter stays flat:
		// the traffic stops, the series stay.
		{Metric: "istio_requests_total", Labels: map[string]string{"namespace": "shop", "reporter": "destination", "destination_workload_namespace": "shop", "destination_workload": "wave"},
			Samples: waveSamples()},
		// Another namespace's workload of the same name must not leak in.
		counter(100, map[string]string{"namespace": "secret", "reporter": "destination", "destination_workload_namespace": "secret", "destination_workload": "cart"}),
		// ml/llm: one pod with two GPUs at 30% and 40%, one at 63%: 35 + 63 = 98.
		gauge("DCGM_FI_DEV_GPU_UTIL", 30, map[string]string{"gpu": "0", "namespace": "ml", "pod": "llm-7d9f8b6c4d-x2x4z"}),
		gauge("DCGM_FI_DEV_GPU_UTIL", 40, map[string]string{"gpu": "1", "namespace": "ml", "pod": "llm-7d9f8b6c4d-x2x4z"}),
		gauge("DCGM_FI_DEV_GPU_UTIL", 63, map[string]string{"gpu": "0", "namespace": "gpu-operator", "pod": "dcgm-exporter-abcde", "exported_namespace": "ml", "exported_pod": "llm-7d9f8b6c4d-k5n7q"}),
		// A queue metric in shop and, much larger, in secret.
		gauge("app_queue_depth", 5, map[string]string{"namespace": "shop", "queue": "tasks"}),
		gauge("app_queue_depth", 1000, map[string]string{"namespace": "secret", "queue": "tasks"}),
		gauge("app_secret_only", 42, map[string]string{"namespace": "secret"}),
	}
}

func waveSamples() []storetest.Sample {
	out := storetest.Linear(dataStart, step, nSamples, 0, 3*step.Seconds())
	stop := evalAt.Add(time.Minute)
	for i := range out {
		if out[i].T.After(stop) {
			out[i].V = out[i-1].V
		}
	}
	return out
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: e2eHistory()})
	clk := clock.NewMock()
	clk.Set(evalAt)
	e := startServe(t, prom.URL, clk, "--interval=5s", "--max-staleness=30s", "--query-timeout=5s")
	e.prom = prom
	return e
}

func TestServeEndToEnd(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()

	t.Run("signals", func(t *testing.T) {
		tests := []struct {
			ref  *pb.ScaledObjectRef
			want float64
		}{
			// 6 + 4 req/s; secret/cart's 100 req/s is another namespace.
			{soRef("shop", "cart", map[string]string{"signal": "requests", "target": "5"}), 10},
			// Zero replicas: the gateway's source-side 2 req/s.
			{soRef("shop", "asleep", map[string]string{"signal": "requests", "target": "5"}), 2},
			// No series at all: no traffic.
			{soRef("shop", "nobody", map[string]string{"signal": "requests", "target": "5"}), 0},
			// mean(30, 40) + 63 from the exported labels.
			{soRef("ml", "llm-so", map[string]string{"signal": "gpu", "target": "70", "workload": "llm"}), 98},
		}
		for _, tt := range tests {
			if got := e.value(t, tt.ref); got != tt.want {
				t.Errorf("%s/%s %s: got %v, want %v", tt.ref.Namespace, tt.ref.Name, tt.ref.ScalerMetadata["signal"], got, tt.want)
			}
		}
		spec, err := e.client.GetMetricSpec(ctx, tests[0].ref)
		if err != nil || spec.MetricSpecs[0].TargetSizeFloat != 5 || spec.MetricSpecs[0].MetricName != "ebb-requests-cart" {
			t.Errorf("GetMetricSpec: %v, %v", spec, err)
		}
		for i, want := range []bool{true, true, false, true} {
			act, err := e.client.IsActive(ctx, tests[i].ref)
			if err != nil || act.Result != want {
				t.Errorf("IsActive %s: %v, %v; want %v", tests[i].ref.Name, act, err, want)
			}
		}
	})

	t.Run("namespace escapes", func(t *testing.T) {
		// Every query runs in namespace shop, whose app_queue_depth is 5;
		// secret's is 1000 and secret alone has app_secret_only.
		for _, tt := range []struct {
			query string
			want  float64
		}{
			{`sum(app_queue_depth)`, 5},
			{`sum(app_queue_depth{namespace="secret"})`, 5},
			{`sum(app_queue_depth{namespace!="shop"})`, 5},
			{`sum(app_queue_depth{namespace=~".*"})`, 5},
			{`sum(app_queue_depth{namespace=~"secret|shop"})`, 5},
			{`sum({__name__=~"app_.+"})`, 5},
			{`count({__name__=~".+", namespace="secret"})`, 4}, // shop: three istio series and one queue
			{`sum(app_secret_only)`, 0},
			{`sum(app_secret_only) or vector(1)`, 1},
			{`sum(label_replace(app_queue_depth, "namespace", "secret", "namespace", ".*"))`, 5},
			{`max_over_time(sum(app_queue_depth{namespace="secret"})[5m:1m])`, 5},
			{`sum(app_queue_depth{namespace="secret"}) + sum(app_queue_depth offset 1m)`, 10},
			{`scalar(sum(rate(istio_requests_total{destination_workload="cart"}[1m])))`, 10},
			{`sum(rate(istio_requests_total{destination_workload_namespace="secret"}[1m]))`, 0},
			{`sum(abs(ceil(clamp_min(app_queue_depth{namespace="secret"}, 0))))`, 5},
		} {
			ref := soRef("shop", "worker", map[string]string{"signal": "query", "target": "1", "query": tt.query})
			if got := e.value(t, ref); got != tt.want {
				t.Errorf("%s: got %v, want %v (shop's own data only)", tt.query, got, tt.want)
			}
		}
	})

	t.Run("bad metadata", func(t *testing.T) {
		for _, tt := range []struct {
			md   map[string]string
			want string
		}{
			{map[string]string{"target": "1"}, "metadata signal: missing, want requests, gpu, query, queue, running, kvcache or ttft"},
			{map[string]string{"signal": "cpu", "target": "1"}, `metadata signal: unknown signal "cpu", want requests, gpu, query, queue, running, kvcache or ttft`},
			{map[string]string{"signal": "requests"}, "metadata target: missing, want a number > 0"},
			{map[string]string{"signal": "requests", "target": "abc"}, `metadata target: "abc" is not a number > 0`},
			{map[string]string{"signal": "requests", "target": "-1"}, `metadata target: "-1" is not a number > 0`},
			{map[string]string{"signal": "requests", "target": "1", "window": "5parsecs"}, `metadata window: "5parsecs" is not a duration such as 1m`},
			{map[string]string{"signal": "requests", "target": "1", "colour": "blue"}, "metadata colour: unknown key (known: activation, idleAfter, quantile, query, server, signal, target, window, workload); unknown keys: colour"},
		} {
			_, err := e.client.IsActive(ctx, soRef("shop", "bad", tt.md))
			if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tt.want {
				t.Errorf("%v: got %v, want InvalidArgument %q", tt.md, err, tt.want)
			}
		}
		_, err := e.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: soRef("shop", "bad", map[string]string{"signal": "query", "target": "1", "query": "sum(rate(x[1m])"})})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "metadata query: ") {
			t.Errorf("unparsable query: got %v, want InvalidArgument on metadata query", err)
		}
	})

	t.Run("health and metrics", func(t *testing.T) {
		hc := healthpb.NewHealthClient(e.conn)
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "externalscaler.ExternalScaler"})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health: %v, %v", r, err)
		}
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			if body, code := httpGet(t, e.http+path); code != 200 || body != want {
				t.Errorf("%s: %d %q, want 200 %q", path, code, body, want)
			}
		}
		body, _ := httpGet(t, e.http+"/metrics")
		for _, want := range []string{
			`ebb_queries_total{signal="requests"}`, `ebb_queries_total{signal="gpu"}`, `ebb_queries_total{signal="query"}`,
			`ebb_series_decoded_total{signal="requests"}`, "ebb_collector_tick_duration_seconds_count", "ebb_workloads_tracked",
			"ebb_snapshot_age_seconds", `ebb_grpc_requests_total{code="InvalidArgument",method="/externalscaler.ExternalScaler/IsActive"}`,
			`ebb_grpc_request_duration_seconds_count{method="/externalscaler.ExternalScaler/GetMetrics"}`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("stream follows the store", func(t *testing.T) {
		ref := soRef("shop", "wave", map[string]string{"signal": "requests", "target": "5", "idleAfter": "1m"})
		streamCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := e.client.StreamIsActive(streamCtx, ref)
		if err != nil {
			t.Fatal(err)
		}
		specs, err := e.client.StreamMetricSpec(streamCtx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := specs.Recv(); err != nil || s.MetricSpecs[0].TargetSizeFloat != 5 {
			t.Errorf("StreamMetricSpec: %v, %v", s, err)
		}
		if r, err := stream.Recv(); err != nil || !r.Result {
			t.Fatalf("StreamIsActive at open: %v, %v; want true", r, err)
		}
		if v := e.value(t, ref); v != 3 {
			t.Fatalf("wave at +30m: %v req/s, want 3", v)
		}
		// wave's traffic stops at +31m; its series stay at rate 0. With
		// idleAfter 1m it is idle from +32m: the tick at +34m pushes false.
		e.clk.Add(4 * time.Minute)
		r, err := stream.Recv()
		if err != nil || r.Result {
			t.Fatalf("StreamIsActive after the traffic ended: %v, %v; want false\nlog:\n%s", r, err, e.stderr)
		}
	})

	t.Run("outage", func(t *testing.T) {
		ref := soRef("shop", "cart", map[string]string{"signal": "requests", "target": "5"})
		if err := e.prom.Stop(); err != nil {
			t.Fatal(err)
		}
		// Past --max-staleness with every query failing: IsActive answers
		// Unavailable, neither a wake nor a shutdown because of an outage,
		// and so does GetMetrics.
		e.clk.Add(40 * time.Second) // the tick after this fails
		deadline := time.Now().Add(20 * time.Second)
		for {
			act, err := e.client.IsActive(ctx, ref)
			if status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "activity unknown: source failing") {
				break
			}
			if time.Now().After(deadline) || (err == nil && !act.Result) {
				t.Fatalf("IsActive during an outage: %v, %v; want Unavailable: activity unknown", act, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, err := e.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref})
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "max staleness 30s") {
			t.Errorf("GetMetrics during an outage: %v, want Unavailable naming the staleness", err)
		}
		if body, _ := httpGet(t, e.http+"/metrics"); !strings.Contains(body, `ebb_query_errors_total{kind="unreachable",signal="requests"}`) {
			t.Error("/metrics does not count the unreachable store")
		}
	})
}
