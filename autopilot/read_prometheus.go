package autopilot

import (
	"context"
	"fmt"
	"regexp"
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
// In each chunk the replicas are read before the request rate, for the
// autoshutdown backtest to price each step at the replicas that ran then.
type PrometheusReader struct {
	Store RangeQuerier
	// Catalog names the metrics and labels read; the zero HistoryCatalog
	// means queries.DefaultHistoryCatalog().
	Catalog queries.HistoryCatalog
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
	metric queries.HistoryMetric
	feed   func(h *History, s queries.Series)
}

// Read streams the history from the store into h.
func (r *PrometheusReader) Read(ctx context.Context, h *History) error {
	cat := r.Catalog
	if cat == (queries.HistoryCatalog{}) {
		cat = queries.DefaultHistoryCatalog()
	}
	if err := cat.Validate(); err != nil {
		return fmt.Errorf("history catalog: %w", err)
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

	current, series := historyQueries(cat, inScope)
	h.tgiAssumed = cat.TGI.AssumedMaxBatchTotalTokens
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
		if q.metric.Namespaced() {
			list = nsList
		}
		w := win
		if q.metric == queries.HistoryOOMRestarts {
			w = h.step // the counter's growth over each step, the windows tiling the history
		}
		for _, ns := range list {
			expr, err := cat.Expr(q.metric, ns, w)
			if err != nil {
				return fmt.Errorf("read %s: %w", q.metric, err)
			}
			out, err := r.Store.Range(ctx, expr, from, to, h.step)
			if err != nil {
				return fmt.Errorf("read %s: %w", q.metric, err)
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
	k := cat.Containers
	for _, q := range current {
		err := run(q, h.end, h.end, func(s queries.Series) {
			if len(s.Points) == 0 {
				return
			}
			v := s.Points[len(s.Points)-1].V
			switch q.metric {
			case queries.HistoryRequests, queries.HistoryLimits:
				ref, ok := containerOf(k, s.Labels)
				if !ok {
					return
				}
				x := res[ref]
				if x == nil {
					x = &Resources{}
					res[ref] = x
				}
				setResource(x, q.metric == queries.HistoryRequests, s.Labels[k.ResourceLabel], v)
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
		h.settleReplicas(to)
		from = to.Add(h.step)
	}
	return nil
}

func (r *PrometheusReader) count(q historyQuery, nsList []string) int {
	if q.metric.Namespaced() {
		return len(nsList)
	}
	return 1
}

func setResource(x *Resources, request bool, resource string, v float64) {
	switch {
	case resource == "cpu" && request:
		x.CPURequest = v
	case resource == "cpu":
		x.CPULimit = v
	case resource == "memory" && request:
		x.MemoryRequest = v
	case resource == "memory":
		x.MemoryLimit = v
	case resource == "nvidia.com/gpu":
		x.GPUs = max(x.GPUs, v)
	}
}

// containerOf places a cAdvisor or kube-state-metrics series.
func containerOf(k queries.ContainerMetrics, l map[string]string) (ContainerRef, bool) {
	ns, pod, c := l[k.NamespaceLabel], l[k.PodLabel], l[k.ContainerLabel]
	if ns == "" || pod == "" || c == "" {
		return ContainerRef{}, false
	}
	return ContainerRef{Workload: queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, Pod: pod, Container: c}, true
}

// historyQueries returns the queries read once at the end and those read
// over the history, each with what it does with a series of its answer.
// The rows of the metrics the catalog does not narrow to a namespace are
// kept when their namespace is inScope.
func historyQueries(cat queries.HistoryCatalog, inScope func(string) bool) (current, series []historyQuery) {
	g, k, rq := cat.Signals.GPU, cat.Containers, cat.Signals.Requests
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
		return GPURef{Workload: queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, Pod: pod,
			GPU: l[cat.GPU.GPULabel], Model: l[cat.GPU.ModelLabel]}, true
	}
	perContainer := func(add func(h *History, ref ContainerRef, p queries.Point)) func(*History, queries.Series) {
		return func(h *History, s queries.Series) {
			ref, ok := containerOf(k, s.Labels)
			if !ok {
				return
			}
			for _, p := range s.Points {
				add(h, ref, p)
			}
		}
	}
	perPod := func(add func(h *History, w queries.WorkloadKey, p queries.Point)) func(*History, queries.Series) {
		return func(h *History, s queries.Series) {
			ns, pod := s.Labels[k.NamespaceLabel], s.Labels[k.PodLabel]
			if ns == "" || pod == "" {
				return
			}
			w := queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}
			for _, p := range s.Points {
				add(h, w, p)
			}
		}
	}
	perGPU := func(add func(h *History, ref GPURef, p queries.Point)) func(*History, queries.Series) {
		return func(h *History, s queries.Series) {
			if ref, ok := gpuOf(s.Labels); ok {
				for _, p := range s.Points {
					add(h, ref, p)
				}
			}
		}
	}
	current = []historyQuery{
		{metric: queries.HistoryRequests},
		{metric: queries.HistoryLimits},
		{metric: queries.HistoryFramebufferSize, feed: func(h *History, s queries.Series) {
			if ref, ok := gpuOf(s.Labels); ok && len(s.Points) > 0 {
				h.Framebuffer(ref, s.Points[0].T, 0, s.Points[len(s.Points)-1].V)
			}
		}},
	}
	series = []historyQuery{
		{metric: queries.HistoryCPU, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.CPU(ref, p.T, p.V) })},
		{metric: queries.HistoryMemory, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.Memory(ref, p.T, p.V) })},
		{metric: queries.HistoryOOMKills, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.OOMKilled(ref, p.T, p.V > 0) })},
		{metric: queries.HistoryOOMRestarts, feed: perContainer(func(h *History, ref ContainerRef, p queries.Point) { h.OOMRestarts(ref, p.T, p.V) })},
		// Replicas before the request rate: the backtest takes the
		// replicas of each request-rate sample's time.
		{metric: queries.HistoryReplicas, feed: func(h *History, s queries.Series) {
			ns, name := s.Labels[k.NamespaceLabel], s.Labels[queries.HistoryWorkloadLabel]
			if ns == "" || name == "" {
				return
			}
			for _, p := range s.Points {
				h.Replicas(queries.WorkloadKey{Namespace: ns, Name: name}, p.T, p.V)
			}
		}},
		{metric: queries.HistoryRequestRate, feed: func(h *History, s queries.Series) {
			ns, name := s.Labels[rq.NamespaceLabel], s.Labels[rq.WorkloadLabel]
			if !inScope(ns) || name == "" {
				return
			}
			for _, p := range s.Points {
				h.RequestRate(queries.WorkloadKey{Namespace: ns, Name: name}, p.T, p.V)
			}
		}},
		{metric: queries.HistoryGPUUtil, feed: perGPU(func(h *History, ref GPURef, p queries.Point) { h.GPUUtil(ref, p.T, p.V) })},
		{metric: queries.HistoryFramebufferUsed, feed: perGPU(func(h *History, ref GPURef, p queries.Point) { h.Framebuffer(ref, p.T, p.V, 0) })},
		{metric: queries.HistoryKVCache, feed: perPod(func(h *History, w queries.WorkloadKey, p queries.Point) { h.KVCache(w, VLLM, p.T, p.V) })},
		{metric: queries.HistoryRequestsWaiting, feed: perPod(func(h *History, w queries.WorkloadKey, p queries.Point) { h.RequestsWaiting(w, VLLM, p.T, p.V) })},
		{metric: queries.HistoryTGIKVCache, feed: perPod(func(h *History, w queries.WorkloadKey, p queries.Point) { h.KVCache(w, TGI, p.T, p.V) })},
		{metric: queries.HistoryTGIQueue, feed: perPod(func(h *History, w queries.WorkloadKey, p queries.Point) { h.RequestsWaiting(w, TGI, p.T, p.V) })},
	}
	return current, series
}
