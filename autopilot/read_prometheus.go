package autopilot

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// RangeQuerier evaluates a PromQL expression over a range, as
// queries.Prometheus does.
type RangeQuerier interface {
	Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]queries.Series, error)
}

var _ RangeQuerier = (*queries.Prometheus)(nil)

// DefaultChunk is how much history one range query reads.
const DefaultChunk = 24 * time.Hour

// PrometheusReader reads history from a Prometheus-compatible store: one
// range query per metric and namespace (one per metric for all namespaces
// when Namespaces is empty) and per chunk of history, streamed into the
// History chunk by chunk, so memory holds one chunk's answer at a time.
type PrometheusReader struct {
	Store RangeQuerier
	// Catalog names Istio's and dcgm-exporter's metrics and labels; the
	// zero Catalog means queries.DefaultCatalog().
	Catalog queries.Catalog
	// Namespaces limits the read; empty means all namespaces.
	Namespaces []string
	// Chunk is the history one range query covers; 0 means DefaultChunk.
	Chunk time.Duration
	// Progress, when set, is called after each query with the queries done
	// and the total.
	Progress func(done, total int)
}

var namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidNamespace reports an error unless ns is a Kubernetes namespace name.
func ValidNamespace(ns string) error {
	if len(ns) > 63 || !namespaceRE.MatchString(ns) {
		return fmt.Errorf("namespace %q: not a valid namespace name (DNS-1123 label)", ns)
	}
	return nil
}

// historyQuery is one metric the reader asks for and what it does with a
// series of the answer.
type historyQuery struct {
	name string
	// expr builds the query for the namespace matcher m (`,namespace="x"` or
	// "") and the window w ("[5m]").
	expr func(m, w string) string
	// namespaced queries take the matcher; the others are filtered here.
	namespaced bool
	feed       func(h *History, s queries.Series)
}

const containerSel = `container!="",container!="POD"`

// Read streams the history from the store into h.
func (r *PrometheusReader) Read(ctx context.Context, h *History) error {
	cat := r.Catalog
	if cat == (queries.Catalog{}) {
		cat = queries.DefaultCatalog()
	}
	for _, ns := range r.Namespaces {
		if err := ValidNamespace(ns); err != nil {
			return err
		}
	}
	chunk := r.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	chunk = max(chunk, h.step)
	nsList := r.Namespaces
	if len(nsList) == 0 {
		nsList = []string{""}
	}
	allowed := map[string]bool{}
	for _, ns := range r.Namespaces {
		allowed[ns] = true
	}
	inScope := func(ns string) bool { return ns != "" && (len(allowed) == 0 || allowed[ns]) }
	win := max(h.step, time.Minute)
	window := "[" + promDuration(win) + "]"

	current, series := r.queries(cat, inScope, win)
	nChunks := int((h.end.Sub(h.start)-h.step)/chunk) + 1
	total := 0
	for _, q := range current {
		total += r.count(q, nsList)
	}
	for _, q := range series {
		total += r.count(q, nsList) * nChunks
	}
	done := 0
	run := func(q historyQuery, from, to time.Time, feed func(queries.Series)) error {
		list := []string{""}
		if q.namespaced {
			list = nsList
		}
		for _, ns := range list {
			m := ""
			if ns != "" {
				m = `,namespace=` + strconv.Quote(ns)
			}
			out, err := r.Store.Range(ctx, q.expr(m, window), from, to, h.step)
			if err != nil {
				return fmt.Errorf("read %s: %w", q.name, err)
			}
			for _, s := range out {
				feed(s)
			}
			done++
			if r.Progress != nil {
				r.Progress(done, total)
			}
		}
		return nil
	}

	// Current requests and limits, and GPU sizes, at the end of the history.
	res := map[ContainerRef]*Resources{}
	for _, q := range current {
		err := run(q, h.end, h.end, func(s queries.Series) {
			if len(s.Points) == 0 {
				return
			}
			v := s.Points[len(s.Points)-1].V
			switch q.name {
			case "requests", "limits":
				ref, ok := containerOf(s.Labels)
				if !ok {
					return
				}
				x := res[ref]
				if x == nil {
					x = &Resources{}
					res[ref] = x
				}
				setResource(x, q.name, s.Labels["resource"], v)
			default:
				q.feed(h, s)
			}
		})
		if err != nil {
			return err
		}
	}
	for ref, x := range res {
		h.SetResources(ref, *x)
	}

	// Usage, chunk by chunk, in time order.
	for from := h.start.Add(h.step); !from.After(h.end); {
		to := from.Add(chunk - h.step)
		if to.After(h.end) {
			to = h.end
		}
		for _, q := range series {
			if err := run(q, from, to, func(s queries.Series) { q.feed(h, s) }); err != nil {
				return err
			}
		}
		from = to.Add(h.step)
	}
	return nil
}

func (r *PrometheusReader) count(q historyQuery, nsList []string) int {
	if q.namespaced {
		return len(nsList)
	}
	return 1
}

func setResource(x *Resources, kind, resource string, v float64) {
	switch {
	case resource == "cpu" && kind == "requests":
		x.CPURequest = v
	case resource == "cpu":
		x.CPULimit = v
	case resource == "memory" && kind == "requests":
		x.MemoryRequest = v
	case resource == "memory":
		x.MemoryLimit = v
	case resource == "nvidia.com/gpu":
		x.GPUs = max(x.GPUs, v)
	}
}

// containerOf places a cAdvisor or kube-state-metrics series.
func containerOf(l map[string]string) (ContainerRef, bool) {
	ns, pod, c := l["namespace"], l["pod"], l["container"]
	if ns == "" || pod == "" || c == "" {
		return ContainerRef{}, false
	}
	return ContainerRef{Workload: queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, Pod: pod, Container: c}, true
}

// queries returns the queries read once at the end and those read over the
// history. The label names of the gpu queries come from the catalog.
func (r *PrometheusReader) queries(cat queries.Catalog, inScope func(string) bool, win time.Duration) (current, series []historyQuery) {
	g := cat.GPU
	gpuBy := "(" + strings.Join([]string{g.NamespaceLabel, g.PodLabel, g.ExportedNamespaceLabel, g.ExportedPodLabel, "gpu", "modelName"}, ", ") + ")"
	gpuOf := func(l map[string]string) (GPURef, bool) {
		ns, pod := l[g.NamespaceLabel], l[g.PodLabel]
		if v := l[g.ExportedNamespaceLabel]; v != "" {
			ns = v
		}
		if v := l[g.ExportedPodLabel]; v != "" {
			pod = v
		}
		if !inScope(ns) || pod == "" {
			return GPURef{}, false
		}
		return GPURef{Workload: queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, Pod: pod, GPU: l["gpu"], Model: l["modelName"]}, true
	}
	perContainer := func(add func(h *History, ref ContainerRef, p queries.Point)) func(*History, queries.Series) {
		return func(h *History, s queries.Series) {
			ref, ok := containerOf(s.Labels)
			if !ok {
				return
			}
			for _, p := range s.Points {
				add(h, ref, p)
			}
		}
	}
	perPod := func(add func(h *History, k queries.WorkloadKey, p queries.Point)) func(*History, queries.Series) {
		return func(h *History, s queries.Series) {
			ns, pod := s.Labels["namespace"], s.Labels["pod"]
			if ns == "" || pod == "" {
				return
			}
			k := queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}
			for _, p := range s.Points {
				add(h, k, p)
			}
		}
	}
	resources := func(metric string) func(m, w string) string {
		return func(m, _ string) string {
			return `max by (namespace, pod, container, resource) (` + metric + `{resource=~"cpu|memory|nvidia.com/gpu"` + m + `})`
		}
	}
	current = []historyQuery{
		{name: "requests", namespaced: true, expr: resources("kube_pod_container_resource_requests")},
		{name: "limits", namespaced: true, expr: resources("kube_pod_container_resource_limits")},
		{name: "gpu framebuffer size", expr: func(_, _ string) string {
			return "max by " + gpuBy + " (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)"
		}, feed: func(h *History, s queries.Series) {
			if ref, ok := gpuOf(s.Labels); ok && len(s.Points) > 0 {
				h.Framebuffer(ref, s.Points[0].T, 0, s.Points[len(s.Points)-1].V)
			}
		}},
	}
	rq := cat.Requests
	series = []historyQuery{
		{name: "cpu", namespaced: true, expr: func(m, w string) string {
			return `sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{` + containerSel + m + `}` + w + `))`
		}, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.CPU(ref, p.T, p.V) })},
		{name: "memory", namespaced: true, expr: func(m, w string) string {
			return `max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{` + containerSel + m + `}` + w + `))`
		}, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.Memory(ref, p.T, p.V) })},
		{name: "oom kills", namespaced: true, expr: func(m, w string) string {
			return `max by (namespace, pod, container) (max_over_time(kube_pod_container_status_last_terminated_reason{reason="OOMKilled"` + m + `}` + w + `))`
		}, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.OOMKilled(ref, p.T, p.V > 0) })},
		{name: "request rate", expr: func(_, _ string) string {
			e, _ := cat.Expr(queries.Shape{Signal: queries.SignalRequests, Window: win})
			return e
		}, feed: func(h *History, s queries.Series) {
			ns, name := s.Labels[rq.NamespaceLabel], s.Labels[rq.WorkloadLabel]
			if !inScope(ns) || name == "" {
				return
			}
			for _, p := range s.Points {
				h.RequestRate(queries.WorkloadKey{Namespace: ns, Name: name}, p.T, p.V)
			}
		}},
		{name: "gpu utilization", expr: func(_, w string) string {
			return "max by " + gpuBy + " ((avg_over_time(" + g.ProfMetric + w + ") * 100) or avg_over_time(" + g.UtilMetric + w + "))"
		}, feed: func(h *History, s queries.Series) {
			if ref, ok := gpuOf(s.Labels); ok {
				for _, p := range s.Points {
					h.GPUUtil(ref, p.T, p.V)
				}
			}
		}},
		{name: "gpu framebuffer used", expr: func(_, w string) string {
			return "max by " + gpuBy + " (max_over_time(DCGM_FI_DEV_FB_USED" + w + "))"
		}, feed: func(h *History, s queries.Series) {
			if ref, ok := gpuOf(s.Labels); ok {
				for _, p := range s.Points {
					h.Framebuffer(ref, p.T, p.V, 0)
				}
			}
		}},
		{name: "vllm kv cache", namespaced: true, expr: func(m, w string) string {
			sel := "{" + strings.TrimPrefix(m, ",") + "}"
			return `max by (namespace, pod) (max_over_time(vllm:kv_cache_usage_perc` + sel + w + `) or max_over_time(vllm:gpu_cache_usage_perc` + sel + w + `))`
		}, feed: perPod(func(h *History, k queries.WorkloadKey, p queries.Point) { h.KVCache(k, p.T, p.V) })},
		{name: "vllm waiting", namespaced: true, expr: func(m, w string) string {
			return `max by (namespace, pod) (max_over_time(vllm:num_requests_waiting{` + strings.TrimPrefix(m, ",") + `}` + w + `))`
		}, feed: perPod(func(h *History, k queries.WorkloadKey, p queries.Point) { h.RequestsWaiting(k, p.T, p.V) })},
	}
	return current, series
}

// promDuration renders d as a PromQL duration: "5m", "1h30m", "90s".
func promDuration(d time.Duration) string {
	var b strings.Builder
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "h")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "m")
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 || b.Len() == 0 {
		b.WriteString(strconv.FormatInt(int64(s), 10) + "s")
	}
	return b.String()
}
