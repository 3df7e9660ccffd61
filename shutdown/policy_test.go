package shutdown_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// now is a Monday, 10:00 UTC.
var now = time.Date(2026, 3, 30, 10, 0, 0, 0, time.UTC)

func windows(t testing.TB, specs ...string) []shutdown.Window {
	t.Helper()
	ws := make([]shutdown.Window, len(specs))
	for i, s := range specs {
		ws[i] = mustWindow(t, s)
	}
	return ws
}

func TestDecide(t *testing.T) {
	t.Parallel()
	def := shutdown.DefaultPolicy() // idle after 15m, min uptime 5m
	withWindows := func(specs ...string) shutdown.Policy {
		p := def
		p.KeepAwake = windows(t, specs...)
		return p
	}
	quiet := shutdown.State{Known: true, LastActive: now.Add(-time.Hour)}
	tests := []struct {
		name   string
		p      shutdown.Policy
		s      shutdown.State
		active bool
		reason shutdown.Reason
		until  time.Time
		text   string
	}{
		{"bad config", shutdown.Policy{Invalid: errors.New(`ebb.dev/idle-after: "x" is not a duration like 30m`)}, quiet,
			true, shutdown.ReasonBadConfig, time.Time{}, `bad configuration: ebb.dev/idle-after: "x" is not a duration like 30m`},
		{"no data yet", def, shutdown.State{Why: "no data yet"},
			true, shutdown.ReasonUnknown, time.Time{}, "no trustworthy data: no data yet"},
		{"unknown without a cause", def, shutdown.State{},
			true, shutdown.ReasonUnknown, time.Time{}, "no trustworthy data"},
		{"NaN value is not trustworthy", def, shutdown.State{Known: true, Value: math.NaN()},
			true, shutdown.ReasonUnknown, time.Time{}, "no trustworthy data: value or activation is not a number"},
		{"infinite activation is not trustworthy", def, shutdown.State{Known: true, Activation: math.Inf(1)},
			true, shutdown.ReasonUnknown, time.Time{}, "no trustworthy data: value or activation is not a number"},
		{"opt-out", shutdown.Policy{IdleAfter: time.Minute, Disabled: true}, quiet,
			true, shutdown.ReasonOptOut, time.Time{}, "autoshutdown disabled"},
		{"traffic", def, shutdown.State{Known: true, Value: 3.2, LastActive: now},
			true, shutdown.ReasonTraffic, time.Time{}, "value 3.2 > activation 0"},
		{"traffic beats keep-awake", withWindows("0 8 * * * for 12h"), shutdown.State{Known: true, Value: 7, Activation: 5},
			true, shutdown.ReasonTraffic, time.Time{}, "value 7 > activation 5"},
		{"keep-awake ends with the window", withWindows("0 8 * * * for 12h"), quiet,
			true, shutdown.ReasonKeepAwake, now.Add(10 * time.Hour), `keep-awake window "0 8 * * * for 12h"`},
		{"keep-awake names the first window that applies", withWindows("0 22 * * * for 1h", "0 9 * * 1 for 2h", "0 8 * * * for 3h"), quiet,
			true, shutdown.ReasonKeepAwake, now.Add(time.Hour), `keep-awake window "0 9 * * 1 for 2h"`},
		{"keep-awake outlasts recent activity", withWindows("0 8 * * * for 2h30m"), shutdown.State{Known: true, LastActive: now.Add(-5 * time.Minute)},
			true, shutdown.ReasonKeepAwake, now.Add(30 * time.Minute), `keep-awake window "0 8 * * * for 2h30m"`},
		{"recent activity outlasts the window", withWindows("0 8 * * * for 2h5m"), shutdown.State{Known: true, LastActive: now.Add(-5 * time.Minute)},
			true, shutdown.ReasonKeepAwake, now.Add(10 * time.Minute), `keep-awake window "0 8 * * * for 2h5m"`},
		{"min uptime after a wake", def, shutdown.State{Known: true, WokeAt: now.Add(-2 * time.Minute)},
			true, shutdown.ReasonMinUptime, now.Add(3 * time.Minute), "woke 2m ago, min uptime 5m"},
		{"min uptime until recent activity ends", def, shutdown.State{Known: true, WokeAt: now.Add(-2 * time.Minute), LastActive: now.Add(-time.Minute)},
			true, shutdown.ReasonMinUptime, now.Add(14 * time.Minute), "woke 2m ago, min uptime 5m"},
		{"min uptime past recent activity", shutdown.Policy{IdleAfter: time.Minute, MinUptime: 5 * time.Minute}, shutdown.State{Known: true, WokeAt: now.Add(-2 * time.Minute), LastActive: now.Add(-30 * time.Second)},
			true, shutdown.ReasonMinUptime, now.Add(3 * time.Minute), "woke 2m ago, min uptime 5m"},
		{"min uptime over", def, shutdown.State{Known: true, WokeAt: now.Add(-5 * time.Minute), LastActive: now.Add(-time.Hour)},
			false, shutdown.ReasonIdle, time.Time{}, "idle for 1h (idle after 15m)"},
		{"recent", def, shutdown.State{Known: true, LastActive: now.Add(-4 * time.Minute)},
			true, shutdown.ReasonRecent, now.Add(11 * time.Minute), "last active 4m ago, idle after 15m"},
		{"recent, value at activation is no traffic", def, shutdown.State{Known: true, Value: 2, Activation: 2, LastActive: now.Add(-4 * time.Minute)},
			true, shutdown.ReasonRecent, now.Add(11 * time.Minute), "last active 4m ago, idle after 15m"},
		{"recent runs into a window that opens as it ends", withWindows("5 10 * * * for 1h"), shutdown.State{Known: true, LastActive: now.Add(-10 * time.Minute)},
			true, shutdown.ReasonRecent, now.Add(65 * time.Minute), "last active 10m ago, idle after 15m"},
		{"idle exactly at idle-after", def, shutdown.State{Known: true, LastActive: now.Add(-15 * time.Minute)},
			false, shutdown.ReasonIdle, time.Time{}, "idle for 15m (idle after 15m)"},
		{"idle", def, shutdown.State{Known: true, LastActive: now.Add(-17*time.Minute - 40*time.Second)},
			false, shutdown.ReasonIdle, time.Time{}, "idle for 17m (idle after 15m)"},
		{"idle for days", def, shutdown.State{Known: true, LastActive: now.Add(-75 * time.Hour)},
			false, shutdown.ReasonIdle, time.Time{}, "idle for 3d3h (idle after 15m)"},
		{"never active", def, shutdown.State{Known: true},
			false, shutdown.ReasonIdle, time.Time{}, "no activity seen (idle after 15m)"},
		{"idle until the next window opens", withWindows("0 8 * * * for 1h", "0 9 * * 2 for 1h in Europe/Berlin"), quiet,
			false, shutdown.ReasonIdle, time.Date(2026, 3, 31, 7, 0, 0, 0, time.UTC), "idle for 1h (idle after 15m)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.p.Decide(tt.s, now)
			if d.Active != tt.active || d.Reason != tt.reason {
				t.Errorf("got %v %s, want %v %s", d.Active, d.Reason, tt.active, tt.reason)
			}
			if !d.Until.Equal(tt.until) {
				t.Errorf("got until %s, want %s", fmtTime(d.Until), fmtTime(tt.until))
			}
			if got := d.Text(); got != tt.text {
				t.Errorf("got text %q, want %q", got, tt.text)
			}
		})
	}
}

// TestDecidePrecedence starts with every reason applying and takes them away
// one at a time, in the order doc.go documents.
func TestDecidePrecedence(t *testing.T) {
	t.Parallel()
	p := shutdown.DefaultPolicy()
	p.Invalid = errors.New("bad")
	p.Disabled = true
	p.KeepAwake = windows(t, "0 8 * * * for 12h")
	s := shutdown.State{Known: true, Value: 1, WokeAt: now.Add(-time.Minute), LastActive: now}
	s.Known = false

	steps := []struct {
		want shutdown.Reason
		next func()
	}{
		{shutdown.ReasonBadConfig, func() { p.Invalid = nil }},
		{shutdown.ReasonUnknown, func() { s.Known = true }},
		{shutdown.ReasonOptOut, func() { p.Disabled = false }},
		{shutdown.ReasonTraffic, func() { s.Value = 0 }},
		{shutdown.ReasonKeepAwake, func() { p.KeepAwake = nil }},
		{shutdown.ReasonMinUptime, func() { s.WokeAt = time.Time{} }},
		{shutdown.ReasonRecent, func() { s.LastActive = now.Add(-time.Hour) }},
		{shutdown.ReasonIdle, func() {}},
	}
	for _, step := range steps {
		d := p.Decide(s, now)
		if d.Reason != step.want {
			t.Fatalf("got %s, want %s", d.Reason, step.want)
		}
		if wantActive := step.want != shutdown.ReasonIdle; d.Active != wantActive {
			t.Fatalf("%s: got active %v, want %v", d.Reason, d.Active, wantActive)
		}
		step.next()
	}
}

func TestDecisionString(t *testing.T) {
	t.Parallel()
	p := shutdown.DefaultPolicy()
	if got, want := p.Decide(shutdown.State{Known: true, Value: 3.2}, now).String(), "active: value 3.2 > activation 0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := p.Decide(shutdown.State{Known: true, LastActive: now.Add(-17 * time.Minute)}, now).String(), "idle: idle for 17m (idle after 15m)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReasonString(t *testing.T) {
	t.Parallel()
	want := map[shutdown.Reason]string{
		shutdown.ReasonBadConfig: "bad-config",
		shutdown.ReasonUnknown:   "unknown",
		shutdown.ReasonOptOut:    "opt-out",
		shutdown.ReasonTraffic:   "traffic",
		shutdown.ReasonKeepAwake: "keep-awake",
		shutdown.ReasonMinUptime: "min-uptime",
		shutdown.ReasonRecent:    "recent",
		shutdown.ReasonIdle:      "idle",
		0:                        "reason(0)",
		99:                       "reason(99)",
	}
	for r, w := range want {
		if got := r.String(); got != w {
			t.Errorf("Reason(%d): got %q, want %q", r, got, w)
		}
	}
}

// Allocation counts are deterministic, unlike timings: Decide is on KEDA's
// hot path and must not allocate.
func TestDecideDoesNotAllocate(t *testing.T) {
	for _, c := range decideCases(t) {
		if n := testing.AllocsPerRun(100, func() { sink = c.p.Decide(c.s, c.at) }); n != 0 {
			t.Errorf("%s: got %v allocations, want 0", c.name, n)
		}
	}
}

type decideCase struct {
	name string
	p    shutdown.Policy
	s    shutdown.State
	at   time.Time
}

func decideCases(t testing.TB) []decideCase {
	p := shutdown.DefaultPolicy()
	berlin := p
	berlin.KeepAwake = windows(t, "0 8 * * 1-5 for 12h in Europe/Berlin", "0 10 * * 6 for 4h in Europe/Berlin")
	return []decideCase{
		{"traffic", p, shutdown.State{Known: true, Value: 5, LastActive: now}, now},
		{"recent", p, shutdown.State{Known: true, LastActive: now.Add(-time.Minute)}, now},
		{"idle", p, shutdown.State{Known: true, LastActive: now.Add(-time.Hour)}, now},
		{"keep-awake", berlin, shutdown.State{Known: true, LastActive: now.Add(-time.Hour)}, now},
		// 22:00 UTC on a Monday, outside the windows.
		{"idle until a window", berlin, shutdown.State{Known: true, LastActive: now.Add(-time.Hour)}, now.Add(12 * time.Hour)},
	}
}

var sink shutdown.Decision

func BenchmarkDecide(b *testing.B) {
	for _, c := range decideCases(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = c.p.Decide(c.s, c.at)
			}
		})
	}
}

func BenchmarkWindowContains(b *testing.B) {
	at := now
	for _, spec := range []string{"0 8 * * 1-5 for 12h in Europe/Berlin", "@daily for 24h in Europe/Berlin"} {
		w := mustWindow(b, spec)
		b.Run(spec, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, sinkTime = w.Contains(at)
			}
		})
	}
}

var sinkTime time.Time

// A policy whose configuration is not known yet (annotations not read)
// gives no answer, whatever the state, and says why.
func TestUnknownConfigIsNoAnswer(t *testing.T) {
	t.Parallel()
	p := shutdown.DefaultPolicy()
	p.Unknown = "workload annotations not read yet"
	for _, s := range []shutdown.State{
		{Known: true, Value: 5}, // traffic
		{Known: true, LastActive: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, // long idle
	} {
		d := p.Decide(s, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
		if d.Known() || d.Reason != shutdown.ReasonUnknown || d.String() != "unknown: no trustworthy data: workload annotations not read yet" {
			t.Errorf("state %+v: %s (known %v), want unknown because the annotations are not read", s, d, d.Known())
		}
	}
	o := shutdown.Overrides{Unknown: "not read"}
	if got := shutdown.Resolve(shutdown.DefaultPolicy(), 0, o).Unknown; got != "not read" {
		t.Errorf("Resolve kept Unknown %q, want %q", got, "not read")
	}
}

// Requests held by the activator are demand ebb sees itself: active, known,
// whatever the store or the configuration says, and the text counts them.
func TestHeldRequestsDecide(t *testing.T) {
	since := time.Date(2026, 3, 30, 9, 59, 0, 500, time.UTC)
	now := since.Add(40 * time.Second)
	broken := shutdown.DefaultPolicy()
	broken.Invalid = errors.New("ebb.dev/idle-after: bad")
	for name, c := range map[string]struct {
		p shutdown.Policy
		s shutdown.State
	}{
		"idle":       {shutdown.DefaultPolicy(), shutdown.State{Known: true, Held: 3, HeldSince: since}},
		"unknown":    {shutdown.DefaultPolicy(), shutdown.State{Why: shutdown.WhyFailing, Held: 3, HeldSince: since}},
		"bad config": {broken, shutdown.State{Known: true, Held: 3, HeldSince: since}},
	} {
		d := c.p.Decide(c.s, now)
		if !d.Active || !d.Known() || d.Reason != shutdown.ReasonHeld || d.Reason.String() != "held" {
			t.Errorf("%s: %s (known %v), want active: held", name, d, d.Known())
		}
		if want := "active: holding 3 requests since 2026-03-30T09:59:00Z"; d.String() != want {
			t.Errorf("%s: %q, want %q", name, d.String(), want)
		}
		if got := shutdown.StateAnnotations(d, time.Time{})[shutdown.AnnotationState]; got != "active: holding 3 requests since 2026-03-30T09:59:00Z" {
			t.Errorf("%s: state annotation %q", name, got)
		}
	}
	one := shutdown.DefaultPolicy().Decide(shutdown.State{Known: true, Held: 1, HeldSince: since}, now)
	if want := "active: holding 1 request since 2026-03-30T09:59:00Z"; one.String() != want {
		t.Errorf("one held: %q, want %q", one.String(), want)
	}
}
