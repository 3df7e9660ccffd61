package scaler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/shutdown"
)

// TestPendingWakesAtOnce: a request the activator holds for an idle
// workload makes every interest of that workload active at once, without a
// tick, and wakes its waiters; once the requests are delivered the
// workload stays up for its idle period (15m), counted from the demand.
func TestPendingWakesAtOnce(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, clk := policyCollector(t, src, nil)
	w, other := wk("a", "w"), wk("a", "other")
	req := c.Register(reqShape, w, 0, 0)
	gpu := c.Register(queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}, w, 0, 0)
	bystander := c.Register(reqShape, other, 0, 0)
	stepTo(c, clk, t0.Add(time.Minute)) // no traffic ever: idle
	for _, in := range []*Interest{req, gpu, bystander} {
		if a := c.Snapshot().Activity(in); a != Idle {
			t.Fatalf("%s %s before any demand: %s, want idle", in.workload, in.shape, a)
		}
	}
	reqCh, gpuCh, otherCh := req.Changes(), gpu.Changes(), bystander.Changes()
	c.Pending(w, 1)
	for _, in := range []*Interest{req, gpu} {
		if a := c.Snapshot().Activity(in); a != Active || in.Held() != 1 {
			t.Errorf("%s with a held request, before any tick: %s, held %d; want active, 1", in.shape, a, in.Held())
		}
	}
	if !woken(reqCh) || !woken(gpuCh) {
		t.Error("the first held request did not wake the workload's waiters")
	}
	if woken(otherCh) || c.Snapshot().Activity(bystander) != Idle {
		t.Error("another workload's interest was woken by the demand")
	}
	// More requests held: no new wake; a new trigger of the workload is
	// active at once too.
	reqCh = req.Changes()
	c.Pending(w, 7)
	if woken(reqCh) {
		t.Error("a second held request woke the waiters again")
	}
	late := c.Register(reqShape, w, 2, 0)
	if a := c.Snapshot().Activity(late); a != Active || late.Held() != 7 {
		t.Errorf("an interest registered while 7 requests are held: %s, held %d; want active, 7", a, late.Held())
	}

	// Delivered at +1m10s: still active before the next tick and after it
	// (the demand was activity), idle 15m after the demand ended.
	clk.Add(10 * time.Second)
	c.Pending(w, 0)
	if a := c.Snapshot().Activity(req); a != Active || req.Held() != 0 {
		t.Errorf("right after delivery: %s, held %d; want active, 0", a, req.Held())
	}
	stepTo(c, clk, clk.Now().Add(5*time.Second))
	if d := decision(t, c, req); !d.Active || d.Reason != shutdown.ReasonMinUptime {
		t.Errorf("the tick after delivery: %v, want active (min-uptime: the demand woke it)", d)
	}
	stepTo(c, clk, t0.Add(time.Minute+10*time.Second+15*time.Minute-5*time.Second))
	if a := c.Snapshot().Activity(req); a != Active {
		t.Errorf("just before idle-after: %s, want active", a)
	}
	stepTo(c, clk, t0.Add(time.Minute+10*time.Second+15*time.Minute+5*time.Second))
	if a := c.Snapshot().Activity(req); a != Idle {
		t.Errorf("15m after the demand ended: %s, want idle", a)
	}
}

// TestPendingIsKnownDuringAnOutage: held requests are demand ebb sees
// itself, so they wake a workload while the store is down; once they are
// delivered, the state is unknown again, not idle.
func TestPendingIsKnownDuringAnOutage(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, clk := policyCollector(t, src, nil)
	w := wk("a", "w")
	in := c.Register(reqShape, w, 0, 0)
	stepTo(c, clk, t0.Add(time.Minute))
	src.Fail(&queries.QueryError{Shape: reqShape, Kind: "unreachable", Err: errors.New("connection refused")})
	stepTo(c, clk, t0.Add(5*time.Minute))
	if a := c.Snapshot().Activity(in); a != Unknown {
		t.Fatalf("4m into the outage: %s, want unknown", a)
	}
	c.Pending(w, 3)
	if a := c.Snapshot().Activity(in); a != Active {
		t.Errorf("with held requests during the outage: %s, want active", a)
	}
	stepTo(c, clk, clk.Now().Add(5*time.Second))
	if a := c.Snapshot().Activity(in); a != Active {
		t.Errorf("a tick later, still holding: %s, want active", a)
	}
	c.Pending(w, 0)
	stepTo(c, clk, clk.Now().Add(5*time.Second))
	if a := c.Snapshot().Activity(in); a != Unknown {
		t.Errorf("delivered, store still down: %s, want unknown", a)
	}
}

// TestForgottenInterestLeavesTheIndex: an interest the collector forgets is
// no longer told about demand.
func TestForgottenInterestLeavesTheIndex(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, clk := newTestCollector(t, src)
	w := wk("a", "w")
	in := c.Register(reqShape, w, 0, 0)
	clk.Add(11 * time.Minute) // past ForgetAfter (10m)
	c.Refresh(context.Background())
	if !in.Dead() {
		t.Fatal("the interest was not forgotten")
	}
	c.Pending(w, 2)
	if in.Held() != 0 {
		t.Errorf("a forgotten interest got held %d", in.Held())
	}
	if n := len(c.byWorkload[w]); n != 0 {
		t.Errorf("the index still holds %d interests of the workload", n)
	}
	again := c.Register(reqShape, w, 0, 0)
	if again.Held() != 2 {
		t.Errorf("registered again while 2 are held: held %d, want 2", again.Held())
	}
}

// woken reports whether ch is closed, without waiting.
func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sink records the states the collector publishes.
type sink struct{ states []WorkloadState }

func (s *sink) Publish(st WorkloadState) { s.states = append(s.states, st) }

// TestPendingState: a tick while requests are held decides "held", and the
// state written on the workload says how many since when.
func TestPendingState(t *testing.T) {
	src := &queriestest.FakeSource{}
	states := &sink{}
	c, clk := policyCollector(t, src, func(cfg *Config) { cfg.States = states })
	w := wk("a", "w")
	in := c.Register(reqShape, w, 0, 0)
	stepTo(c, clk, t0.Add(time.Minute))
	since := clk.Now()
	c.Pending(w, 2)
	clk.Add(3 * time.Second)
	c.Pending(w, 5)
	stepTo(c, clk, clk.Now().Add(2*time.Second))
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonHeld {
		t.Fatalf("a tick while 5 requests are held: %v, want active: held", d)
	}
	last := states.states[len(states.states)-1]
	want := "active: holding 5 requests since " + since.UTC().Format(time.RFC3339)
	if got := shutdown.StateAnnotations(last.Decision, last.LastActive)[shutdown.AnnotationState]; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
}
