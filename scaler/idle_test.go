package scaler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/shutdown"
)

// policyCollector is a collector with a 15m idle-after, 5m min-uptime
// default policy, stepped by hand.
func policyCollector(t *testing.T, src queries.Source, mod func(*Config)) (*Collector, *clock.Mock) {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(t0)
	cfg := Config{Source: src, Interval: 5 * time.Second, Clock: clk, MaxStaleness: time.Minute, ForgetAfter: 24 * time.Hour,
		Policy: shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute}}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// stepTo ticks until at: every 5s of mock time in its last minute, every
// minute before (the mock clock's Add costs a real millisecond).
func stepTo(c *Collector, clk *clock.Mock, at time.Time) {
	for clk.Now().Before(at) {
		step := 5 * time.Second
		if at.Sub(clk.Now()) > time.Minute {
			step = time.Minute
		}
		clk.Add(step)
		c.Refresh(context.Background())
	}
}

func decision(t *testing.T, c *Collector, in *Interest) shutdown.Decision {
	t.Helper()
	o, ok := c.Snapshot().Lookup(in)
	if !ok {
		t.Fatal("no observation")
	}
	return shutdown.Decision{Active: o.Active, Reason: o.Reason, Until: o.Until}
}

func TestIdleAfterActivity(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("a", "w")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 2})
	c, clk := policyCollector(t, src, nil)
	in := c.Register(reqShape, w, 0, 0)
	c.Refresh(context.Background())
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonTraffic {
		t.Fatalf("with traffic: %v, want active by traffic", d)
	}
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0}) // traffic stops after t0
	stepTo(c, clk, t0.Add(15*time.Minute-5*time.Second))
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonRecent {
		t.Fatalf("just under 15m after the last request: %v, want still active (recent)", d)
	}
	stepTo(c, clk, t0.Add(15*time.Minute))
	if d := decision(t, c, in); d.Active || d.Reason != shutdown.ReasonIdle {
		t.Fatalf("15m after the last request: %v, want idle", d)
	}
	// A single request wakes it; min-uptime then holds it for 5m.
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0.1})
	stepTo(c, clk, t0.Add(16*time.Minute))
	if d := decision(t, c, in); !d.Active {
		t.Fatalf("after a request: %v, want active", d)
	}
}

func TestTriggerIdleAfterAndAnnotations(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("a", "w")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 1})
	overrides := fakeOverrides{}
	c, clk := policyCollector(t, src, func(cfg *Config) { cfg.Overrides = overrides })
	short := c.Register(reqShape, w, 0, 2*time.Minute) // trigger metadata idleAfter: 2m
	c.Refresh(context.Background())
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0})
	stepTo(c, clk, t0.Add(5*time.Minute+5*time.Second)) // past 2m and past min-uptime
	if d := decision(t, c, short); d.Active {
		t.Fatalf("5m after, idleAfter 2m: %v, want idle", d)
	}
	// The annotation wins over the trigger's idleAfter.
	overrides[w] = shutdown.Overrides{IdleAfter: 30 * time.Minute}
	stepTo(c, clk, t0.Add(5*time.Minute+10*time.Second))
	if d := decision(t, c, short); !d.Active {
		t.Errorf("with ebb.dev/idle-after 30m: %v, want active", d)
	}
	overrides[w] = shutdown.Overrides{Disabled: true}
	stepTo(c, clk, t0.Add(2*time.Hour))
	if d := decision(t, c, short); !d.Active || d.Reason != shutdown.ReasonOptOut {
		t.Errorf("with ebb.dev/autoshutdown false: %v, want active (opt-out)", d)
	}
	overrides[w] = shutdown.Overrides{Invalid: errors.New("ebb.dev/keep-awake: bad")}
	stepTo(c, clk, t0.Add(2*time.Hour+5*time.Second))
	if d := decision(t, c, short); !d.Active || d.Reason != shutdown.ReasonBadConfig {
		t.Errorf("with a broken annotation: %v, want active (bad config)", d)
	}
}

type fakeOverrides map[queries.WorkloadKey]shutdown.Overrides

func (f fakeOverrides) Overrides(w queries.WorkloadKey) (shutdown.Overrides, bool) {
	o, ok := f[w]
	return o, ok
}

func TestOutageNeverIdles(t *testing.T) {
	src := &queriestest.FakeSource{}
	busy, quiet := wk("a", "busy"), wk("a", "quiet")
	src.Set(reqShape, queries.Sample{Workload: busy, Value: 5}, queries.Sample{Workload: quiet, Value: 0})
	c, clk := policyCollector(t, src, nil)
	inBusy := c.Register(reqShape, busy, 0, 0)
	inQuiet := c.Register(reqShape, quiet, 0, 0)
	stepTo(c, clk, t0.Add(20*time.Minute)) // busy stays busy; quiet goes idle
	if d := decision(t, c, inQuiet); d.Active {
		t.Fatalf("quiet before the outage: %v, want idle", d)
	}
	src.Fail(&queries.QueryError{Shape: reqShape, Kind: "unreachable", Err: errors.New("connection refused")})
	// An hour of outage: busy is never idle, whatever idle-after says;
	// past max staleness it is unknown, which is no answer.
	for clk.Now().Before(t0.Add(80 * time.Minute)) {
		stepTo(c, clk, clk.Now().Add(5*time.Second))
		if a := c.Snapshot().Activity(inBusy); a == Idle {
			t.Fatalf("at %s into the outage busy is idle", clk.Now().Sub(t0.Add(20*time.Minute)))
		}
	}
	// Past max staleness both are unknown: neither woken nor shut down.
	for name, in := range map[string]*Interest{"busy": inBusy, "quiet": inQuiet} {
		if a := c.Snapshot().Activity(in); a != Unknown {
			t.Errorf("%s an hour into the outage: %s, want unknown", name, a)
		}
		if o, _ := c.Snapshot().Lookup(in); o.Why != shutdown.WhyFailing {
			t.Errorf("%s: why %q, want %q", name, o.Why, shutdown.WhyFailing)
		}
	}
	// The store answers again: quiet is idle at once. The outage was no
	// wake, so min-uptime does not keep it up.
	src.Fail(nil)
	stepTo(c, clk, clk.Now().Add(5*time.Second))
	if a := c.Snapshot().Activity(inQuiet); a != Idle {
		t.Errorf("quiet after the outage: %s, want idle", a)
	}
	if a := c.Snapshot().Activity(inBusy); a != Active {
		t.Errorf("busy after the outage: %s, want active", a)
	}
}

func TestVanishedSeriesAreNotNoTraffic(t *testing.T) {
	src := &queriestest.FakeSource{}
	w, never := wk("a", "w"), wk("a", "never")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 5})
	c, clk := policyCollector(t, src, nil)
	in := c.Register(reqShape, w, 0, 0)
	inNever := c.Register(reqShape, never, 0, 0)
	c.Refresh(context.Background())
	src.Set(reqShape) // scrape targets down: the whole vector is empty
	stepTo(c, clk, t0.Add(time.Hour))
	o, _ := c.Snapshot().Lookup(in)
	if !errors.Is(o.Err, ErrVanished) || o.OK || o.Value != 5 {
		t.Errorf("vanished while active: %+v, want the last value 5 with ErrVanished", o)
	}
	if !o.Active || o.Reason != shutdown.ReasonUnknown {
		t.Errorf("vanished an hour ago: active %v (%v), want active (unknown)", o.Active, o.Reason)
	}
	// A workload that never had series has no traffic: idle after idle-after.
	if d := decision(t, c, inNever); d.Active {
		t.Errorf("never seen: %v, want idle", d)
	}
	// The series come back at 0: no traffic now, but what happened in the
	// hour without series is not known, and the workload was active going
	// in: its idle clock starts again at the return, so it is idle 15m
	// (idle-after) later, not at once.
	back := t0.Add(time.Hour + 5*time.Second)
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0})
	stepTo(c, clk, back)
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonRecent {
		t.Errorf("back at 0 after an hour without series: %v, want active (recent): the hour is unknown", d)
	}
	stepTo(c, clk, back.Add(15*time.Minute-5*time.Second))
	if d := decision(t, c, in); !d.Active {
		t.Errorf("14m55s after the return: %v, want active", d)
	}
	stepTo(c, clk, back.Add(15*time.Minute))
	if d := decision(t, c, in); d.Active {
		t.Errorf("15m after the return: %v, want idle", d)
	}
}

func TestRecoveryFromHistory(t *testing.T) {
	src := &queriestest.FakeLastActive{}
	w := wk("a", "w")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0})
	src.SetLastActive(reqShape, queries.LastActive{Workload: w, At: t0.Add(-10 * time.Minute)})
	src.FailLastActive(errors.New("store down"))
	c, clk := policyCollector(t, src, nil)
	in := c.Register(reqShape, w, 0, 0)
	c.Refresh(context.Background())
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonUnknown {
		t.Fatalf("recovery failing: %v, want active (unknown)", d)
	}
	src.FailLastActive(nil)
	stepTo(c, clk, t0.Add(5*time.Second))
	// Last active in the 15s step from 10m before the restart, idle after
	// 15m: active until t0+5m15s at the latest, never less than t0+5m.
	idle := t0.Add(5*time.Minute + 15*time.Second)
	if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonRecent || !d.Until.Equal(idle) {
		t.Fatalf("recovered: %v until %v, want active (recent) until %v", d, d.Until, idle)
	}
	stepTo(c, clk, idle.Add(-5*time.Second))
	if d := decision(t, c, in); !d.Active {
		t.Errorf("at %v: %v, want active still", clk.Now().Sub(t0), d)
	}
	stepTo(c, clk, idle)
	if d := decision(t, c, in); d.Active {
		t.Errorf("at %v: %v, want idle at the original time (within a recovery step), not a full window after the restart", clk.Now().Sub(t0), d)
	}
	lb := src.Lookbacks()
	if len(lb) != 2 {
		t.Fatalf("got %d history queries, want 2 (one failed, one recovered)", len(lb))
	}
	if got := lb[1]; got.Shape != reqShape || got.Lookback != 16*time.Minute || got.Step != 15*time.Second || !got.At.Equal(t0.Add(5*time.Second)) {
		t.Errorf("history query %+v, want requests[1m] over 15m+1m at 15s steps at t0+5s", got)
	}
}

func TestRecoveryIsBatched(t *testing.T) {
	src := &queriestest.FakeLastActive{}
	c, _ := policyCollector(t, src, nil)
	for i := range 50 {
		c.Register(reqShape, wk("a", string(rune('a'+i%26))+string(rune('a'+i/26))), 0, 0)
	}
	c.Register(gpuShape, wk("a", "g"), 0, 0)
	c.Refresh(context.Background())
	c.Refresh(context.Background())
	if n := len(src.Lookbacks()); n != 2 {
		t.Errorf("got %d history queries for 51 workloads on 2 shapes, want 2 and none once recovered", n)
	}
}

type recordingSink struct {
	mu     sync.Mutex
	states []WorkloadState
}

func (r *recordingSink) Publish(s WorkloadState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s)
}

func TestStatesPublishedOnChange(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("a", "w")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 1})
	src.Set(gpuShape)
	sink := &recordingSink{}
	c, clk := policyCollector(t, src, func(cfg *Config) { cfg.States = sink })
	c.Register(reqShape, w, 0, 0)
	c.Register(gpuShape, w, 0, 0) // a second trigger of the same workload
	stepTo(c, clk, t0.Add(30*time.Second))
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0})
	stepTo(c, clk, t0.Add(20*time.Minute))
	var got []string
	for _, s := range sink.states {
		if s.Workload != w {
			t.Errorf("published for %v", s.Workload)
		}
		got = append(got, s.Decision.Reason.String()+"@"+s.LastActive.Format("15:04"))
	}
	// traffic (last active to the minute 12:00), and then recent at the next
	// minute (12:00:30 still counts as 12:00, then quiet), then idle.
	want := []string{"traffic@12:00", "recent@12:00", "idle@12:00"}
	if len(got) != len(want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("publish %d: got %s, want %s", i, got[i], want[i])
		}
	}
}

func TestBusyWorkloadPublishedEveryFiveMinutes(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("a", "w")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 1})
	sink := &recordingSink{}
	c, clk := policyCollector(t, src, func(cfg *Config) { cfg.States = sink })
	c.Register(reqShape, w, 0, 0)
	c.Refresh(context.Background())
	for range 12 * 12 { // 12 minutes of busy 5s ticks
		clk.Add(5 * time.Second)
		c.Refresh(context.Background())
	}
	var got []string
	for _, s := range sink.states {
		got = append(got, s.LastActive.Format("15:04"))
	}
	if want := []string{"12:00", "12:05", "12:10"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("published last-active %v, want %v", got, want)
	}
}

func TestVanishedDuringIdleGrace(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("a", "w")
	src.Set(reqShape, queries.Sample{Workload: w, Value: 3})
	c, clk := policyCollector(t, src, nil)
	in := c.Register(reqShape, w, 0, 0)
	c.Refresh(context.Background())
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0}) // quiet, series present: the 15m grace runs
	stepTo(c, clk, t0.Add(5*time.Minute))
	src.Set(reqShape) // scrape targets down inside the grace
	stepTo(c, clk, t0.Add(30*time.Minute))
	o, _ := c.Snapshot().Lookup(in)
	if !errors.Is(o.Err, ErrVanished) || !o.Active {
		t.Fatalf("series vanished during the idle grace: %+v, want missing data and active", o)
	}
	// A replaced pod may never report again until its first request:
	// after MaxVanished, absence is no traffic, and the idle clock (last
	// activity at t0) says idle.
	stepTo(c, clk, t0.Add(7*time.Minute+MaxVanished)) // vanished at the first step after +5m
	if o, _ := c.Snapshot().Lookup(in); o.Err != nil || o.Active {
		t.Errorf("%s after the series vanished: %+v, want no traffic and idle", MaxVanished, o)
	}
}
