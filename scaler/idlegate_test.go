package scaler

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/shutdown"
)

// fakeGate holds back every idle answer until it is open.
type fakeGate struct {
	open  atomic.Bool
	asked atomic.Int32
}

func (g *fakeGate) IdleReady(queries.WorkloadKey) bool {
	g.asked.Add(1)
	return g.open.Load()
}

// TestIdleGateHoldsBackIdle: a workload Decide finds idle is answered
// active (switching) while the IdleGate holds it back, and idle at the
// first refresh after it lets go; the StateSink is told idle from the
// start, since that is what puts the activator in front. Active answers
// and unknown ones never wait on the gate.
func TestIdleGateHoldsBackIdle(t *testing.T) {
	src := &queriestest.FakeSource{}
	w, busy := wk("a", "w"), wk("a", "busy")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0}, queries.Sample{Workload: busy, Value: 3})
	gate := &fakeGate{}
	sink := &recordingSink{}
	c, clk := policyCollector(t, src, func(cfg *Config) {
		cfg.IdleGate, cfg.States = gate, sink
		cfg.Policy = shutdown.Policy{IdleAfter: time.Minute}
	})
	in, inBusy := c.Register(reqShape, w, 0, 0), c.Register(reqShape, busy, 0, 0)
	c.Refresh(context.Background())
	stepTo(c, clk, t0.Add(2*time.Minute))
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonSwitching {
		t.Fatalf("idle, held back: %v, want active by %s", d, shutdown.ReasonSwitching)
	}
	if d := decision(t, c, inBusy); !d.Active || d.Reason != shutdown.ReasonTraffic {
		t.Errorf("busy: %v, want active by traffic", d)
	}
	var told []string
	sink.mu.Lock()
	for _, s := range sink.states {
		if s.Workload == w {
			told = append(told, s.Decision.Reason.String())
		}
	}
	sink.mu.Unlock()
	if len(told) == 0 || told[len(told)-1] != "idle" || slices.Contains(told, "switching") {
		t.Errorf("the StateSink was told %v, want ending in idle and never switching", told)
	}
	if got := shutdown.Switching(shutdown.Decision{Reason: shutdown.ReasonIdle}).Text(); got != "idle, switching its Services to the activator first" {
		t.Errorf("text %q", got)
	}

	gate.open.Store(true)
	clk.Add(5 * time.Second)
	c.Refresh(context.Background())
	if d := decision(t, c, in); d.Active || d.Reason != shutdown.ReasonIdle {
		t.Fatalf("the gate let go: %v, want idle", d)
	}
	// Answered idle, it stays idle without asking again each tick.
	asked := gate.asked.Load()
	stepTo(c, clk, clk.Now().Add(time.Minute))
	if got := gate.asked.Load(); got != asked {
		t.Errorf("the gate was asked %d more times while the workload stayed idle, want 0", got-asked)
	}

	// Unknown stays unknown, gate or not.
	gate.open.Store(false)
	src.Fail(context.DeadlineExceeded)
	stepTo(c, clk, clk.Now().Add(2*time.Minute))
	if d := decision(t, c, in); d.Known() {
		t.Errorf("store down past max staleness: %v, want unknown", d)
	}
}
