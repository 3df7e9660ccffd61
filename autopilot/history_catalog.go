package autopilot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
)

// HistoryMetric is one metric PrometheusReader reads over the workloads'
// history for rightsizing. (Not to be confused with queries.LastActive, the
// look back that recovers idle clocks after a restart.)
type HistoryMetric int

// The metrics of a history read; historyMetrics says how each is queried
// and fed into a History.
const (
	// HistoryRequests and HistoryLimits are containers' current CPU, memory
	// and nvidia.com/gpu requests and limits (kube-state-metrics).
	HistoryRequests HistoryMetric = iota + 1
	HistoryLimits
	// HistoryFramebufferSize is each GPU's framebuffer, used + free, in MiB.
	HistoryFramebufferSize
	// HistoryCPU is each container's CPU usage in cores (cAdvisor).
	HistoryCPU
	// HistoryMemory is each container's highest working set in the window,
	// in bytes (cAdvisor).
	HistoryMemory
	// HistoryOOMKills is 1 while a container's last termination was an OOM
	// kill within the window, else 0 or absent (kube-state-metrics).
	HistoryOOMKills
	// HistoryRequestRate is each workload's request rate (Istio), as the
	// requests signal.
	HistoryRequestRate
	// HistoryGPUUtil is each GPU's mean utilization in the window, percent:
	// the graphics engine activity where the GPU reports it, else
	// DCGM_FI_DEV_GPU_UTIL.
	HistoryGPUUtil
	// HistoryFramebufferUsed is each GPU's highest framebuffer in use in the
	// window, MiB.
	HistoryFramebufferUsed
	// HistoryKVCache is each vLLM pod's highest KV-cache usage in the
	// window, 0 to 1.
	HistoryKVCache
	// HistoryRequestsWaiting is each vLLM pod's longest queue in the window.
	HistoryRequestsWaiting
	// HistoryReplicas is each Deployment's and StatefulSet's highest
	// replicas in the window (kube-state-metrics), one row per workload
	// labelled NamespaceLabel and HistoryWorkloadLabel.
	HistoryReplicas
	// HistoryOOMRestarts is how much each container's restart counter grew
	// in the window while its last termination was an OOM kill
	// (kube-state-metrics): its OOM kills in the window. Its window is the
	// step, so that the windows tile the history.
	HistoryOOMRestarts
	// HistoryTGIKVCache is each text-generation-inference pod's highest
	// KV-cache usage in the window, 0 to 1: the tokens its running batch
	// holds (tgi_batch_current_max_tokens) over its max batch total tokens
	// (tgi_batch_max_total_tokens, else TGIMetrics.AssumedMaxBatchTotalTokens).
	HistoryTGIKVCache
	// HistoryTGIQueue is each text-generation-inference pod's longest queue
	// in the window (tgi_queue_size).
	HistoryTGIQueue
	// HistoryRequestPeak is each workload's highest 1-minute request rate
	// in the window (Istio): the requests signal over 1m, evaluated at
	// each whole minute of the window: the bursts that size maxReplicas.
	HistoryRequestPeak
	// HistoryActivatorWake is each workload's wake time as ebb's activator
	// measured it over the whole history: the growth of
	// ebb_activator_wake_latency_seconds' _sum and _count in each window,
	// two rows per workload labelled HistoryPartLabel "sum" and "count".
	// PrometheusReader reads it in windows of at most a day that tile the
	// history, and adds them up.
	HistoryActivatorWake
	// HistoryWakes is when each Deployment's and StatefulSet's desired
	// replicas rose from 0 (HistoryPartLabel "start") and when its ready
	// replicas rose from 0 ("ready"), kube-state-metrics, read once over
	// the last WakeWindow at WakeStep: the wakes from zero and how long
	// each took.
	HistoryWakes
)

// HistoryPartLabel tells the rows of one workload in HistoryActivatorWake's
// and HistoryWakes' answers apart.
const HistoryPartLabel = "ebb_part"

// HistoryWorkloadLabel is the label HistoryReplicas' rows name their
// Deployment or StatefulSet with.
const HistoryWorkloadLabel = "workload"

// historyMetric is everything about one HistoryMetric: its name, its
// PromQL, and what a row of its answer adds to a History. Adding a metric
// is a constant above and an entry in historyMetrics.
type historyMetric struct {
	metric HistoryMetric
	name   string
	// namespaced: Expr narrows the metric to a namespace. The request rate
	// and the GPU metrics are not: their namespace is in a label that
	// differs from row to row (the destination Service's, dcgm-exporter's
	// exported_namespace), so feed filters their rows.
	namespaced bool
	// atEnd: read once, at the end of the history, rather than at every
	// step.
	atEnd bool
	// stepWindow: the window is the step, so that the windows tile the
	// history (a counter's growth, counted once).
	stepWindow bool
	// wholeHistory: read once, in windows of at most a day that tile the
	// history (wholeHistoryTiles), each window a step: a window of the
	// whole history would load all its samples at once, past Prometheus'
	// --query.max-samples on a large fleet.
	wholeHistory bool
	// wakes: read once over the last WakeWindow at WakeStep (or the
	// history's step where finer), its window the step.
	wakes bool
	expr  func(e historyExpr) (string, error)
	feed  func(r *historyRows, h *History, s promapi.Series)
}

// historyMetrics lists every metric in the order PrometheusReader reads
// them: those atEnd first, then the replicas before the request rate, for
// the backtest takes the replicas of each request-rate sample's time.
var historyMetrics = []historyMetric{
	{metric: HistoryRequests, name: "requests", namespaced: true, atEnd: true,
		expr: func(e historyExpr) (string, error) { return e.resources(e.c.Containers.Requests), nil },
		feed: func(r *historyRows, h *History, s promapi.Series) { r.resource(s, true) }},
	{metric: HistoryLimits, name: "limits", namespaced: true, atEnd: true,
		expr: func(e historyExpr) (string, error) { return e.resources(e.c.Containers.Limits), nil },
		feed: func(r *historyRows, h *History, s promapi.Series) { r.resource(s, false) }},
	{metric: HistoryFramebufferSize, name: "gpu framebuffer size", atEnd: true,
		expr: func(e historyExpr) (string, error) {
			g := e.c.GPU
			return "max by " + e.byGPU + " (" + g.FramebufferUsed + " + " + g.FramebufferFree + ")", nil
		},
		feed: func(r *historyRows, h *History, s promapi.Series) {
			if ref, ok := r.gpu(s.Labels); ok && len(s.Points) > 0 {
				h.Framebuffer(ref, s.Points[0].T, 0, s.Points[len(s.Points)-1].V)
			}
		}},
	{metric: HistoryCPU, name: "cpu", namespaced: true,
		expr: func(e historyExpr) (string, error) {
			return "sum by " + e.byContainer + " (rate(" + e.sel(e.c.Containers.CPU, e.realContainer...) + e.window + "))", nil
		},
		feed: perContainer(func(h *History, ref ContainerRef, p promapi.Point) { h.CPU(ref, p.T, p.V) })},
	{metric: HistoryMemory, name: "memory", namespaced: true,
		expr: func(e historyExpr) (string, error) {
			return "max by " + e.byContainer + " (max_over_time(" + e.sel(e.c.Containers.Memory, e.realContainer...) + e.window + "))", nil
		},
		feed: perContainer(func(h *History, ref ContainerRef, p promapi.Point) { h.Memory(ref, p.T, p.V) })},
	{metric: HistoryOOMKills, name: "oom kills", namespaced: true,
		expr: func(e historyExpr) (string, error) {
			return "max by " + e.byContainer + " (" + e.oomKilled() + ")", nil
		},
		feed: perContainer(func(h *History, ref ContainerRef, p promapi.Point) { h.OOMKilled(ref, p.T, p.V > 0) })},
	// The counter's value at the end of the window less its value one
	// window earlier, not increase(), which extrapolates.
	{metric: HistoryOOMRestarts, name: "oom restarts", namespaced: true, stepWindow: true,
		expr: func(e historyExpr) (string, error) {
			restarts := e.sel(e.c.Containers.Restarts)
			return "max by " + e.byContainer + " (" + restarts + " - " + restarts + " offset " + queries.FormatWindow(e.w) + ")" +
				" and on " + e.byContainer + " (max by " + e.byContainer + " (" + e.oomKilled() + ") > 0)", nil
		},
		feed: perContainer(func(h *History, ref ContainerRef, p promapi.Point) { h.OOMRestarts(ref, p.T, p.V) })},
	{metric: HistoryReplicas, name: "replicas", namespaced: true,
		expr: func(e historyExpr) (string, error) {
			wl := e.c.Workloads
			kind := func(metric, label string) string {
				return "label_replace(max_over_time(" + e.sel(metric) + e.window + "), " +
					strconv.Quote(HistoryWorkloadLabel) + `, "$1", ` + strconv.Quote(label) + `, "(.+)")`
			}
			return "max by (" + e.c.Containers.NamespaceLabel + ", " + HistoryWorkloadLabel + ") (" +
				kind(wl.DeploymentReplicas, wl.DeploymentLabel) + " or " + kind(wl.StatefulSetReplicas, wl.StatefulSetLabel) + ")", nil
		},
		feed: func(r *historyRows, h *History, s promapi.Series) {
			ns, name := s.Labels[r.cat.Containers.NamespaceLabel], s.Labels[HistoryWorkloadLabel]
			if ns == "" || name == "" {
				return
			}
			for _, p := range s.Points {
				h.Replicas(queries.WorkloadKey{Namespace: ns, Name: name}, p.T, p.V)
			}
		}},
	{metric: HistoryActivatorWake, name: "activator wake", namespaced: true, atEnd: true, wholeHistory: true,
		expr: func(e historyExpr) (string, error) {
			a := e.c.Activator
			by := "(" + a.NamespaceLabel + ", " + a.WorkloadLabel + ")"
			var ms []string
			if e.ns != "" {
				ms = append(ms, a.NamespaceLabel+"="+strconv.Quote(e.ns))
			}
			part := func(suffix string) string {
				return "label_replace(sum by " + by + " (increase(" + e.selWith(a.WakeSeconds+suffix, ms) + e.window + ")), " +
					strconv.Quote(HistoryPartLabel) + ", " + strconv.Quote(suffix[1:]) + `, "", "")`
			}
			return part("_sum") + " or " + part("_count"), nil
		},
		feed: func(r *historyRows, h *History, s promapi.Series) {
			a := r.cat.Activator
			ns, name := s.Labels[a.NamespaceLabel], s.Labels[a.WorkloadLabel]
			if ns == "" || name == "" || len(s.Points) == 0 {
				return
			}
			k := queries.WorkloadKey{Namespace: ns, Name: name}
			parts := r.activator[k]
			v := 0.0
			for _, p := range s.Points {
				v += p.V
			}
			switch s.Labels[HistoryPartLabel] {
			case "sum":
				parts[0] = v
			case "count":
				parts[1] = v
			}
			r.activator[k] = parts
		}},
	{metric: HistoryWakes, name: "wakes", namespaced: true, wakes: true,
		expr: func(e historyExpr) (string, error) {
			wl := e.c.Workloads
			off := " offset " + queries.FormatWindow(e.w)
			rise := func(metric, label, part string) string {
				x := e.sel(metric)
				return "label_replace(label_replace(" + x + " >= 1 and " + x + off + " < 1, " +
					strconv.Quote(HistoryWorkloadLabel) + `, "$1", ` + strconv.Quote(label) + `, "(.+)"), ` +
					strconv.Quote(HistoryPartLabel) + ", " + strconv.Quote(part) + `, "", "")`
			}
			return "max by (" + e.c.Containers.NamespaceLabel + ", " + HistoryWorkloadLabel + ", " + HistoryPartLabel + ") (" +
				strings.Join([]string{
					rise(wl.DeploymentSpecReplicas, wl.DeploymentLabel, "start"),
					rise(wl.DeploymentReady, wl.DeploymentLabel, "ready"),
					rise(wl.StatefulSetSpecReplicas, wl.StatefulSetLabel, "start"),
					rise(wl.StatefulSetReady, wl.StatefulSetLabel, "ready"),
				}, " or ") + ")", nil
		},
		feed: func(r *historyRows, h *History, s promapi.Series) {
			ns, name := s.Labels[r.cat.Containers.NamespaceLabel], s.Labels[HistoryWorkloadLabel]
			if ns == "" || name == "" {
				return
			}
			k := queries.WorkloadKey{Namespace: ns, Name: name}
			for _, p := range s.Points {
				switch s.Labels[HistoryPartLabel] {
				case "start":
					h.WakeStart(k, p.T, r.wakeStep)
				case "ready":
					h.WakeReady(k, p.T, r.wakeStep)
				}
			}
		}},
	{metric: HistoryRequestPeak, name: "request peak",
		expr: func(e historyExpr) (string, error) {
			rate, err := e.c.Signals.Expr(queries.Shape{Signal: queries.SignalRequests, Window: time.Minute})
			if err != nil {
				return "", err
			}
			if e.w <= time.Minute {
				return rate, nil // the step's own minute
			}
			// The rates at the whole minutes of [t-w+1m, t]: the range is
			// a minute short of the window, for the minute ending at
			// t-w belongs to the step before. (Prometheus 2 and
			// VictoriaMetrics take the range's start in; Prometheus 3,
			// whose ranges are left-open, leaves the first minute out.)
			return "max_over_time((" + rate + ")[" + queries.FormatWindow(e.w-time.Minute) + ":1m])", nil
		},
		feed: func(r *historyRows, h *History, s promapi.Series) {
			rq := r.cat.Signals.Requests
			ns, name := s.Labels[rq.NamespaceLabel], s.Labels[rq.WorkloadLabel]
			if !r.inScope(ns) || name == "" {
				return
			}
			for _, p := range s.Points {
				h.RequestPeak(queries.WorkloadKey{Namespace: ns, Name: name}, p.T, p.V)
			}
		}},
	{metric: HistoryRequestRate, name: "request rate",
		expr: func(e historyExpr) (string, error) {
			return e.c.Signals.Expr(queries.Shape{Signal: queries.SignalRequests, Window: e.w})
		},
		feed: func(r *historyRows, h *History, s promapi.Series) {
			rq := r.cat.Signals.Requests
			ns, name := s.Labels[rq.NamespaceLabel], s.Labels[rq.WorkloadLabel]
			if !r.inScope(ns) || name == "" {
				return
			}
			for _, p := range s.Points {
				h.RequestRate(queries.WorkloadKey{Namespace: ns, Name: name}, p.T, p.V)
			}
		}},
	{metric: HistoryGPUUtil, name: "gpu utilization",
		expr: func(e historyExpr) (string, error) {
			g := e.c.Signals.GPU
			return "max by " + e.byGPU + " ((avg_over_time(" + g.ProfMetric + e.window + ") * 100) or avg_over_time(" + g.UtilMetric + e.window + "))", nil
		},
		feed: perGPU(func(h *History, ref GPURef, p promapi.Point) { h.GPUUtil(ref, p.T, p.V) })},
	{metric: HistoryFramebufferUsed, name: "gpu framebuffer used",
		expr: func(e historyExpr) (string, error) {
			return "max by " + e.byGPU + " (max_over_time(" + e.c.GPU.FramebufferUsed + e.window + "))", nil
		},
		feed: perGPU(func(h *History, ref GPURef, p promapi.Point) { h.Framebuffer(ref, p.T, p.V, 0) })},
	{metric: HistoryKVCache, name: "vllm kv cache", namespaced: true,
		expr: func(e historyExpr) (string, error) {
			v := e.c.VLLM
			return "max by " + e.byPod + " (max_over_time(" + e.sel(v.KVCacheUsage) + e.window + ") or max_over_time(" + e.sel(v.LegacyKVCacheUsage) + e.window + "))", nil
		},
		feed: perPod(func(h *History, w queries.WorkloadKey, p promapi.Point) { h.KVCache(w, VLLM, p.T, p.V) })},
	{metric: HistoryRequestsWaiting, name: "vllm waiting", namespaced: true,
		expr: func(e historyExpr) (string, error) { return e.maxOverTimeByPod(e.c.VLLM.RequestsWaiting), nil },
		feed: perPod(func(h *History, w queries.WorkloadKey, p promapi.Point) { h.RequestsWaiting(w, VLLM, p.T, p.V) })},
	{metric: HistoryTGIKVCache, name: "tgi kv cache", namespaced: true,
		expr: func(e historyExpr) (string, error) {
			t := e.c.TGI
			tokens := e.maxOverTimeByPod(t.BatchTokens)
			usage := tokens + " / on " + e.byPod + " (" + e.maxOverTimeByPod(t.MaxBatchTotalTokens) + " > 0)"
			if t.AssumedMaxBatchTotalTokens > 0 {
				usage = "(" + usage + ") or (" + tokens + " / " + strconv.FormatInt(t.AssumedMaxBatchTotalTokens, 10) + ")"
			}
			return usage, nil
		},
		feed: perPod(func(h *History, w queries.WorkloadKey, p promapi.Point) { h.KVCache(w, TGI, p.T, p.V) })},
	{metric: HistoryTGIQueue, name: "tgi queue", namespaced: true,
		expr: func(e historyExpr) (string, error) { return e.maxOverTimeByPod(e.c.TGI.QueueSize), nil },
		feed: perPod(func(h *History, w queries.WorkloadKey, p promapi.Point) { h.RequestsWaiting(w, TGI, p.T, p.V) })},
}

// HistoryMetrics lists every HistoryMetric, in the order PrometheusReader
// reads them.
var HistoryMetrics = func() []HistoryMetric {
	ms := make([]HistoryMetric, len(historyMetrics))
	for i, d := range historyMetrics {
		ms[i] = d.metric
	}
	return ms
}()

// lookup returns m's entry in historyMetrics.
func (m HistoryMetric) lookup() (*historyMetric, bool) {
	for i := range historyMetrics {
		if historyMetrics[i].metric == m {
			return &historyMetrics[i], true
		}
	}
	return nil, false
}

// String names the metric in words: "cpu", "oom kills", "vllm kv cache".
func (m HistoryMetric) String() string {
	if d, ok := m.lookup(); ok {
		return d.name
	}
	return "history metric " + strconv.Itoa(int(m))
}

// Namespaced reports whether HistoryCatalog.Expr narrows the metric to a
// namespace. The request rate and the GPU metrics are not narrowed: their
// namespace is in a label that differs from row to row (the destination
// Service's, dcgm-exporter's exported_namespace), so the caller filters
// their rows.
func (m HistoryMetric) Namespaced() bool {
	d, ok := m.lookup()
	return ok && d.namespaced
}

// HistoryCatalog turns the metrics of a history read into PromQL, one query
// per metric and namespace that answers for every container, pod or GPU in
// it. Its metric and label names are configurable, as queries.Catalog's are.
type HistoryCatalog struct {
	// Signals names Istio's request counter and dcgm-exporter's utilization
	// metrics and the labels that place a GPU in a pod.
	Signals queries.Catalog
	// Containers names cAdvisor's and kube-state-metrics' metrics and the
	// labels that place a container; vLLM's series carry the same
	// namespace and pod labels.
	Containers ContainerMetrics
	// GPU names dcgm-exporter's framebuffer metrics and the labels of one GPU.
	GPU GPUHistoryMetrics
	// VLLM names vLLM's metrics.
	VLLM VLLMMetrics
	// TGI names Hugging Face text-generation-inference's metrics; its
	// series carry the same namespace and pod labels.
	TGI TGIMetrics
	// Workloads names kube-state-metrics' replicas of Deployments and
	// StatefulSets; they carry Containers.NamespaceLabel.
	Workloads WorkloadMetrics
	// Activator names ebb's activator's wake-time histogram.
	Activator ActivatorMetrics
}

// ActivatorMetrics names ebb's activator's wake-time histogram and its
// labels.
type ActivatorMetrics struct {
	// WakeSeconds is the histogram "ebb_activator_wake_latency_seconds":
	// from a workload's first held request to the first byte of a held
	// request forwarded. Its _sum and _count are read.
	WakeSeconds string
	// NamespaceLabel and WorkloadLabel are "namespace" and "workload".
	NamespaceLabel string
	WorkloadLabel  string
}

// ContainerMetrics names the per-container metrics and their labels.
type ContainerMetrics struct {
	// CPU is the CPU time counter in seconds, "container_cpu_usage_seconds_total".
	CPU string
	// Memory is the working set in bytes, "container_memory_working_set_bytes".
	Memory string
	// Requests and Limits are "kube_pod_container_resource_requests" and
	// "kube_pod_container_resource_limits".
	Requests string
	Limits   string
	// LastTerminatedReason is "kube_pod_container_status_last_terminated_reason";
	// its ReasonLabel is "OOMKilled" after an OOM kill.
	LastTerminatedReason string
	// Restarts is the restart counter,
	// "kube_pod_container_status_restarts_total".
	Restarts string
	// The labels: "namespace", "pod", "container", "resource" and "reason".
	NamespaceLabel string
	PodLabel       string
	ContainerLabel string
	ResourceLabel  string
	ReasonLabel    string
}

// GPUHistoryMetrics names dcgm-exporter's framebuffer metrics, in MiB, and
// the labels that tell one GPU of a pod from another and name its model.
type GPUHistoryMetrics struct {
	// FramebufferUsed and FramebufferFree are "DCGM_FI_DEV_FB_USED" and
	// "DCGM_FI_DEV_FB_FREE".
	FramebufferUsed string
	FramebufferFree string
	// GPULabel is the GPU's index, "gpu"; ModelLabel its model, "modelName".
	GPULabel   string
	ModelLabel string
}

// VLLMMetrics names vLLM's metrics.
type VLLMMetrics struct {
	// KVCacheUsage is the KV-cache usage from 0 to 1,
	// "vllm:kv_cache_usage_perc"; LegacyKVCacheUsage is its name before
	// vLLM 0.10, "vllm:gpu_cache_usage_perc", read for pods without the
	// first.
	KVCacheUsage       string
	LegacyKVCacheUsage string
	// RequestsWaiting is the queue length, "vllm:num_requests_waiting".
	RequestsWaiting string
}

// TGIMetrics names the metrics of Hugging Face text-generation-inference's
// router.
type TGIMetrics struct {
	// BatchTokens is "tgi_batch_current_max_tokens": the tokens the running
	// batch holds in the KV cache (each request's input and max new
	// tokens, reserved when it joins the batch), 0 when idle.
	BatchTokens string
	// MaxBatchTotalTokens is "tgi_batch_max_total_tokens": the KV cache's
	// capacity in tokens, set once at start-up. TGI's v3 backend exports
	// it; older versions do not.
	MaxBatchTotalTokens string
	// QueueSize is "tgi_queue_size": the requests waiting for the batch.
	QueueSize string
	// AssumedMaxBatchTotalTokens, when positive, is the capacity assumed
	// for pods that do not export MaxBatchTotalTokens: the
	// --max-batch-total-tokens they run with (the max_batch_total_tokens
	// of TGI's /info). 0, the default, assumes none: such pods get no
	// KV-cache usage.
	AssumedMaxBatchTotalTokens int64
}

// WorkloadMetrics names kube-state-metrics' replicas of Deployments and
// StatefulSets and the labels that name the workload.
type WorkloadMetrics struct {
	// DeploymentReplicas and StatefulSetReplicas are
	// "kube_deployment_status_replicas" and "kube_statefulset_status_replicas".
	DeploymentReplicas  string
	StatefulSetReplicas string
	// DeploymentLabel and StatefulSetLabel are "deployment" and "statefulset".
	DeploymentLabel  string
	StatefulSetLabel string
	// DeploymentSpecReplicas and DeploymentReady are
	// "kube_deployment_spec_replicas" and
	// "kube_deployment_status_replicas_ready"; StatefulSetSpecReplicas and
	// StatefulSetReady "kube_statefulset_replicas" and
	// "kube_statefulset_status_replicas_ready": a wake from zero is the
	// desired replicas rising from 0 until the ready ones do.
	DeploymentSpecReplicas  string
	DeploymentReady         string
	StatefulSetSpecReplicas string
	StatefulSetReady        string
}

// DefaultHistoryCatalog returns the names of cAdvisor, kube-state-metrics,
// dcgm-exporter, Istio, vLLM and text-generation-inference as
// kube-prometheus-stack scrapes them.
func DefaultHistoryCatalog() HistoryCatalog {
	return HistoryCatalog{
		Signals: queries.DefaultCatalog(),
		Containers: ContainerMetrics{
			CPU:                  "container_cpu_usage_seconds_total",
			Memory:               "container_memory_working_set_bytes",
			Requests:             "kube_pod_container_resource_requests",
			Limits:               "kube_pod_container_resource_limits",
			LastTerminatedReason: "kube_pod_container_status_last_terminated_reason",
			Restarts:             "kube_pod_container_status_restarts_total",
			NamespaceLabel:       "namespace",
			PodLabel:             "pod",
			ContainerLabel:       "container",
			ResourceLabel:        "resource",
			ReasonLabel:          "reason",
		},
		GPU: GPUHistoryMetrics{
			FramebufferUsed: "DCGM_FI_DEV_FB_USED",
			FramebufferFree: "DCGM_FI_DEV_FB_FREE",
			GPULabel:        "gpu",
			ModelLabel:      "modelName",
		},
		VLLM: VLLMMetrics{
			KVCacheUsage:       "vllm:kv_cache_usage_perc",
			LegacyKVCacheUsage: "vllm:gpu_cache_usage_perc",
			RequestsWaiting:    "vllm:num_requests_waiting",
		},
		TGI: TGIMetrics{
			BatchTokens:         "tgi_batch_current_max_tokens",
			MaxBatchTotalTokens: "tgi_batch_max_total_tokens",
			QueueSize:           "tgi_queue_size",
		},
		Workloads: WorkloadMetrics{
			DeploymentReplicas:      "kube_deployment_status_replicas",
			StatefulSetReplicas:     "kube_statefulset_status_replicas",
			DeploymentLabel:         "deployment",
			StatefulSetLabel:        "statefulset",
			DeploymentSpecReplicas:  "kube_deployment_spec_replicas",
			DeploymentReady:         "kube_deployment_status_replicas_ready",
			StatefulSetSpecReplicas: "kube_statefulset_replicas",
			StatefulSetReady:        "kube_statefulset_status_replicas_ready",
		},
		Activator: ActivatorMetrics{
			WakeSeconds:    "ebb_activator_wake_latency_seconds",
			NamespaceLabel: "namespace",
			WorkloadLabel:  "workload",
		},
	}
}

// Validate reports every field that is empty or not a valid metric or label
// name, one line per field, Signals' included.
func (c HistoryCatalog) Validate() error {
	var errs []error
	if err := c.Signals.Validate(); err != nil {
		errs = append(errs, err)
	}
	field := func(name, value string, metric bool) {
		switch {
		case value == "":
			errs = append(errs, fmt.Errorf("%s: empty", name))
		case metric && !model.LegacyValidation.IsValidMetricName(value):
			errs = append(errs, fmt.Errorf("%s: %q is not a valid metric name", name, value))
		case !metric && !model.LegacyValidation.IsValidLabelName(value):
			errs = append(errs, fmt.Errorf("%s: %q is not a valid label name", name, value))
		}
	}
	k := c.Containers
	field("containers.cpu", k.CPU, true)
	field("containers.memory", k.Memory, true)
	field("containers.requests", k.Requests, true)
	field("containers.limits", k.Limits, true)
	field("containers.last_terminated_reason", k.LastTerminatedReason, true)
	field("containers.restarts", k.Restarts, true)
	field("containers.namespace_label", k.NamespaceLabel, false)
	field("containers.pod_label", k.PodLabel, false)
	field("containers.container_label", k.ContainerLabel, false)
	field("containers.resource_label", k.ResourceLabel, false)
	field("containers.reason_label", k.ReasonLabel, false)
	g := c.GPU
	field("gpu.framebuffer_used", g.FramebufferUsed, true)
	field("gpu.framebuffer_free", g.FramebufferFree, true)
	field("gpu.gpu_label", g.GPULabel, false)
	field("gpu.model_label", g.ModelLabel, false)
	v := c.VLLM
	field("vllm.kv_cache_usage", v.KVCacheUsage, true)
	field("vllm.legacy_kv_cache_usage", v.LegacyKVCacheUsage, true)
	field("vllm.requests_waiting", v.RequestsWaiting, true)
	tg := c.TGI
	field("tgi.batch_tokens", tg.BatchTokens, true)
	field("tgi.max_batch_total_tokens", tg.MaxBatchTotalTokens, true)
	field("tgi.queue_size", tg.QueueSize, true)
	if tg.AssumedMaxBatchTotalTokens < 0 {
		errs = append(errs, fmt.Errorf("tgi.assumed_max_batch_total_tokens: %d, must be 0 (none) or positive", tg.AssumedMaxBatchTotalTokens))
	}
	wl := c.Workloads
	field("workloads.deployment_replicas", wl.DeploymentReplicas, true)
	field("workloads.statefulset_replicas", wl.StatefulSetReplicas, true)
	field("workloads.deployment_label", wl.DeploymentLabel, false)
	field("workloads.statefulset_label", wl.StatefulSetLabel, false)
	field("workloads.deployment_spec_replicas", wl.DeploymentSpecReplicas, true)
	field("workloads.deployment_ready", wl.DeploymentReady, true)
	field("workloads.statefulset_spec_replicas", wl.StatefulSetSpecReplicas, true)
	field("workloads.statefulset_ready", wl.StatefulSetReady, true)
	ac := c.Activator
	field("activator.wake_seconds", ac.WakeSeconds, true)
	field("activator.namespace_label", ac.NamespaceLabel, false)
	field("activator.workload_label", ac.WorkloadLabel, false)
	return errors.Join(errs...)
}

// Expr returns the PromQL that reads metric m over window w (the window of
// its rate or *_over_time; the current requests, limits and framebuffer
// size take none) in namespace ns, or in all namespaces when ns is "".
// A metric that is not Namespaced takes only "".
//
// Each row of the answer is labelled so that the caller can place it:
//   - requests and limits: the container labels and ResourceLabel (cpu,
//     memory or nvidia.com/gpu);
//   - cpu, memory and oom kills: NamespaceLabel, PodLabel, ContainerLabel;
//   - request rate: as the requests signal (see queries.Catalog.Expr);
//   - the GPU metrics: the four labels of Signals.GPU, GPULabel and
//     ModelLabel, one row per GPU;
//   - the vLLM and TGI metrics: NamespaceLabel and PodLabel;
//   - replicas: NamespaceLabel and HistoryWorkloadLabel, the Deployment's
//     or StatefulSet's name (a Deployment and a StatefulSet of one name
//     make one row, the higher);
//   - oom restarts: NamespaceLabel, PodLabel, ContainerLabel, only for
//     containers whose last termination was an OOM kill in the window.
//
// oom restarts is the counter's value at the end of the window less its
// value one window earlier, not increase(), which extrapolates: its
// windows must be the step, so that each restart counts once.
//
// With the default names, namespace "shop" and a 5m window, cpu is
//
//	sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",namespace="shop"}[5m]))
func (c HistoryCatalog) Expr(m HistoryMetric, ns string, w time.Duration) (string, error) {
	d, ok := m.lookup()
	if !ok {
		return "", fmt.Errorf("unknown history metric %d", int(m))
	}
	if ns != "" && !d.namespaced {
		return "", fmt.Errorf("%s: not narrowed to a namespace; filter its rows instead", m)
	}
	if w <= 0 || w%time.Millisecond != 0 {
		return "", fmt.Errorf("%s: window = %v, must be a positive whole number of milliseconds", m, w)
	}
	return d.expr(c.exprParts(ns, w))
}

// historyExpr holds the parts the expressions of one Expr call share.
type historyExpr struct {
	c      HistoryCatalog
	w      time.Duration
	window string // "[5m]"
	// nsm is the namespace matcher to append to a selector's matchers, or "".
	nsm                       string
	ns                        string
	byContainer, byPod, byGPU string
	realContainer             []string
}

func (c HistoryCatalog) exprParts(ns string, w time.Duration) historyExpr {
	k, sg := c.Containers, c.Signals.GPU
	e := historyExpr{
		c:             c,
		w:             w,
		ns:            ns,
		window:        "[" + queries.FormatWindow(w) + "]",
		byContainer:   "(" + k.NamespaceLabel + ", " + k.PodLabel + ", " + k.ContainerLabel + ")",
		byPod:         "(" + k.NamespaceLabel + ", " + k.PodLabel + ")",
		byGPU:         "(" + strings.Join([]string{sg.NamespaceLabel, sg.PodLabel, sg.ExportedNamespaceLabel, sg.ExportedPodLabel, c.GPU.GPULabel, c.GPU.ModelLabel}, ", ") + ")",
		realContainer: []string{k.ContainerLabel + `!=""`, k.ContainerLabel + `!="POD"`},
	}
	if ns != "" {
		e.nsm = k.NamespaceLabel + "=" + strconv.Quote(ns)
	}
	return e
}

// sel is a selector of metric with matchers and the namespace's.
func (e historyExpr) sel(metric string, matchers ...string) string {
	return e.selWith(metric, append(matchers, e.nsm))
}

// selWith is a selector of metric with matchers alone.
func (e historyExpr) selWith(metric string, matchers []string) string {
	var ms []string
	for _, x := range matchers {
		if x != "" {
			ms = append(ms, x)
		}
	}
	if len(ms) == 0 {
		return metric
	}
	return metric + "{" + strings.Join(ms, ",") + "}"
}

// resources is the current requests or limits (metric) of every container.
func (e historyExpr) resources(metric string) string {
	k := e.c.Containers
	by := "(" + k.NamespaceLabel + ", " + k.PodLabel + ", " + k.ContainerLabel + ", " + k.ResourceLabel + ")"
	return "max by " + by + " (" + e.sel(metric, k.ResourceLabel+`=~"cpu|memory|nvidia.com/gpu"`) + ")"
}

// oomKilled is 1 for a container whose last termination in the window was
// an OOM kill.
func (e historyExpr) oomKilled() string {
	k := e.c.Containers
	return "max_over_time(" + e.sel(k.LastTerminatedReason, k.ReasonLabel+`="OOMKilled"`) + e.window + ")"
}

// maxOverTimeByPod is each pod's highest value of metric in the window.
func (e historyExpr) maxOverTimeByPod(metric string) string {
	return "max by " + e.byPod + " (max_over_time(" + e.sel(metric) + e.window + "))"
}
