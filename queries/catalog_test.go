package queries

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"
)

func TestCatalogExprDefault(t *testing.T) {
	t.Parallel()
	c := DefaultCatalog()
	f := func(shape Shape, want string) {
		t.Helper()
		got, err := c.Expr(shape)
		if err != nil {
			t.Fatalf("Expr(%v): %v", shape, err)
		}
		if got != want {
			t.Errorf("Expr(%v)\n got %s\nwant %s", shape, got, want)
		}
		if _, err := metricsql.Parse(got); err != nil {
			t.Errorf("Expr(%v) does not parse: %v", shape, err)
		}
	}
	f(Shape{Signal: SignalRequests, Window: time.Minute},
		`sum by (destination_workload_namespace, destination_workload) (`+
			`sum by (destination_workload_namespace, destination_workload) (rate(istio_requests_total{reporter="destination"}[1m])) `+
			`or on (destination_workload_namespace, destination_workload) `+
			`label_replace(label_replace(sum by (destination_service_namespace, destination_service_name) (rate(istio_requests_total{reporter="source",destination_workload="unknown"}[1m])), `+
			`"destination_workload_namespace", "$1", "destination_service_namespace", "(.*)"), `+
			`"destination_workload", "$1", "destination_service_name", "(.*)") or `+
			`label_replace(label_replace(label_replace(label_replace(`+
			`(sum by (namespace, exported_namespace, workload) (rate(ebb_activator_requests_total[1m])) + sum by (namespace, exported_namespace, workload) (ebb_activator_pending)) `+
			`or sum by (namespace, exported_namespace, workload) (rate(ebb_activator_requests_total[1m])) `+
			`or sum by (namespace, exported_namespace, workload) (ebb_activator_pending), `+
			`"namespace", "$1", "exported_namespace", "(.+)"), "destination_workload_namespace", "$1", "namespace", "(.*)"), `+
			`"destination_workload", "$1", "workload", "(.*)"), "ebb_source", "activator", "", ""))`)
	f(Shape{Signal: SignalGPU, Window: 90 * time.Second},
		`avg by (namespace, pod, exported_namespace, exported_pod) (`+
			`(avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[1m30s]) * 100) or avg_over_time(DCGM_FI_DEV_GPU_UTIL[1m30s]))`)
	f(Shape{Signal: SignalRequests, Window: 2*time.Hour + 500*time.Millisecond},
		strings.ReplaceAll(mustExpr(t, c, Shape{Signal: SignalRequests, Window: time.Minute}), "[1m]", "[2h500ms]"))
	// A custom query is sent as it is, whitespace and all.
	f(Shape{Signal: SignalQuery, Expr: ` sum(rate(http_requests_total{namespace="a"}[5m])) `},
		` sum(rate(http_requests_total{namespace="a"}[5m])) `)
}

func mustExpr(t *testing.T, c Catalog, shape Shape) string {
	t.Helper()
	e, err := c.Expr(shape)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCatalogExprCustomLabels(t *testing.T) {
	t.Parallel()
	c := Catalog{
		Requests: RequestsConfig{
			Metric:                "mesh:requests_total",
			NamespaceLabel:        "dst_ns",
			WorkloadLabel:         "dst_app",
			ReporterLabel:         "side",
			DestinationReporter:   "server",
			SourceReporter:        "client",
			UnknownWorkload:       "none",
			ServiceNamespaceLabel: "svc_ns",
			ServiceNameLabel:      "svc",
		},
		GPU: GPUConfig{
			UtilMetric:             "gpu_util",
			ProfMetric:             "gpu_engine_active",
			NamespaceLabel:         "k8s_ns",
			PodLabel:               "k8s_pod",
			ExportedNamespaceLabel: "orig_ns",
			ExportedPodLabel:       "orig_pod",
		},
		ModelServers: ModelServerConfig{NamespaceLabel: "k8s_ns", PodLabel: "k8s_pod"},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := map[Signal]string{
		SignalRequests: `sum by (dst_ns, dst_app) (sum by (dst_ns, dst_app) (rate(mesh:requests_total{side="server"}[30s])) ` +
			`or on (dst_ns, dst_app) label_replace(label_replace(sum by (svc_ns, svc) (rate(mesh:requests_total{side="client",dst_app="none"}[30s])), ` +
			`"dst_ns", "$1", "svc_ns", "(.*)"), "dst_app", "$1", "svc", "(.*)") or ` +
			`label_replace(label_replace(label_replace(label_replace(` +
			`(sum by (namespace, exported_namespace, workload) (rate(ebb_activator_requests_total[30s])) + sum by (namespace, exported_namespace, workload) (ebb_activator_pending)) ` +
			`or sum by (namespace, exported_namespace, workload) (rate(ebb_activator_requests_total[30s])) ` +
			`or sum by (namespace, exported_namespace, workload) (ebb_activator_pending), ` +
			`"namespace", "$1", "exported_namespace", "(.+)"), "dst_ns", "$1", "namespace", "(.*)"), ` +
			`"dst_app", "$1", "workload", "(.*)"), "ebb_source", "activator", "", ""))`,
		SignalGPU: `avg by (k8s_ns, k8s_pod, orig_ns, orig_pod) ((avg_over_time(gpu_engine_active[30s]) * 100) or avg_over_time(gpu_util[30s]))`,
	}
	queue := mustExpr(t, c, Shape{Signal: SignalQueue, Server: ServerTGI, Window: 30 * time.Second})
	if w := `sum by (k8s_ns, ebb_workload) (label_replace(label_replace(label_replace(sum by (k8s_ns, k8s_pod) (avg_over_time(tgi_queue_size[30s])), ` +
		`"ebb_workload", "$1", "k8s_pod", "(.*)"), "ebb_workload", "$1", "k8s_pod", "(.*[^-])-(?:0|[1-9][0-9]*)"), ` +
		`"ebb_workload", "$1", "k8s_pod", "(.*[^-])-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}"))`; queue != w {
		t.Errorf("queue:\n got %s\nwant %s", queue, w)
	}
	for signal, w := range want {
		got := mustExpr(t, c, Shape{Signal: signal, Window: 30 * time.Second})
		if got != w {
			t.Errorf("%s:\n got %s\nwant %s", signal, got, w)
		}
		if _, err := metricsql.Parse(got); err != nil {
			t.Errorf("%s does not parse: %v", signal, err)
		}
	}
}

func TestCatalogExprErrors(t *testing.T) {
	t.Parallel()
	c := DefaultCatalog()
	f := func(shape Shape, want string) {
		t.Helper()
		_, err := c.Expr(shape)
		if err == nil || err.Error() != want {
			t.Errorf("Expr(%+v) error = %v, want %q", shape, err, want)
		}
	}
	f(Shape{Signal: SignalRequests}, "requests: window = 0s, must be a positive whole number of milliseconds")
	f(Shape{Signal: SignalGPU, Window: -time.Second}, "gpu: window = -1s, must be a positive whole number of milliseconds")
	f(Shape{Signal: SignalGPU, Window: time.Second + time.Microsecond}, "gpu: window = 1.000001s, must be a positive whole number of milliseconds")
	f(Shape{Signal: SignalQuery, Expr: "  "}, "query: empty expression")
	f(Shape{Signal: "cpu", Window: time.Minute}, `unknown signal "cpu"`)
}

func TestCatalogValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultCatalog().Validate(); err != nil {
		t.Fatalf("DefaultCatalog().Validate() = %v", err)
	}
	f := func(name string, edit func(*Catalog), want ...string) {
		t.Helper()
		c := DefaultCatalog()
		edit(&c)
		err := c.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if w := strings.Join(want, "\n"); got != w {
			t.Errorf("%s: Validate() =\n%s\nwant\n%s", name, got, w)
		}
	}
	f("metric empty", func(c *Catalog) { c.Requests.Metric = "" }, "requests.metric: empty")
	f("metric with space", func(c *Catalog) { c.Requests.Metric = "istio requests" },
		`requests.metric: "istio requests" is not a valid metric name`)
	f("colon allowed in metric", func(c *Catalog) { c.GPU.UtilMetric = "job:gpu_util:avg" })
	f("colon refused in label", func(c *Catalog) { c.GPU.PodLabel = "k8s:pod" },
		`gpu.pod_label: "k8s:pod" is not a valid label name`)
	f("label starting with digit", func(c *Catalog) { c.Requests.WorkloadLabel = "1workload" },
		`requests.workload_label: "1workload" is not a valid label name`)
	f("same label twice", func(c *Catalog) { c.Requests.WorkloadLabel = c.Requests.NamespaceLabel },
		`requests.workload_label: "destination_workload_namespace" is also requests.namespace_label`)
	f("same reporter twice", func(c *Catalog) { c.Requests.SourceReporter = "destination" },
		`requests.source_reporter: "destination" is also requests.destination_reporter`)
	f("exported labels same as plain", func(c *Catalog) { c.GPU.ExportedPodLabel = "pod" },
		`gpu.exported_pod_label: "pod" is also gpu.pod_label`)
	f("model-server pod label is the workload label", func(c *Catalog) { c.ModelServers.PodLabel = "ebb_workload" },
		`the workload label of model-server queries: "ebb_workload" is also model_servers.pod_label`)
	f("zero catalog", func(c *Catalog) { *c = Catalog{} },
		"requests.metric: empty",
		"requests.namespace_label: empty",
		"requests.workload_label: empty",
		"requests.reporter_label: empty",
		"requests.destination_reporter: empty",
		"requests.source_reporter: empty",
		"requests.unknown_workload: empty",
		"requests.service_namespace_label: empty",
		"requests.service_name_label: empty",
		"gpu.util_metric: empty",
		"gpu.prof_metric: empty",
		"gpu.namespace_label: empty",
		"gpu.pod_label: empty",
		"gpu.exported_namespace_label: empty",
		"gpu.exported_pod_label: empty",
		"model_servers.namespace_label: empty",
		"model_servers.pod_label: empty",
	)
	f("several fields", func(c *Catalog) {
		c.Requests.UnknownWorkload = ""
		c.GPU.ProfMetric = "DCGM-PROF"
	},
		"requests.unknown_workload: empty",
		`gpu.prof_metric: "DCGM-PROF" is not a valid metric name`,
	)
}

func TestCatalogQuotesValues(t *testing.T) {
	t.Parallel()
	c := DefaultCatalog()
	c.Requests.UnknownWorkload = `un"known\`
	got := mustExpr(t, c, Shape{Signal: SignalRequests, Window: time.Minute})
	if !strings.Contains(got, `destination_workload="un\"known\\"`) {
		t.Errorf("value not quoted: %s", got)
	}
	if _, err := metricsql.Parse(got); err != nil {
		t.Errorf("does not parse: %v", err)
	}
}

func TestWorkloadOfPod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pod, want string
	}{
		// Deployments: <name>-<pod-template-hash>-<5 chars>.
		{"web-7c9d8f6b5-x2k4z", "web"},
		{"checkout-api-5d4f8b7c9d-q9w8r", "checkout-api"}, // 10-char hash, dashes in the name
		{"web-6b7c8d-x2k4z", "web"},                       // 6-char hash
		{"web-2456789-22222", "web"},                      // hash and suffix of digits of the alphabet
		{"a-bcdfgh-bbbbb", "a"},
		// StatefulSets: <name>-<ordinal>.
		{"trainer-0", "trainer"},
		{"db-primary-12", "db-primary"},
		{"kafka-100", "kafka"},
		// Anything else is its own workload.
		{"notebook-alice", "notebook-alice"},
		{"web-7c9d8-x2k4z", "web-7c9d8-x2k4z"},             // hash too short
		{"web-7c9d8f6b5c2-x2k4z", "web-7c9d8f6b5c2-x2k4z"}, // hash too long
		{"web-7c9d8f6b5-x2k4", "web-7c9d8f6b5-x2k4"},       // suffix too short
		{"web-7c9d8f6b5-x2k4zz", "web-7c9d8f6b5-x2k4zz"},   // suffix too long
		{"web-7c9d8f6b5-x2a4z", "web-7c9d8f6b5-x2a4z"},     // 'a' is not in the alphabet
		{"web-7c9d8f6b3-x2k4z", "web-7c9d8f6b3-x2k4z"},     // '3' is not either
		{"web-7C9D8F6B5-X2K4Z", "web-7C9D8F6B5-X2K4Z"},     // nor upper case
		{"daemon-x2k4z", "daemon-x2k4z"},                   // DaemonSet or Job pod
		{"db-01", "db-01"},                                 // not a canonical ordinal
		{"db--1", "db--1"},
		{"web--7c9d8f6b5-x2k4z", "web--7c9d8f6b5-x2k4z"}, // names do not end in a dash
		{"-7c9d8f6b5-x2k4z", "-7c9d8f6b5-x2k4z"},         // no name
		{"-0", "-0"},
		{"0", "0"},
		{"web-", "web-"},
		{"web", "web"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := WorkloadOfPod(tt.pod); got != tt.want {
			t.Errorf("WorkloadOfPod(%q) = %q, want %q", tt.pod, got, tt.want)
		}
	}
}

func ExampleCatalog_Expr() {
	expr, _ := DefaultCatalog().Expr(Shape{Signal: SignalGPU, Window: 2 * time.Minute})
	fmt.Println(expr)
	// Output:
	// avg by (namespace, pod, exported_namespace, exported_pod) ((avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[2m]) * 100) or avg_over_time(DCGM_FI_DEV_GPU_UTIL[2m]))
}

func ExampleWorkloadOfPod() {
	for _, pod := range []string{"checkout-7c9d8f6b5-x2k4z", "trainer-1", "notebook-alice"} {
		fmt.Println(pod, "->", WorkloadOfPod(pod))
	}
	// Output:
	// checkout-7c9d8f6b5-x2k4z -> checkout
	// trainer-1 -> trainer
	// notebook-alice -> notebook-alice
}

func TestCatalogExprModelServers(t *testing.T) {
	t.Parallel()
	c := DefaultCatalog()
	const mapped = `, "ebb_workload", "$1", "pod", "(.*)"), "ebb_workload", "$1", "pod", "(.*[^-])-(?:0|[1-9][0-9]*)"), ` +
		`"ebb_workload", "$1", "pod", "(.*[^-])-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}")`
	f := func(shape Shape, want string) {
		t.Helper()
		got := mustExpr(t, c, shape)
		if got != want {
			t.Errorf("Expr(%v)\n got %s\nwant %s", shape, got, want)
		}
	}
	f(Shape{Signal: SignalQueue, Server: ServerVLLM, Window: time.Minute},
		`sum by (namespace, ebb_workload) (label_replace(label_replace(label_replace(`+
			`sum by (namespace, pod) (avg_over_time(vllm:num_requests_waiting[1m]))`+mapped+`)`)
	f(Shape{Signal: SignalRunning, Server: ServerTGI, Window: 30 * time.Second},
		`sum by (namespace, ebb_workload) (label_replace(label_replace(label_replace(`+
			`sum by (namespace, pod) (avg_over_time(tgi_batch_current_size[30s]))`+mapped+`)`)
	// vLLM's new KV-cache name is preferred over the old one, pod by pod.
	f(Shape{Signal: SignalKVCache, Server: ServerVLLM, Window: time.Minute},
		`sum by (namespace, ebb_workload) (label_replace(label_replace(label_replace(`+
			`avg by (namespace, pod) (avg_over_time(vllm:kv_cache_usage_perc[1m])) * 100 or `+
			`avg by (namespace, pod) (avg_over_time(vllm:gpu_cache_usage_perc[1m])) * 100`+mapped+`)`)
	// auto: every server's names in one query.
	f(Shape{Signal: SignalQueue, Server: ServerAuto, Window: time.Minute},
		`sum by (namespace, ebb_workload) (label_replace(label_replace(label_replace(`+
			`sum by (namespace, pod) (avg_over_time(vllm:num_requests_waiting[1m])) or `+
			`sum by (namespace, pod) (avg_over_time(tgi_queue_size[1m])) or `+
			`sum by (namespace, pod) (avg_over_time(sglang:num_queue_reqs[1m])) or `+
			`sum by (namespace, pod) (avg_over_time(nv_inference_pending_request_count[1m])) or `+
			`sum by (namespace, pod) (avg_over_time(nv_trt_llm_request_metrics{request_type="waiting"}[1m]))`+mapped+`)`)
	sec := `sum by (namespace, ebb_workload, le) (label_replace(label_replace(label_replace(` +
		`rate(vllm:time_to_first_token_seconds_bucket[5m]) or rate(sglang:time_to_first_token_seconds_bucket[5m])` + mapped + `)`
	ms := `sum by (namespace, ebb_workload, le) (label_replace(label_replace(label_replace(` +
		`rate(nv_inference_first_response_histogram_ms_bucket[5m])` + mapped + `)`
	f(Shape{Signal: SignalTTFT, Server: ServerAuto, Window: 5 * time.Minute, Quantile: 0.95},
		`histogram_quantile(0.95, `+sec+`) >= 0 or histogram_quantile(0.95, `+ms+`) * 0.001 >= 0 or `+
			`max by (namespace, ebb_workload) (`+sec+`) * 0 or max by (namespace, ebb_workload) (`+ms+`) * 0`)

	// Every signal and server parses as MetricsQL.
	for _, sig := range []Signal{SignalQueue, SignalRunning, SignalKVCache, SignalTTFT} {
		for _, srv := range Servers {
			e, err := c.Expr(Shape{Signal: sig, Server: srv, Window: time.Minute, Quantile: 0.5})
			if err != nil {
				continue // checked in TestCatalogExprErrors
			}
			if _, err := metricsql.Parse(e); err != nil {
				t.Errorf("%s/%s does not parse: %v\n%s", sig, srv, err, e)
			}
		}
	}
}

func TestCatalogExprModelServerErrors(t *testing.T) {
	t.Parallel()
	c := DefaultCatalog()
	f := func(shape Shape, want string) {
		t.Helper()
		_, err := c.Expr(shape)
		if err == nil || err.Error() != want {
			t.Errorf("Expr(%+v) error = %v, want %q", shape, err, want)
		}
	}
	f(Shape{Signal: SignalQueue, Server: "ollama", Window: time.Minute}, `queue: unknown server "ollama", want auto, vllm, tgi, sglang or triton`)
	f(Shape{Signal: SignalQueue, Window: time.Minute}, `queue: unknown server "", want auto, vllm, tgi, sglang or triton`)
	f(Shape{Signal: SignalKVCache, Server: ServerTGI, Window: time.Minute}, "kvcache: server tgi exposes no metric for it")
	f(Shape{Signal: SignalTTFT, Server: ServerTGI, Window: time.Minute, Quantile: 0.9}, "ttft: server tgi exposes no metric for it")
	f(Shape{Signal: SignalTTFT, Server: ServerAuto, Window: time.Minute, Quantile: 1}, "ttft: quantile = 1, must be in (0, 1)")
	f(Shape{Signal: SignalTTFT, Server: ServerAuto, Window: time.Minute}, "ttft: quantile = 0, must be in (0, 1)")
	f(Shape{Signal: SignalRunning, Server: ServerAuto}, "running: window = 0s, must be a positive whole number of milliseconds")
}

func TestParseSignalAndServer(t *testing.T) {
	t.Parallel()
	for _, s := range Signals {
		if got, err := ParseSignal(string(s)); err != nil || got != s {
			t.Errorf("ParseSignal(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseSignal("cpu"); err == nil || err.Error() != `unknown signal "cpu", want requests, gpu, query, queue, running, kvcache or ttft` {
		t.Errorf("ParseSignal(cpu) error = %v", err)
	}
	for _, s := range Servers {
		if got, err := ParseServer(string(s)); err != nil || got != s {
			t.Errorf("ParseServer(%q) = %q, %v", s, got, err)
		}
	}
}

func TestShapeStringModelServers(t *testing.T) {
	t.Parallel()
	f := func(s Shape, want string) {
		t.Helper()
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	f(Shape{Signal: SignalQueue, Server: ServerAuto, Window: time.Minute}, "queue:auto[1m]")
	f(Shape{Signal: SignalTTFT, Server: ServerVLLM, Window: 5 * time.Minute, Quantile: 0.99}, "ttft:vllm:0.99[5m]")
	f(Shape{Signal: SignalGPU, Window: time.Minute}, "gpu[1m]")
}

// modelServerTable renders the README's table of the metric names each
// model server is read from.
func modelServerTable() string {
	var b strings.Builder
	b.WriteString("| server | `queue` | `running` | `kvcache` (ratio × 100) | `ttft` histogram |\n| --- | --- | --- | --- | --- |\n")
	cell := func(names []string) string {
		if len(names) == 0 {
			return "—"
		}
		q := make([]string, len(names))
		for i, n := range names {
			q[i] = "`" + n + "`"
		}
		return strings.Join(q, ", then ")
	}
	for _, s := range ModelServers() {
		ttft := "—"
		if s.TTFTBuckets != "" {
			ttft = "`" + s.TTFTBuckets + "`"
			if s.TTFTUnit != 1 {
				ttft += " (ms, ÷ 1000)"
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Server, cell(s.Queue), cell(s.Running), cell(s.KVCache), ttft)
	}
	return b.String()
}

// TestModelServerTableInREADME fails when the README's table of model
// servers' metric names differs from the names the catalog reads.
func TestModelServerTableInREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := modelServerTable()
	if !strings.Contains(string(readme), "\n\n"+want+"\n") {
		t.Errorf("README.md lacks the model servers' metric table, or it differs from queries/modelserver.go; it should read:\n%s", want)
	}
}
