package autopilot

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
)

// RangeQuerier evaluates a PromQL expression over a range, as
// promapi.Prometheus does.
type RangeQuerier interface {
	Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]promapi.Series, error)
}

var _ RangeQuerier = (*promapi.Prometheus)(nil)

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
	// means DefaultHistoryCatalog().
	Catalog HistoryCatalog
	// Namespaces limits the read; empty means all namespaces.
	Namespaces []string
	// Chunk is the history one range query covers; 0 means DefaultChunk.
	Chunk time.Duration
	// Progress, when set, is called after each query with the queries done
	// and the total.
	Progress func(done, total int)
}

// ValidNamespace reports an error unless ns is a Kubernetes namespace name.
func ValidNamespace(ns string) error {
	if len(validation.IsDNS1123Label(ns)) > 0 {
		return fmt.Errorf("namespace %q: not a valid namespace name (DNS-1123 label)", ns)
	}
	return nil
}

// Read streams the history from the store into h: the current requests,
// limits and GPU sizes at its end, then the usage, chunk by chunk, in time
// order.
func (r *PrometheusReader) Read(ctx context.Context, h *History) error {
	rd, err := r.begin(h)
	if err != nil {
		return err
	}
	for _, m := range rd.current {
		from, to := h.end, h.end
		if m.wholeHistory {
			from, to = rd.tile.from, rd.tile.to
		}
		if err := rd.read(ctx, m, from, to); err != nil {
			return err
		}
	}
	for ref, x := range rd.rows.resources {
		h.SetResources(ref, *x)
	}
	for k, x := range rd.rows.activator {
		h.ActivatorWake(k, x[0], x[1])
	}
	for _, m := range rd.wakes {
		from := h.end.Add(-WakeWindow)
		if from.Before(h.start) {
			from = h.start
		}
		from = from.Add(rd.rows.wakeStep)
		if err := rd.readAt(ctx, m, from, h.end, rd.rows.wakeStep, rd.rows.wakeStep); err != nil {
			return err
		}
	}
	for from := h.start.Add(h.step); !from.After(h.end); {
		to := from.Add(rd.chunk - h.step)
		if to.After(h.end) {
			to = h.end
		}
		for _, m := range rd.series {
			if err := rd.read(ctx, m, from, to); err != nil {
				return err
			}
		}
		h.settleReplicas(to)
		from = to.Add(h.step)
	}
	return nil
}

// historyRead is one Read under way: what it reads, where, and how far it
// has come.
type historyRead struct {
	r               *PrometheusReader
	h               *History
	cat             HistoryCatalog
	namespaces      []string // "" for all
	chunk, window   time.Duration
	current, series []*historyMetric // read once at the end; read over the history
	wakes           []*historyMetric // read once over the last WakeWindow at WakeStep
	tile            tiles            // the windows of the metrics read over the whole history
	rows            *historyRows
	done, total     int // queries, for Progress
}

// begin checks the reader's settings and plans the read of h.
func (r *PrometheusReader) begin(h *History) (*historyRead, error) {
	cat := r.Catalog
	if cat == (HistoryCatalog{}) {
		cat = DefaultHistoryCatalog()
	}
	if err := cat.Validate(); err != nil {
		return nil, fmt.Errorf("history catalog: %w", err)
	}
	for _, ns := range r.Namespaces {
		if err := ValidNamespace(ns); err != nil {
			return nil, err
		}
	}
	rd := &historyRead{r: r, h: h, cat: cat, namespaces: r.Namespaces, window: max(h.step, time.Minute)}
	if len(rd.namespaces) == 0 {
		rd.namespaces = []string{""}
	}
	rd.chunk = r.Chunk
	if rd.chunk <= 0 {
		rd.chunk = DefaultChunk
	}
	rd.chunk = max(rd.chunk, h.step)
	rd.tile = wholeHistoryTiles(h.start, h.end)
	allowed := map[string]bool{}
	for _, ns := range r.Namespaces {
		allowed[ns] = true
	}
	inScope := func(ns string) bool { return ns != "" && (len(allowed) == 0 || allowed[ns]) }
	rd.rows = &historyRows{cat: cat, inScope: inScope, resources: map[ContainerRef]*Resources{},
		activator: map[queries.WorkloadKey][2]float64{}, wakeStep: min(WakeStep, h.step)}
	h.tgiAssumed = cat.TGI.AssumedMaxBatchTotalTokens

	chunks := int((h.end.Sub(h.start)-h.step)/rd.chunk) + 1
	for i := range historyMetrics {
		m := &historyMetrics[i]
		if m.wakes {
			rd.wakes = append(rd.wakes, m)
			rd.total += len(rd.namespacesOf(m))
		} else if m.atEnd {
			rd.current = append(rd.current, m)
			rd.total += len(rd.namespacesOf(m))
		} else {
			rd.series = append(rd.series, m)
			rd.total += len(rd.namespacesOf(m)) * chunks
		}
	}
	return rd, nil
}

// namespacesOf returns the namespaces m is read in, one query each.
func (rd *historyRead) namespacesOf(m *historyMetric) []string {
	if m.namespaced {
		return rd.namespaces
	}
	return []string{""}
}

// read reads m from from to to and feeds its rows into the history.
func (rd *historyRead) read(ctx context.Context, m *historyMetric, from, to time.Time) error {
	w := rd.window
	switch {
	case m.stepWindow:
		w = rd.h.step
	case m.wholeHistory:
		return rd.readAt(ctx, m, from, to, rd.tile.step, rd.tile.step)
	}
	return rd.readAt(ctx, m, from, to, rd.h.step, w)
}

// readAt reads m from from to to at steps of step, its window w.
func (rd *historyRead) readAt(ctx context.Context, m *historyMetric, from, to time.Time, step, w time.Duration) error {
	for _, ns := range rd.namespacesOf(m) {
		expr, err := rd.cat.Expr(m.metric, ns, w)
		if err != nil {
			return fmt.Errorf("read %s: %w", m.name, err)
		}
		out, err := rd.r.Store.Range(ctx, expr, from, to, step)
		if err != nil {
			return fmt.Errorf("read %s: %w", m.name, err)
		}
		for _, s := range out {
			m.feed(rd.rows, rd.h, s)
		}
		rd.done++
		if rd.r.Progress != nil {
			rd.r.Progress(rd.done, rd.total)
		}
	}
	return nil
}

// historyRows places the rows of a read's answers: which container, pod or
// GPU each is about, and whether its namespace is in scope.
type historyRows struct {
	cat HistoryCatalog
	// inScope keeps the rows of the metrics not narrowed to a namespace.
	inScope func(ns string) bool
	// resources collects the requests and limits of each container.
	resources map[ContainerRef]*Resources
	// activator collects each workload's activator wake seconds and count.
	activator map[queries.WorkloadKey][2]float64
	// wakeStep is the step HistoryWakes is read at.
	wakeStep time.Duration
}

// container places a cAdvisor or kube-state-metrics row.
func (r *historyRows) container(l map[string]string) (ContainerRef, bool) {
	return containerOf(r.cat.Containers, l)
}

// containerOf places a cAdvisor or kube-state-metrics series.
func containerOf(k ContainerMetrics, l map[string]string) (ContainerRef, bool) {
	ns, pod, c := l[k.NamespaceLabel], l[k.PodLabel], l[k.ContainerLabel]
	if ns == "" || pod == "" || c == "" {
		return ContainerRef{}, false
	}
	return ContainerRef{Workload: queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, Pod: pod, Container: c}, true
}

// gpu places a dcgm-exporter row, by its exported labels where it has them.
func (r *historyRows) gpu(l map[string]string) (GPURef, bool) {
	g := r.cat.Signals.GPU
	ns, pod := l[g.NamespaceLabel], l[g.PodLabel]
	if v := l[g.ExportedNamespaceLabel]; v != "" {
		ns = v
	}
	if v := l[g.ExportedPodLabel]; v != "" {
		pod = v
	}
	if !r.inScope(ns) || pod == "" {
		return GPURef{}, false
	}
	return GPURef{Workload: queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, Pod: pod,
		GPU: l[r.cat.GPU.GPULabel], Model: l[r.cat.GPU.ModelLabel]}, true
}

// resource records the last value of a requests (request) or limits row.
func (r *historyRows) resource(s promapi.Series, request bool) {
	ref, ok := r.container(s.Labels)
	if !ok || len(s.Points) == 0 {
		return
	}
	x := r.resources[ref]
	if x == nil {
		x = &Resources{}
		r.resources[ref] = x
	}
	setResource(x, request, s.Labels[r.cat.Containers.ResourceLabel], s.Points[len(s.Points)-1].V)
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

func perContainer(add func(h *History, ref ContainerRef, p promapi.Point)) func(*historyRows, *History, promapi.Series) {
	return func(r *historyRows, h *History, s promapi.Series) {
		ref, ok := r.container(s.Labels)
		if !ok {
			return
		}
		for _, p := range s.Points {
			add(h, ref, p)
		}
	}
}

func perPod(add func(h *History, w queries.WorkloadKey, p promapi.Point)) func(*historyRows, *History, promapi.Series) {
	return func(r *historyRows, h *History, s promapi.Series) {
		k := r.cat.Containers
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

func perGPU(add func(h *History, ref GPURef, p promapi.Point)) func(*historyRows, *History, promapi.Series) {
	return func(r *historyRows, h *History, s promapi.Series) {
		if ref, ok := r.gpu(s.Labels); ok {
			for _, p := range s.Points {
				add(h, ref, p)
			}
		}
	}
}

// tiles are windows that tile a history: the steps from from to to, each
// window the step.
type tiles struct {
	from, to time.Time
	step     time.Duration
}

// wholeHistoryTiles splits the history from start to end into the fewest
// windows of at most a day, of equal whole seconds (at least a minute); the
// first starts up to a second per window after start.
func wholeHistoryTiles(start, end time.Time) tiles {
	span := end.Sub(start)
	n := (span + 24*time.Hour - 1) / (24 * time.Hour)
	step := max(time.Minute, (span / max(n, 1)).Truncate(time.Second))
	n = max(span/step, 1)
	return tiles{from: end.Add(-(n - 1) * step), to: end, step: step}
}
