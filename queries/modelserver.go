package queries

import (
	"strconv"
	"strings"
)

// ModelServerConfig names the labels that place a model server's series in
// a pod. Model servers label their metrics with the model (and vLLM with
// the engine), never with the pod: the pod comes from the scrape target, as
// a PodMonitor or ServiceMonitor of kube-prometheus-stack writes it.
type ModelServerConfig struct {
	// NamespaceLabel and PodLabel place the series: "namespace" and "pod".
	NamespaceLabel string
	PodLabel       string
}

// ModelServerWorkloadLabel is the label the model-server queries give each
// row: the workload's name, derived from the pod's name in the query (see
// workloadOfPodExpr), beside ModelServerConfig.NamespaceLabel.
const ModelServerWorkloadLabel = "ebb_workload"

// ServerMetrics is what one kind of model server exposes for the
// model-server signals. A selector list is in order of preference: a pod
// that exposes two of them (a release that writes both an old and a new
// name) is read from the first. An empty list means the server does not
// expose the quantity, and its workloads have no value for that signal.
type ServerMetrics struct {
	Server Server
	// Queue and Running are gauges of requests waiting and in progress.
	Queue, Running []string
	// KVCache is a gauge of KV-cache usage as a ratio from 0 to 1.
	KVCache []string
	// TTFTBuckets is the _bucket series of a time-to-first-token histogram
	// whose bounds (le) are in TTFTUnit seconds: 1 for seconds, 0.001 for
	// milliseconds. Empty when the server has none.
	TTFTBuckets string
	TTFTUnit    float64
}

// modelServers are the metric names of each server kind, checked against
// each project's own source:
//
//   - vLLM, vllm/v1/metrics/loggers.py (PrometheusStatLogger; labels
//     model_name and engine): vllm:num_requests_waiting,
//     vllm:num_requests_running, vllm:time_to_first_token_seconds (seconds).
//     KV-cache usage is vllm:gpu_cache_usage_perc up to v0.10, deprecated
//     there in favour of vllm:kv_cache_usage_perc (v0.10 writes both, with
//     the same labels and value; v0.11 hides the old name). Both are ratios
//     ("1 means 100 percent usage"), not percent.
//   - Hugging Face TGI 2.x-3.x, router/src (docs/source/reference/metrics.md;
//     no labels): tgi_queue_size, tgi_batch_current_size. TGI exposes no
//     KV-cache gauge and no time-to-first-token histogram.
//   - SGLang, python/sglang/srt/metrics/collector.py (v0.4-v0.5; label
//     model_name): sglang:num_queue_reqs, sglang:num_running_reqs,
//     sglang:token_usage (a ratio of the KV pool's tokens in use),
//     sglang:time_to_first_token_seconds (seconds).
//   - NVIDIA Triton (docs/user_guide/metrics.md, r24.04; labels model and
//     version): nv_inference_pending_request_count, the requests queued in
//     the server; nv_inference_first_response_histogram_ms, the time to the
//     first response of a decoupled (streaming) model, in milliseconds, when
//     histograms are enabled (--metrics-config histogram_latencies=true).
//     The TensorRT-LLM backend's custom metrics
//     (inflight_batcher_llm/src/custom_metrics_reporter): requests in flight
//     are nv_trt_llm_request_metrics{request_type="active"}, and KV-cache
//     usage nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}
//     (a ratio). Its own waiting count,
//     nv_trt_llm_request_metrics{request_type="waiting"}, is read for queue
//     where nv_inference_pending_request_count is absent.
var modelServers = []ServerMetrics{
	{
		Server:      ServerVLLM,
		Queue:       []string{"vllm:num_requests_waiting"},
		Running:     []string{"vllm:num_requests_running"},
		KVCache:     []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
		TTFTBuckets: "vllm:time_to_first_token_seconds_bucket", TTFTUnit: 1,
	},
	{
		Server:  ServerTGI,
		Queue:   []string{"tgi_queue_size"},
		Running: []string{"tgi_batch_current_size"},
	},
	{
		Server:      ServerSGLang,
		Queue:       []string{"sglang:num_queue_reqs"},
		Running:     []string{"sglang:num_running_reqs"},
		KVCache:     []string{"sglang:token_usage"},
		TTFTBuckets: "sglang:time_to_first_token_seconds_bucket", TTFTUnit: 1,
	},
	{
		Server:      ServerTriton,
		Queue:       []string{"nv_inference_pending_request_count", `nv_trt_llm_request_metrics{request_type="waiting"}`},
		Running:     []string{`nv_trt_llm_request_metrics{request_type="active"}`},
		KVCache:     []string{`nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}`},
		TTFTBuckets: "nv_inference_first_response_histogram_ms_bucket", TTFTUnit: 0.001,
	},
}

// ModelServers returns the metric names ebb reads for each server kind, in
// the order of Servers after auto.
func ModelServers() []ServerMetrics {
	out := make([]ServerMetrics, len(modelServers))
	copy(out, modelServers)
	return out
}

// serversFor returns the server kinds a shape reads: all for auto.
func serversFor(s Server) []ServerMetrics {
	if s == ServerAuto || s == "" {
		return modelServers
	}
	for i := range modelServers {
		if modelServers[i].Server == s {
			return modelServers[i : i+1]
		}
	}
	return nil
}

// The safe alphabet of Kubernetes' generated names, as WorkloadOfPod uses
// it, as a regular-expression class.
const safeClass = "[bcdfghjklmnpqrstvwxz2456789]"

// workloadOfPodExpr wraps e, whose rows carry the pod label, in the three
// label_replace calls that give each row the ModelServerWorkloadLabel that
// WorkloadOfPod gives its pod: first the pod's name unchanged, then
// "<name>" for "<name>-<ordinal>", then "<name>" for
// "<name>-<hash>-<suffix>" (so a Deployment's pod wins, as in
// WorkloadOfPod). Prometheus anchors label_replace's regular expressions.
func (c Catalog) workloadOfPodExpr(e string) string {
	pod := strconv.Quote(c.ModelServers.PodLabel)
	dst := strconv.Quote(ModelServerWorkloadLabel)
	return "label_replace(label_replace(label_replace(" + e + ", " +
		dst + `, "$1", ` + pod + `, "(.*)"), ` +
		dst + `, "$1", ` + pod + `, "(.*[^-])-(?:0|[1-9][0-9]*)"), ` +
		dst + `, "$1", ` + pod + `, "(.*[^-])-` + safeClass + "{6,10}-" + safeClass + `{5}")`
}

// modelServerExpr returns the query of a model-server shape, or "" when
// none of the shape's servers exposes the signal. w is the "[1m]" range.
//
// queue and running, with the default names, server vllm and a 1m window:
//
//	sum by (namespace, ebb_workload) (<workloadOfPodExpr>(
//	  sum by (namespace, pod) (avg_over_time(vllm:num_requests_waiting[1m]))))
//
// With server auto the inner term is every server's terms joined by "or",
// one per metric name: a pod is read from the first name it has. kvcache
// takes each pod's mean over its series (engines), × 100, then sums the pods:
//
//	sum by (namespace, ebb_workload) (<workloadOfPodExpr>(
//	  avg by (namespace, pod) (avg_over_time(vllm:kv_cache_usage_perc[1m])) * 100
//	  or avg by (namespace, pod) (avg_over_time(vllm:gpu_cache_usage_perc[1m])) * 100))
//
// ttft adds up the bucket rates of the workload's pods and takes the
// quantile; a workload whose histograms had no request in the window is
// 0 (no traffic), not absent, and histograms in milliseconds are their own
// sum (their bounds differ), divided by 1000:
//
//	histogram_quantile(0.9, B) >= 0 or max by (namespace, ebb_workload) (B) * 0
//	B = sum by (namespace, ebb_workload, le) (<workloadOfPodExpr>(
//	      rate(vllm:time_to_first_token_seconds_bucket[5m])))
func (c Catalog) modelServerExpr(shape Shape, w string) string {
	ms := c.ModelServers
	byPod := "(" + ms.NamespaceLabel + ", " + ms.PodLabel + ")"
	byWorkload := "(" + ms.NamespaceLabel + ", " + ModelServerWorkloadLabel + ")"
	servers := serversFor(shape.Server)

	if shape.Signal == SignalTTFT {
		// One group of bucket series per unit: bounds in seconds and in
		// milliseconds must not be added up.
		var units []float64
		groups := map[float64][]string{}
		for _, s := range servers {
			if s.TTFTBuckets == "" {
				continue
			}
			if _, ok := groups[s.TTFTUnit]; !ok {
				units = append(units, s.TTFTUnit)
			}
			groups[s.TTFTUnit] = append(groups[s.TTFTUnit], "rate("+s.TTFTBuckets+w+")")
		}
		q := strconv.FormatFloat(shape.Quantile, 'g', -1, 64)
		var quantiles, zeros []string
		for _, u := range units {
			b := "sum by (" + ms.NamespaceLabel + ", " + ModelServerWorkloadLabel + ", le) (" +
				c.workloadOfPodExpr(strings.Join(groups[u], " or ")) + ")"
			quant := "histogram_quantile(" + q + ", " + b + ")"
			if u != 1 {
				quant += " * " + strconv.FormatFloat(u, 'g', -1, 64)
			}
			quantiles = append(quantiles, quant+" >= 0")
			zeros = append(zeros, "max by "+byWorkload+" ("+b+") * 0")
		}
		if len(quantiles) == 0 {
			return ""
		}
		return strings.Join(append(quantiles, zeros...), " or ")
	}

	agg, scale := "sum", ""
	var pick func(ServerMetrics) []string
	switch shape.Signal {
	case SignalQueue:
		pick = func(s ServerMetrics) []string { return s.Queue }
	case SignalRunning:
		pick = func(s ServerMetrics) []string { return s.Running }
	default: // SignalKVCache
		pick = func(s ServerMetrics) []string { return s.KVCache }
		agg, scale = "avg", " * 100"
	}
	var terms []string
	for _, s := range servers {
		for _, m := range pick(s) {
			terms = append(terms, agg+" by "+byPod+" (avg_over_time("+m+w+"))"+scale)
		}
	}
	if len(terms) == 0 {
		return ""
	}
	return "sum by " + byWorkload + " (" + c.workloadOfPodExpr(strings.Join(terms, " or ")) + ")"
}

// ModelServerLabels returns the labels of a model-server query's rows: the
// namespace and the workload.
func (c Catalog) ModelServerLabels() []string {
	return []string{c.ModelServers.NamespaceLabel, ModelServerWorkloadLabel}
}
