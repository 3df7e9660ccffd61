package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/autopilot/live"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
)

// seriesSeen is the store as recommend reads it, remembering for each of
// the catalog's metrics whether a query that reads it returned series, so
// that an empty report can say which were missing.
type seriesSeen struct {
	store   autopilot.RangeQuerier
	cat     autopilot.HistoryCatalog
	metrics []string

	mu    sync.Mutex
	asked map[string]bool
	found map[string]bool
}

var _ autopilot.RangeQuerier = (*seriesSeen)(nil)

func newSeriesSeen(store autopilot.RangeQuerier, cat autopilot.HistoryCatalog) *seriesSeen {
	s := &seriesSeen{store: store, cat: cat, asked: map[string]bool{}, found: map[string]bool{}}
	for _, p := range providers(cat) {
		s.metrics = append(s.metrics, p.metrics...)
	}
	return s
}

func (s *seriesSeen) Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	out, err := s.store.Range(ctx, expr, start, end, step)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.metrics {
		if strings.Contains(expr, m) {
			s.asked[m] = true
			if len(out) > 0 {
				s.found[m] = true
			}
		}
	}
	return out, err
}

// missing returns the metrics that were asked for and never had series.
func (s *seriesSeen) missing() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for name := range s.asked {
		if !s.found[name] {
			m[name] = true
		}
	}
	return m
}

// provider is what usually exports some of the metrics recommend reads.
type provider struct {
	name    string
	metrics []string
}

func providers(cat autopilot.HistoryCatalog) []provider {
	c, w := cat.Containers, cat.Workloads
	return []provider{
		{"kube-state-metrics", []string{c.Requests, c.Limits, w.DeploymentReplicas, w.StatefulSetReplicas}},
		{"cAdvisor, scraped through the kubelet", []string{c.CPU, c.Memory}},
		{"dcgm-exporter", []string{cat.GPU.FramebufferUsed}},
		{"Istio", []string{cat.Signals.Requests.Metric}},
	}
}

// reportedWorkloads counts the report's workloads, leaving out the rows
// about a problem with every namespace.
func reportedWorkloads(r *autopilot.Report) int {
	n := 0
	for _, w := range r.Workloads {
		if w.Name != live.AllNamespaces {
			n++
		}
	}
	return n
}

// elsewhere reports whether the store has series of metric in any
// namespace between start and end: then the namespaces asked for are
// empty, not the store.
func (s *seriesSeen) elsewhere(ctx context.Context, metric string, start, end time.Time) bool {
	out, err := s.store.Range(ctx, "count("+metric+")", start, end, max(end.Sub(start), time.Second))
	return err == nil && len(out) > 0
}

// emptyReport explains a report without workloads: where ebb looked, and,
// for a store, whether other namespaces have workloads, or which series it
// found none of and what exports them.
func emptyReport(ctx context.Context, c *recommendConfig, seen *seriesSeen, start, end time.Time) error {
	where := "in any namespace"
	if len(c.namespaces) > 0 {
		where = "in namespace " + strings.Join(c.namespaces, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no workload to recommend for %s from %s to %s", where, start.Format(time.RFC3339), end.Format(time.RFC3339))
	if seen == nil {
		if c.source == "sim" {
			b.WriteString(": the simulator's namespaces are ml, notebooks and shop")
		}
		return &emptyReportError{msg: b.String()}
	}
	missing := seen.missing()
	cat := seen.cat
	if len(c.namespaces) > 0 && missing[cat.Containers.Requests] && seen.elsewhere(ctx, cat.Containers.Requests, start, end) {
		fmt.Fprintf(&b, ": other namespaces have kube-state-metrics' series, %s has none; check the name (kubectl get namespaces)", strings.Join(c.namespaces, ", "))
		return &emptyReportError{msg: b.String()}
	}
	var lines []string
	for _, p := range providers(cat) {
		var names []string
		for _, m := range p.metrics {
			if missing[m] {
				names = append(names, m)
			}
		}
		if len(names) > 0 {
			lines = append(lines, fmt.Sprintf("  %s (%s)", strings.Join(names, ", "), p.name))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(&b, "; the store has no series %s of:\n%s", where, strings.Join(lines, "\n"))
	}
	b.WriteString("\ncheck that Prometheus scrapes these exporters, and --history")
	return &emptyReportError{msg: b.String()}
}

// withStoreHint adds what usually fixes a store error to err.
func withStoreHint(err error) error {
	var qe *queries.QueryError
	if errors.As(err, &qe) {
		if hint := storeHint(qe.Kind); hint != "" {
			return fmt.Errorf("%w; %s", err, hint)
		}
	}
	return err
}
