package scaler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
)

var (
	t0       = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reqShape = queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	gpuShape = queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}
	qShape   = queries.Shape{Signal: queries.SignalQuery, Expr: `sum(up{namespace="a"})`}
)

func wk(ns, name string) queries.WorkloadKey { return queries.WorkloadKey{Namespace: ns, Name: name} }

func newTestCollector(t *testing.T, src queries.Source) (*Collector, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(t0)
	c, err := NewCollector(Config{Source: src, Interval: 5 * time.Second, ForgetAfter: 10 * time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func TestCollectorOneQueryPerShape(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, _ := newTestCollector(t, src)
	for i := range 100 {
		c.Register(reqShape, wk("a", fmt.Sprintf("w%d", i)), 0, 0)
	}
	for i := range 50 {
		c.Register(gpuShape, wk("b", fmt.Sprintf("g%d", i)), 0, 0)
	}
	for i := range 3 {
		c.Register(qShape, wk("a", fmt.Sprintf("q%d", i)), 0, 0)
	}
	c.Refresh(context.Background())
	calls := src.Calls()
	if len(calls) != 3 {
		t.Fatalf("got %d queries for 153 workloads on 3 shapes, want 3: %v", len(calls), calls)
	}
	seen := map[queries.Shape]bool{}
	for _, call := range calls {
		seen[call.Shape] = true
		if !call.At.Equal(t0) {
			t.Errorf("query %s evaluated at %s, want the clock's now %s", call.Shape, call.At, t0)
		}
	}
	for _, s := range []queries.Shape{reqShape, gpuShape, qShape} {
		if !seen[s] {
			t.Errorf("shape %s not queried", s)
		}
	}
}

func TestCollectorValues(t *testing.T) {
	src := &queriestest.FakeSource{}
	src.Set(reqShape, queries.Sample{Workload: wk("a", "busy"), Value: 12.5}, queries.Sample{Workload: wk("a", "unwatched"), Value: 99})
	src.Set(qShape, queries.Sample{Value: 7})
	c, _ := newTestCollector(t, src)
	busy := c.Register(reqShape, wk("a", "busy"), 0, 0)
	quiet := c.Register(reqShape, wk("a", "quiet"), 0, 0)
	busyHigh := c.Register(reqShape, wk("a", "busy"), 20, 0) // same workload, other activation
	q1 := c.Register(qShape, wk("a", "x"), 0, 0)
	q2 := c.Register(qShape, wk("a", "y"), 10, 0)
	c.Refresh(context.Background())
	snap := c.Snapshot()

	tests := []struct {
		name       string
		in         *Interest
		value      float64
		lastActive time.Time
	}{
		{"sample", busy, 12.5, t0},
		{"no series means zero", quiet, 0, time.Time{}},
		{"below activation is not activity", busyHigh, 12.5, time.Time{}},
		{"query value applies to every trigger", q1, 7, t0},
		{"query below activation", q2, 7, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, ok := snap.Lookup(tt.in)
			if !ok {
				t.Fatal("no observation")
			}
			if o.Value != tt.value || !o.OK || !o.At.Equal(t0) || o.Err != nil {
				t.Errorf("got value %v ok %v at %v err %v, want %v true %v nil", o.Value, o.OK, o.At, o.Err, tt.value, t0)
			}
			if !o.LastActive.Equal(tt.lastActive) {
				t.Errorf("got last active %v, want %v", o.LastActive, tt.lastActive)
			}
		})
	}
	if got := snap.size(); got != 5 {
		t.Errorf("snapshot holds %d interests, want 5", got)
	}
}

func TestCollectorFailureKeepsLastValue(t *testing.T) {
	src := &queriestest.FakeSource{}
	src.Set(reqShape, queries.Sample{Workload: wk("a", "w"), Value: 3})
	c, clk := newTestCollector(t, src)
	in := c.Register(reqShape, wk("a", "w"), 0, 0)
	c.Refresh(context.Background())
	first := c.Snapshot()

	boom := &queries.QueryError{Shape: reqShape, Kind: "unreachable", Err: errors.New("connection refused")}
	src.Fail(boom)
	clk.Add(5 * time.Second)
	c.Refresh(context.Background())
	o, ok := c.Snapshot().Lookup(in)
	if !ok {
		t.Fatal("no observation after failure")
	}
	if o.OK || !errors.Is(o.Err, boom) || o.Value != 3 || !o.At.Equal(t0) || !o.LastActive.Equal(t0) {
		t.Errorf("after failure got %+v, want value 3 observed at %v, OK false, err %v", o, t0, boom)
	}
	if err, queried := c.Snapshot().ShapeErr(reqShape); !queried || !errors.Is(err, boom) {
		t.Errorf("ShapeErr = %v, %v; want %v, true", err, queried, boom)
	}
	// The earlier snapshot is immutable.
	if o, _ := first.Lookup(in); !o.OK || o.Err != nil {
		t.Errorf("earlier snapshot changed: %+v", o)
	}

	src.Fail(nil)
	src.Set(reqShape, queries.Sample{Workload: wk("a", "w"), Value: 0}) // recovered, no traffic now
	clk.Add(5 * time.Second)
	c.Refresh(context.Background())
	o, _ = c.Snapshot().Lookup(in)
	if !o.OK || o.Value != 0 || !o.At.Equal(t0.Add(10*time.Second)) || !o.LastActive.Equal(t0) {
		t.Errorf("after recovery got %+v, want value 0 at %v, last active %v", o, t0.Add(10*time.Second), t0)
	}
}

func TestCollectorForgetsUntouched(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, clk := newTestCollector(t, src)
	stale := c.Register(reqShape, wk("a", "stale"), 0, 0)
	kept := c.Register(gpuShape, wk("a", "kept"), 0, 0)
	c.Refresh(context.Background())

	clk.Add(9 * time.Minute)
	kept.Touch(clk.Now())
	clk.Add(2 * time.Minute) // stale untouched for 11m > 10m
	c.Refresh(context.Background())
	if !stale.Dead() || kept.Dead() {
		t.Fatalf("dead: stale %v kept %v, want true false", stale.Dead(), kept.Dead())
	}
	last := src.Calls()[len(src.Calls())-1]
	if n := len(src.Calls()); n != 3 || last.Shape != gpuShape {
		t.Errorf("got %d calls, last %v; want 3 with the forgotten shape no longer queried", n, last.Shape)
	}
	if _, ok := c.Snapshot().Lookup(stale); ok {
		t.Error("forgotten interest still in the snapshot")
	}
	again := c.Register(reqShape, wk("a", "stale"), 0, 0)
	if again == stale || again.Dead() {
		t.Error("registering a forgotten interest must create a live one")
	}
	c.Refresh(context.Background())
	if _, ok := c.Snapshot().Lookup(again); !ok {
		t.Error("re-registered interest missing from the snapshot")
	}
	if _, ok := c.Snapshot().Lookup(stale); ok {
		t.Error("a dead interest must not see the slot's new owner")
	}
}

func TestCollectorReadyAndChanged(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, _ := newTestCollector(t, src)
	c.Register(reqShape, wk("a", "w"), 0, 0)
	src.Fail(errors.New("down"))
	changed := c.Changed()
	c.Refresh(context.Background())
	select {
	case <-changed:
	default:
		t.Error("Changed not closed by a refresh")
	}
	select {
	case <-c.Ready():
		t.Fatal("ready after a failed tick")
	default:
	}
	src.Fail(nil)
	c.Refresh(context.Background())
	select {
	case <-c.Ready():
	default:
		t.Fatal("not ready after a successful tick")
	}
}

func TestCollectorRunTicksOnClock(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, clk := newTestCollector(t, src) // Interval 5s, KickGap 1s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	changed := c.Changed()
	go func() { done <- c.Run(ctx) }()

	waitChanged := func(what string, at time.Time) {
		t.Helper()
		select {
		case <-changed:
			changed = c.Changed()
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no snapshot", what)
		}
		if got := c.Snapshot().At; !got.Equal(at) {
			t.Errorf("%s: evaluated at t0+%s, want t0+%s", what, got.Sub(t0), at.Sub(t0))
		}
	}
	waitChanged("first refresh at start", t0)
	// A new interest asks for a refresh without waiting for the tick.
	c.Register(reqShape, wk("a", "w"), 0, 0)
	waitChanged("refresh after a new interest", t0)
	// Another one in the same instant waits for KickGap on the clock.
	c.Register(gpuShape, wk("a", "g"), 0, 0)
	clk.Add(time.Second)
	waitChanged("refresh a KickGap after the last", t0.Add(time.Second))
	clk.Add(4 * time.Second)
	waitChanged("tick after the interval", t0.Add(5*time.Second))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestCollectorQueryTimeout(t *testing.T) {
	src := &queriestest.FakeSource{}
	src.Hang()
	defer src.Release()
	clk := clock.NewMock()
	c, err := NewCollector(Config{Source: src, QueryTimeout: 50 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	in := c.Register(reqShape, wk("a", "w"), 0, 0)
	c.Refresh(context.Background()) // must return once the query's context ends
	o, _ := c.Snapshot().Lookup(in)
	var qe *queries.QueryError
	if o.OK || !errors.As(o.Err, &qe) || qe.Kind != "timeout" {
		t.Errorf("got %+v, want a timeout QueryError", o)
	}
}

func TestNewCollectorErrors(t *testing.T) {
	src := &queriestest.FakeSource{}
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "collector: no source"},
		{Config{Source: src, Interval: time.Millisecond}, "collector: interval = 1ms, must be at least 100ms"},
		{Config{Source: src, QueryTimeout: -time.Second}, "collector: query timeout = -1s, must be positive"},
		{Config{Source: src, ForgetAfter: time.Second}, "collector: forget-after = 1s, must be at least the interval 5s"},
		{Config{Source: src, Concurrency: -1}, "collector: concurrency = -1, must be positive"},
	}
	for _, tt := range tests {
		_, err := NewCollector(tt.cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}

func TestReadyNeedsTheStoreWhenNothingIsWatched(t *testing.T) {
	src := &queriestest.FakePinger{PingErr: errors.New("connection refused")}
	c, _ := newTestCollector(t, src)
	c.Refresh(context.Background())
	select {
	case <-c.Ready():
		t.Fatal("ready while the store does not answer")
	default:
	}
	src.PingErr = nil
	c.Refresh(context.Background())
	select {
	case <-c.Ready():
	default:
		t.Fatal("not ready once the store answers")
	}
}

// TestCollectorPacesKickedRefreshes registers triggers in bursts, as KEDA
// does when it or ebb restarts: the first new trigger is refreshed at once,
// the rest of a burst together once KickGap has passed on the collector's
// clock, instead of one query per registration.
func TestCollectorPacesKickedRefreshes(t *testing.T) {
	src := &queriestest.FakeSource{}
	clk := clock.NewMock() // the ticker never fires: only kicks refresh
	clk.Set(t0)
	const gap = 300 * time.Millisecond
	c, err := NewCollector(Config{Source: src, Interval: time.Hour, ForgetAfter: 2 * time.Hour, KickGap: gap, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-c.Ready() // the first refresh, with nothing registered

	// waitFor waits (in wall time, bounded) until the snapshot holds n
	// interests.
	waitFor := func(n int) {
		t.Helper()
		for c.Snapshot().size() < n {
			select {
			case <-c.Changed():
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d triggers observed after 10s, clock at t0+%s", c.Snapshot().size(), n, clk.Now().Sub(t0))
			}
		}
	}
	queried := func() int { return len(src.Calls()) }

	c.Register(reqShape, wk("a", "w0"), 0, 0)
	waitFor(1)
	if n := queried(); n != 1 {
		t.Fatalf("the first new trigger made %d queries, want 1 at once", n)
	}
	const burst = 20
	for round := 1; round <= 2; round++ {
		for i := range burst {
			c.Register(reqShape, wk("a", fmt.Sprintf("r%d-w%d", round, i)), 0, 0)
		}
		clk.Add(gap - time.Millisecond) // Add yields, so the collector runs
		if n := queried(); n != round {
			t.Fatalf("burst %d: %d queries before the gap has passed, want %d", round, n, round)
		}
		clk.Add(time.Millisecond)
		waitFor(1 + round*burst)
		if n := queried(); n != round+1 {
			t.Fatalf("burst %d: %d queries once the gap has passed, want %d: one per burst", round, n, round+1)
		}
	}
}

// TestCollectorWithoutPacing: a negative KickGap refreshes for every new
// interest at once, with the clock standing still.
func TestCollectorWithoutPacing(t *testing.T) {
	src := &queriestest.FakeSource{}
	clk := clock.NewMock()
	clk.Set(t0)
	c, err := NewCollector(Config{Source: src, Interval: time.Hour, ForgetAfter: 2 * time.Hour, KickGap: -1, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-c.Ready()
	for i := range 3 {
		c.Register(reqShape, wk("a", fmt.Sprintf("w%d", i)), 0, 0)
		for c.Snapshot().size() < i+1 {
			select {
			case <-c.Changed():
			case <-time.After(10 * time.Second):
				t.Fatalf("interest %d not refreshed within 10s with the clock standing still", i)
			}
		}
	}
}

// TestInterestChangesWakesOnlyOnChange: a tick that leaves an interest's
// answer alone does not wake its waiters; a first answer, a flip and being
// forgotten do.
func TestInterestChangesWakesOnlyOnChange(t *testing.T) {
	src := &queriestest.FakeSource{}
	c, clk := newTestCollector(t, src)
	busy, calm := wk("a", "busy"), wk("a", "calm")
	src.Set(reqShape, queries.Sample{Workload: busy, Value: 3}, queries.Sample{Workload: calm, Value: 2})
	b := c.Register(reqShape, busy, 0, time.Minute)
	k := c.Register(reqShape, calm, 0, time.Minute)
	bch, kch := b.Changes(), k.Changes()
	c.Refresh(context.Background())
	if !woken(bch) || !woken(kch) {
		t.Fatal("the first answer did not wake the waiters")
	}
	bch, kch = b.Changes(), k.Changes()
	clk.Add(5 * time.Second)
	c.Refresh(context.Background())
	if woken(bch) || woken(kch) {
		t.Fatal("a tick that changed no answer woke a waiter")
	}
	// calm goes quiet: idle after its idleAfter (1m) and min-uptime (5m).
	src.Set(reqShape, queries.Sample{Workload: busy, Value: 3}, queries.Sample{Workload: calm, Value: 0})
	for i := 0; i < 100 && !woken(kch); i++ {
		if woken(bch) {
			t.Fatal("busy woken while its answer stayed active")
		}
		clk.Add(5 * time.Second)
		c.Refresh(context.Background())
	}
	if a := c.Snapshot().Activity(k); a != Idle {
		t.Fatal("calm never went idle")
	}
	if !woken(kch) {
		t.Fatal("calm's flip to idle did not wake its waiter")
	}
	// A watched interest is not forgotten; an unwatched one is, and wakes.
	unwatch := b.Watch()
	kch = k.Changes()
	clk.Add(11 * time.Minute) // past ForgetAfter (10m) without a Touch
	c.Refresh(context.Background())
	if b.Dead() {
		t.Error("a watched interest was forgotten")
	}
	if !k.Dead() || !woken(kch) {
		t.Errorf("unwatched calm: dead %v, woken %v; want both", k.Dead(), woken(kch))
	}
	unwatch()
	clk.Add(11 * time.Minute)
	c.Refresh(context.Background())
	if !b.Dead() {
		t.Error("an interest no longer watched nor touched was kept")
	}
}
