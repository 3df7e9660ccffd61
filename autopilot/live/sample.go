package live

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/benbjohnson/clock"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
)

// Sampler samples the usage of an Inventory's workloads from metrics.k8s.io
// into a History: every Every, it lists the PodMetrics of the inventory's
// namespaces and adds each container's CPU and memory to the History, one
// point per container and step of the History (the mean CPU and the
// highest memory of the samples in the step, as the Prometheus reader's
// rate and max_over_time), so that a short step weighs as much as the
// history read from Prometheus.
//
// A Sampler runs once; it is not safe for concurrent use.
type Sampler struct {
	Kube      kubernetes.Interface
	Metrics   metricsclient.Interface
	Inventory *Inventory
	// Every is the time between two samples; Samples is how many to take,
	// the first at once.
	Every   time.Duration
	Samples int
	// After drops points at or before it: the end of the history already
	// read from Prometheus. Zero keeps every point.
	After time.Time
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Progress, when set, is called after each sample with the samples
	// taken and Samples.
	Progress func(done, total int)

	taken       int
	first, last time.Time
	noAPI       error
	scopes      map[string]*scopeState
	stats       map[queries.WorkloadKey]*workloadStats
	pending     map[autopilot.ContainerRef]*point
	measured    map[podKey]time.Time // the last PodMetrics timestamp of each pod
	owners      *owners
}

type scopeState struct {
	ok   bool  // a list succeeded
	dead error // a refusal: not sampled any more
	last error // the last list's error
}

type workloadStats struct {
	samples    int       // pods' samples
	last       time.Time // the last sample with a pod of the workload
	containers map[string]bool
}

// point is what the samples of one container in one step of the history
// add up to.
type point struct {
	step      int64
	cpu       float64
	cpuN      int
	memory    float64
	hasMemory bool
}

// Run samples into h until Samples are taken, every namespace refused or
// metrics.k8s.io turned out missing, or ctx is done (then it returns ctx's
// error). What it could not sample is in Problems, and why each workload
// has no usage in Why.
func (s *Sampler) Run(ctx context.Context, h *autopilot.History) error {
	switch {
	case s.Every <= 0:
		return fmt.Errorf("sampler: every = %v, must be positive", s.Every)
	case s.Samples < 1:
		return fmt.Errorf("sampler: samples = %d, must be at least 1", s.Samples)
	case s.Kube == nil || s.Metrics == nil || s.Inventory == nil:
		return errors.New("sampler: Kube, Metrics and Inventory are required")
	case s.taken > 0:
		return errors.New("sampler: already run")
	}
	clk := s.Clock
	if clk == nil {
		clk = clock.New()
	}
	s.scopes = map[string]*scopeState{}
	s.stats = map[queries.WorkloadKey]*workloadStats{}
	s.pending = map[autopilot.ContainerRef]*point{}
	s.measured = map[podKey]time.Time{}
	index := s.Inventory.index()
	s.owners = newOwners(s.Kube, func(k queries.WorkloadKey) bool { _, ok := index[k]; return ok })

	tick := clk.Ticker(s.Every)
	defer tick.Stop()
	now := clk.Now()
	for {
		s.sample(ctx, h, now)
		if s.Progress != nil {
			s.Progress(s.taken, s.Samples)
		}
		if s.taken >= s.Samples || !s.alive() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now = <-tick.C:
		}
	}
	s.flush(h)
	s.injected(h, index)
	return nil
}

// alive reports whether some namespace may still be sampled.
func (s *Sampler) alive() bool {
	if s.noAPI != nil {
		return false
	}
	for _, st := range s.scopes {
		if st.dead == nil {
			return true
		}
	}
	return false
}

func (s *Sampler) scope(ns string) *scopeState {
	st := s.scopes[ns]
	if st == nil {
		st = &scopeState{}
		s.scopes[ns] = st
	}
	return st
}

// sample lists the PodMetrics of every namespace once.
func (s *Sampler) sample(ctx context.Context, h *autopilot.History, now time.Time) {
	s.taken++
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	for _, scope := range s.Inventory.scopes() {
		st := s.scope(scope)
		if st.dead != nil || s.noAPI != nil {
			continue
		}
		l, err := s.Metrics.MetricsV1beta1().PodMetricses(scope).List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			err = metricsError(scope, err)
			var denied *kube.AccessError
			switch {
			case errors.Is(err, ErrNoMetricsAPI):
				s.noAPI = err
				return
			case errors.As(err, &denied):
				st.dead = err
			default:
				st.last = err
			}
			continue
		}
		st.ok, st.last = true, nil
		if _, listed := s.owners.listedAt[scope]; !listed {
			// Know the pods that have no metrics yet too.
			s.owners.list(ctx, scope, s.taken)
		}
		for i := range l.Items {
			s.add(ctx, h, scope, now, &l.Items[i])
		}
	}
}

// add adds one pod's sample.
func (s *Sampler) add(ctx context.Context, h *autopilot.History, scope string, now time.Time, pm *metricsv1beta1.PodMetrics) {
	pod := podKey{pm.Namespace, pm.Name}
	key, ok := s.owners.workloadOf(ctx, scope, s.taken, pod)
	if !ok {
		return
	}
	ws := s.stats[key]
	if ws == nil {
		ws = &workloadStats{containers: map[string]bool{}}
		s.stats[key] = ws
	}
	ws.last = now
	// metrics-server measures every --metric-resolution (15 s by default):
	// the same measurement twice is one sample.
	if ts := pm.Timestamp.Time; !ts.IsZero() {
		if prev, ok := s.measured[pod]; ok && prev.Equal(ts) {
			return
		}
		s.measured[pod] = ts
	}
	step := stepOf(h, now)
	if !s.After.IsZero() && !h.Start().Add(time.Duration(step)*h.Step()).After(s.After) {
		return
	}
	ws.samples++
	for _, c := range pm.Containers {
		ref := autopilot.ContainerRef{Workload: key, Pod: pm.Name, Container: c.Name}
		p := s.pending[ref]
		if p != nil && p.step != step {
			s.emit(h, ref, p)
			p = nil
		}
		if p == nil {
			p = &point{step: step}
			s.pending[ref] = p
		}
		if q, ok := c.Usage[corev1.ResourceCPU]; ok {
			p.cpu += q.AsApproximateFloat64()
			p.cpuN++
		}
		if q, ok := c.Usage[corev1.ResourceMemory]; ok {
			p.memory = max(p.memory, q.AsApproximateFloat64())
			p.hasMemory = true
		}
		ws.containers[c.Name] = true
	}
}

// stepOf returns the step of the history that t falls in: the step ending
// at Start + n*Step holds (Start + (n-1)*Step, Start + n*Step].
func stepOf(h *autopilot.History, t time.Time) int64 {
	d := t.Sub(h.Start())
	n := int64(d / h.Step())
	if d > 0 && d%h.Step() != 0 {
		n++
	}
	return n
}

func (s *Sampler) emit(h *autopilot.History, ref autopilot.ContainerRef, p *point) {
	at := h.Start().Add(time.Duration(p.step) * h.Step())
	if p.cpuN > 0 {
		h.CPU(ref, at, p.cpu/float64(p.cpuN))
	}
	if p.hasMemory {
		h.Memory(ref, at, p.memory)
	}
}

// flush adds the points still pending.
func (s *Sampler) flush(h *autopilot.History) {
	for ref, p := range s.pending {
		s.emit(h, ref, p)
		delete(s.pending, ref)
	}
}

// injected sets the requests of containers that run in a workload's pods
// but are not in its template, such as an injected istio-proxy, from a pod
// that runs them.
func (s *Sampler) injected(h *autopilot.History, index map[queries.WorkloadKey]Workload) {
	for key, ws := range s.stats {
		w := index[key]
		for name := range ws.containers {
			if slices.ContainsFunc(w.Containers, func(c Container) bool { return c.Name == name }) {
				continue
			}
			for _, pod := range s.owners.running[key] {
				if res, ok := s.owners.containers[pod][name]; ok {
					h.SetResources(autopilot.ContainerRef{Workload: key, Pod: pod.name, Container: name}, res)
					break
				}
			}
		}
	}
}

// Taken returns the samples taken and the time from the first to the last.
func (s *Sampler) Taken() (n int, span time.Duration) { return s.taken, s.last.Sub(s.first) }

// Problems returns what kept namespaces from being sampled: metrics.k8s.io
// missing (Namespace ""), a permission missing, a list that never
// succeeded.
func (s *Sampler) Problems() []Problem {
	var out []Problem
	if s.noAPI != nil {
		out = append(out, Problem{Err: s.noAPI})
	}
	for ns, st := range s.scopes {
		switch {
		case st.dead != nil:
			out = append(out, Problem{Namespace: ns, Err: st.dead})
		case !st.ok && st.last != nil:
			out = append(out, Problem{Namespace: ns, Err: st.last})
		}
	}
	slices.SortFunc(out, func(a, b Problem) int { return cmp.Compare(a.Namespace, b.Namespace) })
	return out
}

// Warnings returns what made the sampler fall back, without losing data:
// pods or ReplicaSets it may not list, so that it mapped pods to their
// workloads by name.
func (s *Sampler) Warnings() []error {
	if s.owners == nil {
		return nil
	}
	return s.owners.warnings
}

// Why returns why the workload k has no usage, or "": metrics.k8s.io
// missing, its namespace refused, no pods, pods without metrics yet, or
// pods gone during the sample. replicas is its replicas now; -1 means that
// the inventory does not hold it, so it was not sampled: then only a
// problem of its namespace is a reason.
func (s *Sampler) Why(k queries.WorkloadKey, replicas int) string {
	if s.noAPI != nil {
		return s.noAPI.Error()
	}
	st := s.scopes[k.Namespace]
	if st == nil {
		st = s.scopes[""]
	}
	switch {
	case st == nil:
		return "" // not sampled
	case st.dead != nil:
		return st.dead.Error()
	case !st.ok && st.last != nil:
		return st.last.Error()
	}
	ws := s.stats[k]
	switch {
	case replicas < 0:
		return ""
	case ws == nil && replicas == 0:
		return "scaled to zero: no pods to sample"
	case ws == nil && len(s.owners.running[k]) > 0:
		n := len(s.owners.running[k])
		return plural(n, "pod") + ", none with metrics yet (metrics-server reports a pod about a minute after it starts)"
	case ws == nil:
		return "no running pods to sample"
	case ws.samples == 0:
		return "no new measurement from metrics-server during the sample"
	case ws.last.Before(s.last) && replicas == 0:
		return "scaled to zero during the sample: no pods since " + ws.last.UTC().Format(time.TimeOnly) + " UTC"
	case ws.last.Before(s.last):
		return "no pods with metrics since " + ws.last.UTC().Format(time.TimeOnly) + " UTC"
	}
	return ""
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
