package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// ActiveSteps evaluates shape at every step over (at-lookback, at] and
// returns, for each workload with any, the steps at which its value was
// above activation, in time order: the simulated past that ebb's
// idleAfter: auto learns from on start, as it reads a store's. Traffic is
// a function of time, so the past is as exact as the present; the gpu
// signal's past uses today's replicas. It is not counted in Queries.
func (c *Cluster) ActiveSteps(ctx context.Context, shape queries.Shape, activation float64, lookback, step time.Duration, at time.Time) (map[queries.WorkloadKey][]time.Time, error) {
	switch {
	case shape.Signal != queries.SignalRequests && shape.Signal != queries.SignalGPU:
		return nil, badData(shape, fmt.Errorf("the simulator keeps the past of the requests and gpu signals only, not %q", shape.Signal))
	case shape.Window <= 0 || lookback <= 0 || step <= 0:
		return nil, badData(shape, fmt.Errorf("window = %v, lookback = %v, step = %v: want positive durations", shape.Window, lookback, step))
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fault != nil {
		return nil, faultError(shape, c.fault)
	}
	secs := shape.Window.Seconds()
	out := map[queries.WorkloadKey][]time.Time{}
	for _, w := range c.workloads {
		if w.silent || shape.Signal == queries.SignalGPU && (w.GPUsPerReplica == 0 || w.Replicas == 0) {
			continue
		}
		var steps []time.Time
		for t := at.Add(-lookback).Add(step); !t.After(at); t = t.Add(step) {
			if err := ctx.Err(); err != nil {
				return nil, &queries.QueryError{Shape: shape, Kind: "canceled", Err: err}
			}
			from := t.Add(-shape.Window)
			var v float64
			if shape.Signal == queries.SignalRequests {
				v = w.Traffic.Requests(from, t) / secs
			} else {
				busy := w.Traffic.Requests(from, t) * w.GPUTimePerRequest.Seconds()
				if w.work != nil {
					busy = w.work.BusySeconds(from, t)
				}
				v = min(100*float64(w.Replicas), 100*busy/secs)
			}
			if v > activation {
				steps = append(steps, t)
			}
		}
		if len(steps) > 0 {
			out[w.Key] = steps
		}
	}
	return out, nil
}
