package promapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ebbscale/ebb/queries"
)

var _ queries.LastActiveSource = (*Prometheus)(nil)

// LastActive evaluates shape over (at-lookback, at] at every step with one
// range query, and returns for each workload the last step at which its
// value was above activation.
//
// For requests and the model-server signals, whose rows are workloads, the
// store filters the rows (`(expr) > activation`), so only active steps
// travel. For gpu it filters pods with a positive utilization,
// which changes no workload's sum, and the pods are summed per workload and
// step here. For query the whole result is summed per step, as Instant
// reduces it.
func (p *Prometheus) LastActive(ctx context.Context, shape queries.Shape, activation float64, lookback, step time.Duration, at time.Time) ([]queries.LastActive, error) {
	expr, err := p.catalog.Expr(shape)
	if err != nil {
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: err}
	}
	if lookback <= 0 || step <= 0 || math.IsNaN(activation) || math.IsInf(activation, 0) {
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData,
			Err: fmt.Errorf("lookback = %s, step = %s, activation = %g: want positive durations and a finite activation", lookback, step, activation)}
	}
	start := at.Add(-lookback).Add(step)
	if start.After(at) {
		start = at
	}
	threshold := strconv.FormatFloat(activation, 'g', -1, 64)
	switch shape.Signal {
	case queries.SignalRequests, queries.SignalQueue, queries.SignalRunning, queries.SignalKVCache, queries.SignalTTFT:
		expr = "(" + expr + ") > " + threshold
	case queries.SignalGPU:
		expr = "(" + expr + ") > 0"
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
	out := make([]queries.LastActive, 0, len(sums))
	for w, steps := range sums {
		var last int64 = math.MinInt64
		for t, v := range steps {
			if v > activation && t > last {
				last = t
			}
		}
		if last != math.MinInt64 {
			out = append(out, queries.LastActive{Workload: w, At: time.UnixMilli(last).UTC()})
		}
	}
	return out, nil
}

var _ queries.Pinger = (*Prometheus)(nil)

// Ping evaluates `vector(1)` at at: it reads no series, so it checks only
// that the store answers queries.
func (p *Prometheus) Ping(ctx context.Context, at time.Time) error {
	_, err := p.Instant(ctx, queries.Shape{Signal: queries.SignalQuery, Expr: "vector(1)"}, at)
	return err
}
