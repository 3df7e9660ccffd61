package promapi

import (
	"math"

	"github.com/ebbscale/ebb/queries"
)

// stepSums adds up a range answer of shape's query per workload and step
// (Unix milliseconds): the rows of one workload, as the catalog labels them
// for the signal, summed; NaN and infinite values left out. A custom
// query's rows all go to the zero WorkloadKey. It is what LastActive and
// History read a range answer into.
func (p *Prometheus) stepSums(shape queries.Shape, series []Series) map[queries.WorkloadKey]map[int64]float64 {
	sums := make(map[queries.WorkloadKey]map[int64]float64)
	add := func(w queries.WorkloadKey, pts []Point) {
		m := sums[w]
		if m == nil {
			m = make(map[int64]float64, len(pts))
			sums[w] = m
		}
		for _, pt := range pts {
			if !math.IsNaN(pt.V) && !math.IsInf(pt.V, 0) {
				m[pt.T.UnixMilli()] += pt.V
			}
		}
	}
	for _, s := range series {
		switch shape.Signal {
		case queries.SignalRequests:
			r := p.catalog.Requests
			if ns, wl := s.Labels[r.NamespaceLabel], s.Labels[r.WorkloadLabel]; ns != "" && wl != "" {
				add(queries.WorkloadKey{Namespace: ns, Name: wl}, s.Points)
			}
		case queries.SignalQueue, queries.SignalRunning, queries.SignalKVCache, queries.SignalTTFT:
			labels := p.catalog.ModelServerLabels()
			if ns, wl := s.Labels[labels[0]], s.Labels[labels[1]]; ns != "" && wl != "" {
				add(queries.WorkloadKey{Namespace: ns, Name: wl}, s.Points)
			}
		case queries.SignalGPU:
			labels := p.catalog.GPULabels()
			vals := make([]string, len(labels))
			for i, l := range labels {
				vals[i] = s.Labels[l]
			}
			if ns, pod := queries.PodOf(vals); ns != "" && pod != "" {
				// One row per pod: its mean across its GPUs. (A pod
				// reported under both its own and exported labels counts
				// twice here, which can only make it look more active.)
				add(queries.WorkloadKey{Namespace: ns, Name: queries.WorkloadOfPod(pod)}, s.Points)
			}
		default:
			add(queries.WorkloadKey{}, s.Points)
		}
	}
	return sums
}
