package scaler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/shutdown"
)

// historySource is a fake store with history: the last activity and the
// active steps of one job that ran 10 minutes every 2 hours.
type historySource struct {
	queriestest.FakeLastActive
	mu      sync.Mutex
	runs    []time.Time // starts
	err     error
	history int // ActiveSteps calls
}

func (h *historySource) ActiveSteps(_ context.Context, shape queries.Shape, activation float64, lookback, step time.Duration, at time.Time) (map[queries.WorkloadKey][]time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history++
	if h.err != nil {
		return nil, h.err
	}
	var steps []time.Time
	for _, r := range h.runs {
		for t := r; t.Before(r.Add(10 * time.Minute)); t = t.Add(step) {
			if t.After(at.Add(-lookback)) && !t.After(at) {
				steps = append(steps, t)
			}
		}
	}
	return map[queries.WorkloadKey][]time.Time{wk("batch", "report"): steps}, nil
}

var _ ActivitySource = (*historySource)(nil)

// jobHistory is three days of runs every 2h before t0, the last at t0-1h50m.
func jobHistory() *historySource {
	h := &historySource{}
	for t := t0.Add(-72*time.Hour + 10*time.Minute); t.Before(t0.Add(-time.Hour)); t = t.Add(2 * time.Hour) {
		h.runs = append(h.runs, t)
	}
	last := h.runs[len(h.runs)-1].Add(9 * time.Minute)
	h.SetLastActive(reqShape, queries.LastActive{Workload: wk("batch", "report"), At: last})
	h.Set(reqShape, queries.Sample{Workload: wk("batch", "report"), Value: 0})
	return h
}

func autoCollector(t *testing.T, src queries.Source) (*Collector, *Interest, func(at time.Time), func() shutdown.Decision) {
	t.Helper()
	c, clk := policyCollector(t, src, func(cfg *Config) {
		cfg.Policy = shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute, Auto: true}
	})
	in := c.Register(reqShape, wk("batch", "report"), 0, 0)
	c.Refresh(context.Background())
	return c, in, func(at time.Time) { stepTo(c, clk, at) }, func() shutdown.Decision { return decision(t, c, in) }
}

func TestAutoLearnsFromTheStoreOnStart(t *testing.T) {
	h := jobHistory()
	c, in, step, dec := autoCollector(t, h)
	last := h.runs[len(h.runs)-1]
	next := last.Add(2 * time.Hour) // t0+10m
	if d := dec(); d.Active || d.Reason != shutdown.ReasonIdle {
		t.Fatalf("between runs, right after a restart: %v, want idle", d)
	}
	// The gaps are 1h51m (last active step 9 minutes into a run): the
	// pre-wake opens 2m30s before, at next-2m30s.
	if want := last.Add(9*time.Minute + 111*time.Minute - shutdown.DefaultWakeLead); !dec().Until.Equal(want) {
		t.Errorf("idle until %s, want the pre-wake at %s", dec().Until, want)
	}
	step(next.Add(-3 * time.Minute))
	if d := dec(); d.Active {
		t.Fatalf("3 minutes before the run: %v, want idle", d)
	}
	step(next.Add(-2 * time.Minute))
	if d := dec(); !d.Active || d.Reason != shutdown.ReasonMinUptime && d.Reason != shutdown.ReasonPreWake {
		t.Fatalf("2 minutes before the run: %v, want active by pre-wake", d)
	}
	// The run: 10 minutes of traffic, then nothing.
	h.Set(reqShape, queries.Sample{Workload: wk("batch", "report"), Value: 3})
	step(next.Add(10 * time.Minute))
	if d := dec(); !d.Active || d.Reason != shutdown.ReasonTraffic {
		t.Fatalf("during the run: %v, want active by traffic", d)
	}
	h.Set(reqShape, queries.Sample{Workload: wk("batch", "report"), Value: 0})
	step(next.Add(12 * time.Minute))
	if d := dec(); d.Active {
		t.Fatalf("2 minutes after the run: %v, want idle (keep-alive 1m)", d)
	}
	if h.history != 1 {
		t.Errorf("%d history reads, want 1: the model is cached in the interest", h.history)
	}
	if in.learn.model == nil || in.learn.model.Mode != shutdown.ModeLearned {
		t.Errorf("model %+v, want learned", in.learn.model)
	}
	_ = c
}

func TestAutoWithoutHistoryIsFixed(t *testing.T) {
	h := jobHistory()
	h.err = errors.New("store down")
	_, _, step, dec := autoCollector(t, h)
	last := h.runs[len(h.runs)-1]
	step(last.Add(2*time.Hour - 2*time.Minute))
	if d := dec(); d.Active || d.Reason != shutdown.ReasonIdle {
		t.Fatalf("history unread, before the run: %v, want idle (no pre-wake)", d)
	}
	step(last.Add(2*time.Hour + 9*time.Minute))
	if d := dec(); d.Active {
		t.Fatalf("history unread, when the run was due: %v, want idle", d)
	}
}

func TestAutoOutageNeverPreWakes(t *testing.T) {
	h := jobHistory()
	_, _, step, dec := autoCollector(t, h)
	last := h.runs[len(h.runs)-1]
	step(last.Add(2*time.Hour - 5*time.Minute))
	if d := dec(); d.Active {
		t.Fatalf("before the pre-wake: %v, want idle", d)
	}
	h.Fail(errors.New("connection refused"))
	step(last.Add(2*time.Hour - time.Minute))
	d := dec()
	if d.Known() || d.Reason != shutdown.ReasonUnknown {
		t.Fatalf("store down for 4 minutes, in the pre-wake window: %v, want unknown", d)
	}
}

// TestAutoHotPathDoesNotLearn checks that what KEDA's calls read, the
// snapshot's activity and value, neither learns nor allocates for an auto
// interest: the model changes only in the tick.
func TestAutoHotPathDoesNotLearn(t *testing.T) {
	h := jobHistory()
	c, in, _, _ := autoCollector(t, h)
	model, at := in.learn.model, in.learn.learnedAt
	snap := c.Snapshot()
	allocs := testing.AllocsPerRun(1000, func() {
		_ = snap.Activity(in)
		_, _ = snap.Value(in, t0, time.Minute)
	})
	if allocs != 0 || in.learn.model != model || !in.learn.learnedAt.Equal(at) || h.history != 1 {
		t.Errorf("%v allocations, model replaced %v, learned at %v (was %v), %d history reads; want 0, false, unchanged, 1",
			allocs, in.learn.model != model, in.learn.learnedAt, at, h.history)
	}
}
