package autopilot

import (
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"

	"github.com/ebbscale/ebb/queries"
)

func TestHistoryCatalogExprDefault(t *testing.T) {
	t.Parallel()
	c := DefaultHistoryCatalog()
	const gpuBy = "(namespace, pod, exported_namespace, exported_pod, gpu, modelName)"
	f := func(m HistoryMetric, ns, want string) {
		t.Helper()
		got, err := c.Expr(m, ns, 5*time.Minute)
		if err != nil {
			t.Fatalf("Expr(%s, %q): %v", m, ns, err)
		}
		if got != want {
			t.Errorf("Expr(%s, %q)\n got %s\nwant %s", m, ns, got, want)
		}
		if _, err := metricsql.Parse(got); err != nil {
			t.Errorf("Expr(%s, %q) does not parse: %v", m, ns, err)
		}
	}
	f(HistoryRequests, "shop", `max by (namespace, pod, container, resource) (kube_pod_container_resource_requests{resource=~"cpu|memory|nvidia.com/gpu",namespace="shop"})`)
	f(HistoryLimits, "", `max by (namespace, pod, container, resource) (kube_pod_container_resource_limits{resource=~"cpu|memory|nvidia.com/gpu"})`)
	f(HistoryFramebufferSize, "", "max by "+gpuBy+" (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)")
	f(HistoryCPU, "shop", `sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",namespace="shop"}[5m]))`)
	f(HistoryCPU, "", `sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[5m]))`)
	f(HistoryMemory, "shop", `max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{container!="",container!="POD",namespace="shop"}[5m]))`)
	f(HistoryOOMKills, "shop", `max by (namespace, pod, container) (max_over_time(kube_pod_container_status_last_terminated_reason{reason="OOMKilled",namespace="shop"}[5m]))`)
	rate, err := c.Signals.Expr(queries.Shape{Signal: queries.SignalRequests, Window: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f(HistoryRequestRate, "", rate)
	rate1m, err := c.Signals.Expr(queries.Shape{Signal: queries.SignalRequests, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f(HistoryRequestPeak, "", "max_over_time(("+rate1m+")[4m:1m])")
	if got, err := c.Expr(HistoryRequestPeak, "", time.Minute); err != nil || got != rate1m {
		t.Errorf("Expr(request peak, 1m) = %s, %v; want the 1-minute rate %s", got, err, rate1m)
	}
	f(HistoryGPUUtil, "", "max by "+gpuBy+" ((avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[5m]) * 100) or avg_over_time(DCGM_FI_DEV_GPU_UTIL[5m]))")
	f(HistoryFramebufferUsed, "", "max by "+gpuBy+" (max_over_time(DCGM_FI_DEV_FB_USED[5m]))")
	f(HistoryKVCache, "llm", `max by (namespace, pod) (max_over_time(vllm:kv_cache_usage_perc{namespace="llm"}[5m]) or max_over_time(vllm:gpu_cache_usage_perc{namespace="llm"}[5m]))`)
	f(HistoryKVCache, "", `max by (namespace, pod) (max_over_time(vllm:kv_cache_usage_perc[5m]) or max_over_time(vllm:gpu_cache_usage_perc[5m]))`)
	f(HistoryRequestsWaiting, "llm", `max by (namespace, pod) (max_over_time(vllm:num_requests_waiting{namespace="llm"}[5m]))`)
	f(HistoryReplicas, "shop", `max by (namespace, workload) (`+
		`label_replace(max_over_time(kube_deployment_status_replicas{namespace="shop"}[5m]), "workload", "$1", "deployment", "(.+)") or `+
		`label_replace(max_over_time(kube_statefulset_status_replicas{namespace="shop"}[5m]), "workload", "$1", "statefulset", "(.+)"))`)
	f(HistoryOOMRestarts, "shop", `max by (namespace, pod, container) (`+
		`kube_pod_container_status_restarts_total{namespace="shop"} - kube_pod_container_status_restarts_total{namespace="shop"} offset 5m) `+
		`and on (namespace, pod, container) (max by (namespace, pod, container) (`+
		`max_over_time(kube_pod_container_status_last_terminated_reason{reason="OOMKilled",namespace="shop"}[5m])) > 0)`)
	f(HistoryTGIKVCache, "llm", `max by (namespace, pod) (max_over_time(tgi_batch_current_max_tokens{namespace="llm"}[5m])) / on (namespace, pod) `+
		`(max by (namespace, pod) (max_over_time(tgi_batch_max_total_tokens{namespace="llm"}[5m])) > 0)`)
	f(HistoryTGIQueue, "llm", `max by (namespace, pod) (max_over_time(tgi_queue_size{namespace="llm"}[5m]))`)
	f(HistoryTGIQueue, "", `max by (namespace, pod) (max_over_time(tgi_queue_size[5m]))`)
	f(HistoryActivatorWake, "llm", `label_replace(sum by (namespace, workload) (increase(ebb_activator_wake_latency_seconds_sum{namespace="llm"}[5m])), "ebb_part", "sum", "", "") or `+
		`label_replace(sum by (namespace, workload) (increase(ebb_activator_wake_latency_seconds_count{namespace="llm"}[5m])), "ebb_part", "count", "", "")`)
	f(HistoryWakes, "llm", `max by (namespace, workload, ebb_part) (`+
		`label_replace(label_replace(kube_deployment_spec_replicas{namespace="llm"} >= 1 and kube_deployment_spec_replicas{namespace="llm"} offset 5m < 1, "workload", "$1", "deployment", "(.+)"), "ebb_part", "start", "", "") or `+
		`label_replace(label_replace(kube_deployment_status_replicas_ready{namespace="llm"} >= 1 and kube_deployment_status_replicas_ready{namespace="llm"} offset 5m < 1, "workload", "$1", "deployment", "(.+)"), "ebb_part", "ready", "", "") or `+
		`label_replace(label_replace(kube_statefulset_replicas{namespace="llm"} >= 1 and kube_statefulset_replicas{namespace="llm"} offset 5m < 1, "workload", "$1", "statefulset", "(.+)"), "ebb_part", "start", "", "") or `+
		`label_replace(label_replace(kube_statefulset_status_replicas_ready{namespace="llm"} >= 1 and kube_statefulset_status_replicas_ready{namespace="llm"} offset 5m < 1, "workload", "$1", "statefulset", "(.+)"), "ebb_part", "ready", "", ""))`)

	// With an assumed capacity, pods without tgi_batch_max_total_tokens are
	// divided by it; the others still by their own.
	c.TGI.AssumedMaxBatchTotalTokens = 32000
	f(HistoryTGIKVCache, "", `(max by (namespace, pod) (max_over_time(tgi_batch_current_max_tokens[5m])) / on (namespace, pod) `+
		`(max by (namespace, pod) (max_over_time(tgi_batch_max_total_tokens[5m])) > 0)) or `+
		`(max by (namespace, pod) (max_over_time(tgi_batch_current_max_tokens[5m])) / 32000)`)
}

// Every metric and label name comes from the catalog.
func TestHistoryCatalogExprCustomNames(t *testing.T) {
	t.Parallel()
	c := DefaultHistoryCatalog()
	c.Containers = ContainerMetrics{
		CPU: "cpu_total", Memory: "mem_ws", Requests: "req", Limits: "lim", LastTerminatedReason: "term", Restarts: "restarts",
		NamespaceLabel: "ns", PodLabel: "p", ContainerLabel: "c", ResourceLabel: "r", ReasonLabel: "why",
	}
	c.GPU = GPUHistoryMetrics{FramebufferUsed: "fb_used", FramebufferFree: "fb_free", GPULabel: "idx", ModelLabel: "model"}
	c.VLLM = VLLMMetrics{KVCacheUsage: "kv", LegacyKVCacheUsage: "kv_old", RequestsWaiting: "waiting"}
	c.TGI = TGIMetrics{BatchTokens: "batch_tokens", MaxBatchTotalTokens: "capacity", QueueSize: "queue"}
	c.Workloads = WorkloadMetrics{DeploymentReplicas: "deploy_replicas", StatefulSetReplicas: "sts_replicas", DeploymentLabel: "d", StatefulSetLabel: "s",
		DeploymentSpecReplicas: "d_spec", DeploymentReady: "d_ready", StatefulSetSpecReplicas: "s_spec", StatefulSetReady: "s_ready"}
	c.Activator = ActivatorMetrics{WakeSeconds: "wake_s", NamespaceLabel: "ans", WorkloadLabel: "wl"}
	c.Signals.GPU.UtilMetric, c.Signals.GPU.ProfMetric = "util", "prof"
	c.Signals.GPU.NamespaceLabel, c.Signals.GPU.PodLabel = "gns", "gpod"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[HistoryMetric]string{
		HistoryRequests:        `max by (ns, p, c, r) (req{r=~"cpu|memory|nvidia.com/gpu",ns="a"})`,
		HistoryLimits:          `max by (ns, p, c, r) (lim{r=~"cpu|memory|nvidia.com/gpu",ns="a"})`,
		HistoryFramebufferSize: `max by (gns, gpod, exported_namespace, exported_pod, idx, model) (fb_used + fb_free)`,
		HistoryCPU:             `sum by (ns, p, c) (rate(cpu_total{c!="",c!="POD",ns="a"}[1m]))`,
		HistoryMemory:          `max by (ns, p, c) (max_over_time(mem_ws{c!="",c!="POD",ns="a"}[1m]))`,
		HistoryOOMKills:        `max by (ns, p, c) (max_over_time(term{why="OOMKilled",ns="a"}[1m]))`,
		HistoryGPUUtil:         `max by (gns, gpod, exported_namespace, exported_pod, idx, model) ((avg_over_time(prof[1m]) * 100) or avg_over_time(util[1m]))`,
		HistoryFramebufferUsed: `max by (gns, gpod, exported_namespace, exported_pod, idx, model) (max_over_time(fb_used[1m]))`,
		HistoryKVCache:         `max by (ns, p) (max_over_time(kv{ns="a"}[1m]) or max_over_time(kv_old{ns="a"}[1m]))`,
		HistoryRequestsWaiting: `max by (ns, p) (max_over_time(waiting{ns="a"}[1m]))`,
		HistoryReplicas: `max by (ns, workload) (label_replace(max_over_time(deploy_replicas{ns="a"}[1m]), "workload", "$1", "d", "(.+)") or ` +
			`label_replace(max_over_time(sts_replicas{ns="a"}[1m]), "workload", "$1", "s", "(.+)"))`,
		HistoryOOMRestarts: `max by (ns, p, c) (restarts{ns="a"} - restarts{ns="a"} offset 1m) and on (ns, p, c) (max by (ns, p, c) (max_over_time(term{why="OOMKilled",ns="a"}[1m])) > 0)`,
		HistoryTGIKVCache:  `max by (ns, p) (max_over_time(batch_tokens{ns="a"}[1m])) / on (ns, p) (max by (ns, p) (max_over_time(capacity{ns="a"}[1m])) > 0)`,
		HistoryTGIQueue:    `max by (ns, p) (max_over_time(queue{ns="a"}[1m]))`,
		HistoryActivatorWake: `label_replace(sum by (ans, wl) (increase(wake_s_sum{ans="a"}[1m])), "ebb_part", "sum", "", "") or ` +
			`label_replace(sum by (ans, wl) (increase(wake_s_count{ans="a"}[1m])), "ebb_part", "count", "", "")`,
		HistoryWakes: `max by (ns, workload, ebb_part) (` +
			`label_replace(label_replace(d_spec{ns="a"} >= 1 and d_spec{ns="a"} offset 1m < 1, "workload", "$1", "d", "(.+)"), "ebb_part", "start", "", "") or ` +
			`label_replace(label_replace(d_ready{ns="a"} >= 1 and d_ready{ns="a"} offset 1m < 1, "workload", "$1", "d", "(.+)"), "ebb_part", "ready", "", "") or ` +
			`label_replace(label_replace(s_spec{ns="a"} >= 1 and s_spec{ns="a"} offset 1m < 1, "workload", "$1", "s", "(.+)"), "ebb_part", "start", "", "") or ` +
			`label_replace(label_replace(s_ready{ns="a"} >= 1 and s_ready{ns="a"} offset 1m < 1, "workload", "$1", "s", "(.+)"), "ebb_part", "ready", "", ""))`,
	}
	for m, w := range want {
		ns := "a"
		if !m.Namespaced() {
			ns = ""
		}
		got, err := c.Expr(m, ns, time.Minute)
		if err != nil || got != w {
			t.Errorf("Expr(%s)\n got %s, %v\nwant %s", m, got, err, w)
		}
	}
	if len(want) != len(HistoryMetrics)-2 { // all but the request rate and peak, Signals' own
		t.Errorf("checked %d metrics, there are %d", len(want), len(HistoryMetrics))
	}
}

func TestHistoryCatalogExprErrors(t *testing.T) {
	t.Parallel()
	c := DefaultHistoryCatalog()
	f := func(m HistoryMetric, ns string, w time.Duration, want string) {
		t.Helper()
		if got, err := c.Expr(m, ns, w); err == nil || err.Error() != want {
			t.Errorf("Expr(%s, %q, %v) = %q, %v; want error %q", m, ns, w, got, err, want)
		}
	}
	f(HistoryGPUUtil, "ml", time.Minute, "gpu utilization: not narrowed to a namespace; filter its rows instead")
	f(HistoryRequestRate, "shop", time.Minute, "request rate: not narrowed to a namespace; filter its rows instead")
	f(HistoryRequestPeak, "shop", time.Minute, "request peak: not narrowed to a namespace; filter its rows instead")
	f(HistoryCPU, "", 0, "cpu: window = 0s, must be a positive whole number of milliseconds")
	f(HistoryMemory, "", time.Microsecond, "memory: window = 1µs, must be a positive whole number of milliseconds")
	f(HistoryMetric(0), "", time.Minute, "unknown history metric 0")
	f(HistoryMetric(99), "", time.Minute, "unknown history metric 99")
}

// A namespace is quoted, never spliced: nothing in it can leave the string.
func TestHistoryCatalogQuotesNamespace(t *testing.T) {
	t.Parallel()
	got, err := DefaultHistoryCatalog().Expr(HistoryMemory, `x"}) or vector(1) #`, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := `namespace="x\"}) or vector(1) #"`; !strings.Contains(got, want) {
		t.Errorf("%s does not hold the quoted namespace %s", got, want)
	}
	if _, err := metricsql.Parse(got); err != nil {
		t.Errorf("%s: %v", got, err)
	}
}

func TestHistoryMetricNames(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, m := range HistoryMetrics {
		s := m.String()
		if strings.HasPrefix(s, "history metric") || seen[s] {
			t.Errorf("%d: name %q missing or repeated", int(m), s)
		}
		seen[s] = true
	}
	// every constant has its entry in the table, once
	if len(HistoryMetrics) != int(HistoryWakes) {
		t.Errorf("HistoryMetrics lists %d metrics, there are %d constants", len(HistoryMetrics), int(HistoryWakes))
	}
	for m := HistoryRequests; m <= HistoryWakes; m++ {
		if _, ok := m.lookup(); !ok {
			t.Errorf("%d: no entry in historyMetrics", int(m))
		}
	}
	if got := HistoryMetric(42).String(); got != "history metric 42" {
		t.Errorf("unknown metric: %q", got)
	}
}

func TestHistoryCatalogValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultHistoryCatalog().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	c := DefaultHistoryCatalog()
	c.Containers.CPU = ""
	c.Containers.PodLabel = "pod-name"
	c.VLLM.KVCacheUsage = "vllm kv"
	c.Signals.GPU.UtilMetric = ""
	c.Containers.Restarts = ""
	c.TGI.BatchTokens = "tgi batch"
	c.TGI.QueueSize = ""
	c.TGI.AssumedMaxBatchTotalTokens = -1
	c.Workloads.StatefulSetReplicas = "kube_statefulset_status_replicas{}"
	c.Workloads.DeploymentLabel = "0deployment"
	c.Workloads.StatefulSetReady = ""
	c.Activator.WakeSeconds = "ebb-wake"
	want := "gpu.util_metric: empty\n" +
		"containers.cpu: empty\n" +
		"containers.restarts: empty\n" +
		`containers.pod_label: "pod-name" is not a valid label name` + "\n" +
		`vllm.kv_cache_usage: "vllm kv" is not a valid metric name` + "\n" +
		`tgi.batch_tokens: "tgi batch" is not a valid metric name` + "\n" +
		"tgi.queue_size: empty\n" +
		"tgi.assumed_max_batch_total_tokens: -1, must be 0 (none) or positive\n" +
		`workloads.statefulset_replicas: "kube_statefulset_status_replicas{}" is not a valid metric name` + "\n" +
		`workloads.deployment_label: "0deployment" is not a valid label name` + "\n" +
		"workloads.statefulset_ready: empty\n" +
		`activator.wake_seconds: "ebb-wake" is not a valid metric name`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
