package promapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// History evaluates shape over (at-lookback, at] at every step with one
// range query (in chunks), and returns each workload's value at each step
// in time order: the history idleAfter: auto learns from after a restart,
// and `ebb backtest` replays. Requests rows are per workload; gpu rows are
// per pod and summed per workload and step; a query's rows are summed into
// one series under the zero WorkloadKey, as Instant reduces them.
func (p *Prometheus) History(ctx context.Context, shape queries.Shape, lookback, step time.Duration, at time.Time) (map[queries.WorkloadKey][]Point, error) {
	return p.history(ctx, shape, "", lookback, step, at)
}

// ActiveSteps returns, for each workload with any, the steps over
// (at-lookback, at] at which shape's value was above activation, in time
// order: the activity idleAfter: auto learns from after a restart. As in
// LastActive, the store filters the rows (requests above activation, gpu
// pods above 0), so that mostly active steps travel.
func (p *Prometheus) ActiveSteps(ctx context.Context, shape queries.Shape, activation float64, lookback, step time.Duration, at time.Time) (map[queries.WorkloadKey][]time.Time, error) {
	if math.IsNaN(activation) || math.IsInf(activation, 0) {
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: fmt.Errorf("activation = %g, want a finite number", activation)}
	}
	threshold := strconv.FormatFloat(activation, 'g', -1, 64)
	filter := ""
	switch shape.Signal {
	case queries.SignalRequests:
		filter = " > " + threshold
	case queries.SignalGPU:
		filter = " > 0"
	}
	h, err := p.history(ctx, shape, filter, lookback, step, at)
	if err != nil {
		return nil, err
	}
	out := make(map[queries.WorkloadKey][]time.Time, len(h))
	for w, pts := range h {
		var ts []time.Time
		for _, pt := range pts {
			if pt.V > activation {
				ts = append(ts, pt.T)
			}
		}
		if len(ts) > 0 {
			out[w] = ts
		}
	}
	return out, nil
}

// history is History with filter appended to the parenthesised expression.
func (p *Prometheus) history(ctx context.Context, shape queries.Shape, filter string, lookback, step time.Duration, at time.Time) (map[queries.WorkloadKey][]Point, error) {
	expr, err := p.catalog.Expr(shape)
	if err != nil {
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: err}
	}
	if lookback <= 0 || step <= 0 {
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData,
			Err: fmt.Errorf("lookback = %s, step = %s: want positive durations", lookback, step)}
	}
	start := at.Add(-lookback).Add(step)
	if start.After(at) {
		start = at
	}
	if filter != "" {
		expr = "(" + expr + ")" + filter
	}
	series, err := p.Range(ctx, expr, start, at, step)
	if err != nil {
		var qe *queries.QueryError
		if errors.As(err, &qe) {
			qe.Shape = shape
		}
		return nil, err
	}
	sums := p.stepSums(shape, series)
	out := make(map[queries.WorkloadKey][]Point, len(sums))
	for w, m := range sums {
		pts := make([]Point, 0, len(m))
		for t, v := range m {
			pts = append(pts, Point{T: time.UnixMilli(t).UTC(), V: v})
		}
		slices.SortFunc(pts, func(a, b Point) int { return a.T.Compare(b.T) })
		out[w] = pts
	}
	return out, nil
}
