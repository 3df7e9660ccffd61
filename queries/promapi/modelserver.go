package promapi

import (
	"context"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// modelServer decodes a model-server signal's answer: one row per workload,
// labelled with the catalog's ModelServerLabels (the query maps pods to
// workloads), as requests' rows are.
func (p *Prometheus) modelServer(ctx context.Context, shape queries.Shape, expr string, at time.Time) ([]queries.Sample, error) {
	var samples []queries.Sample
	err := p.withAnswerCache(shape, func(cache *answerCache) (int, error) {
		if cache.rows > 0 {
			samples = make([]queries.Sample, 0, cache.rows)
		}
		d := &instantDecoder{labels: p.catalog.ModelServerLabels(), intern: cache.intern, parser: &cache.parser}
		d.emit = func(vals []string, v float64) {
			if vals[0] == "" || vals[1] == "" {
				d.skipped++
				return
			}
			samples = append(samples, queries.Sample{Workload: queries.WorkloadKey{Namespace: vals[0], Name: vals[1]}, Value: v})
		}
		err := p.instant(ctx, shape, expr, at, d)
		return len(samples), err
	})
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, nil
	}
	return samples, nil
}
