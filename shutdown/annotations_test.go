package shutdown_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

func TestParseAnnotations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		a         map[string]string
		idleAfter time.Duration
		disabled  bool
		windows   []string
		err       string
	}{
		{name: "none", a: nil},
		{name: "other keys are ignored", a: map[string]string{"ebb.dev/last-active": "2026-03-30T10:00:00Z", "app": "x"}},
		{name: "idle-after", a: map[string]string{"ebb.dev/idle-after": "30m"}, idleAfter: 30 * time.Minute},
		{name: "idle-after with spaces", a: map[string]string{"ebb.dev/idle-after": " 2h "}, idleAfter: 2 * time.Hour},
		{name: "idle-after at the maximum", a: map[string]string{"ebb.dev/idle-after": "720h"}, idleAfter: 720 * time.Hour},
		{name: "idle-after not a duration", a: map[string]string{"ebb.dev/idle-after": "30"},
			err: `ebb.dev/idle-after: "30" is not a duration like 30m or "auto"`},
		{name: "idle-after zero", a: map[string]string{"ebb.dev/idle-after": "0s"},
			err: "ebb.dev/idle-after: 0s must be > 0 and <= 720h"},
		{name: "idle-after negative", a: map[string]string{"ebb.dev/idle-after": "-5m"},
			err: "ebb.dev/idle-after: -5m must be > 0 and <= 720h"},
		{name: "idle-after too long", a: map[string]string{"ebb.dev/idle-after": "721h"},
			err: "ebb.dev/idle-after: 721h must be > 0 and <= 720h"},
		{name: "opt out", a: map[string]string{"ebb.dev/autoshutdown": "false"}, disabled: true},
		{name: "opt out, any case", a: map[string]string{"ebb.dev/autoshutdown": "False"}, disabled: true},
		{name: "opt in", a: map[string]string{"ebb.dev/autoshutdown": "true"}},
		{name: "autoshutdown neither", a: map[string]string{"ebb.dev/autoshutdown": "no"},
			err: `ebb.dev/autoshutdown: "no" must be "true" or "false"`},
		{name: "keep-awake", a: map[string]string{"ebb.dev/keep-awake": "0 8 * * 1-5 for 12h in Europe/Berlin; 0 10 * * 6 for 4h"},
			windows: []string{"0 8 * * 1-5 for 12h in Europe/Berlin", "0 10 * * 6 for 4h"}},
		{name: "keep-awake empty", a: map[string]string{"ebb.dev/keep-awake": " "}},
		{name: "keep-awake with a bad window keeps the good ones", a: map[string]string{"ebb.dev/keep-awake": "0 8 * * 1-5 for 12h in Europe/Berlin; 0 10 * * 6 for 4x"},
			windows: []string{"0 8 * * 1-5 for 12h in Europe/Berlin"},
			err:     `ebb.dev/keep-awake: window 2: duration "4x" is not a duration like 12h or 90m`},
		{name: "keep-awake bad zone", a: map[string]string{"ebb.dev/keep-awake": "0 8 * * 1-5 for 12h in Europe/Berln"},
			err: `ebb.dev/keep-awake: window 1: time zone "Europe/Berln": unknown time zone Europe/Berln`},
		{name: "keep-awake bad cron", a: map[string]string{"ebb.dev/keep-awake": "0 8 * * 8 for 12h"},
			err: `ebb.dev/keep-awake: window 1: cron expression "0 8 * * 8": end of range (8) above maximum (6): 8`},
		{name: "every bad annotation is named, good ones kept", a: map[string]string{
			"ebb.dev/idle-after":   "soon",
			"ebb.dev/autoshutdown": "false",
			"ebb.dev/keep-awake":   "0 8 * * *",
		}, disabled: true,
			err: `ebb.dev/idle-after: "soon" is not a duration like 30m or "auto"; ebb.dev/keep-awake: window 1: missing "for <duration>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := shutdown.ParseAnnotations(tt.a)
			if got := errString(err); got != tt.err {
				t.Fatalf("got error %q, want %q", got, tt.err)
			}
			if o.Invalid != err {
				t.Errorf("got Invalid %v, want the returned error", o.Invalid)
			}
			if o.IdleAfter != tt.idleAfter || o.Disabled != tt.disabled {
				t.Errorf("got idle-after %s disabled %v, want %s %v", o.IdleAfter, o.Disabled, tt.idleAfter, tt.disabled)
			}
			var got []string
			for _, w := range o.KeepAwake {
				got = append(got, w.String())
			}
			if !slices.Equal(got, tt.windows) {
				t.Errorf("got windows %q, want %q", got, tt.windows)
			}
		})
	}
}

func TestAnnotationErrorAs(t *testing.T) {
	t.Parallel()
	_, err := shutdown.ParseAnnotations(map[string]string{"ebb.dev/idle-after": "x", "ebb.dev/keep-awake": "x for 1h"})
	var ae *shutdown.AnnotationError
	if !errors.As(err, &ae) || ae.Key != shutdown.AnnotationIdleAfter {
		t.Fatalf("errors.As(%v): got %+v, want the idle-after *AnnotationError", err, ae)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	defaults := shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute}
	tests := []struct {
		name       string
		metadata   time.Duration
		annotation time.Duration
		want       time.Duration
	}{
		{"server default", 0, 0, 15 * time.Minute},
		{"trigger metadata over the default", 10 * time.Minute, 0, 10 * time.Minute},
		{"annotation over the default", 0, 30 * time.Minute, 30 * time.Minute},
		{"annotation over trigger metadata", 10 * time.Minute, 30 * time.Minute, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := shutdown.Resolve(defaults, tt.metadata, shutdown.Overrides{IdleAfter: tt.annotation})
			if p.IdleAfter != tt.want {
				t.Errorf("got idle-after %s, want %s", p.IdleAfter, tt.want)
			}
			if p.MinUptime != defaults.MinUptime || p.Disabled || p.Invalid != nil || len(p.KeepAwake) != 0 {
				t.Errorf("got %+v, want the rest of the defaults", p)
			}
		})
	}
}

func TestResolveOverrides(t *testing.T) {
	t.Parallel()
	server := windows(t, "0 0 1 1 * for 1h", "0 0 2 1 * for 1h")
	defaults := shutdown.Policy{IdleAfter: 15 * time.Minute, KeepAwake: server[:1]} // spare capacity
	own := windows(t, "0 8 * * 1-5 for 12h in Europe/Berlin")
	bad := errors.New("bad")

	p := shutdown.Resolve(defaults, 0, shutdown.Overrides{Disabled: true, KeepAwake: own, Invalid: bad})
	if !p.Disabled || p.Invalid != bad {
		t.Errorf("got disabled %v invalid %v, want true and the error", p.Disabled, p.Invalid)
	}
	if len(p.KeepAwake) != 2 || p.KeepAwake[0].String() != server[0].String() || p.KeepAwake[1].String() != own[0].String() {
		t.Errorf("got windows %v, want the server's then the workload's", p.KeepAwake)
	}
	if server[1].String() != "0 0 2 1 * for 1h" {
		t.Errorf("Resolve wrote into the defaults' backing array: got %q", server[1])
	}
}

// A bad annotation never shuts a workload down, whichever part is bad, and
// never wakes one: the decision is no answer (Known false), though Active
// stays true for whatever reads Active alone.
func TestBadAnnotationIsNoAnswer(t *testing.T) {
	t.Parallel()
	idle := shutdown.State{Known: true, LastActive: now.Add(-24 * time.Hour)}
	for _, a := range []map[string]string{
		{"ebb.dev/idle-after": "5"},
		{"ebb.dev/autoshutdown": "nope"},
		{"ebb.dev/keep-awake": "0 8 * * 1-5 for 12h in Nowhere"},
	} {
		o, err := shutdown.ParseAnnotations(a)
		if err == nil {
			t.Fatalf("%v: got no error", a)
		}
		d := shutdown.Resolve(shutdown.DefaultPolicy(), 0, o).Decide(idle, now)
		if !d.Active || d.Known() || d.Reason != shutdown.ReasonBadConfig {
			t.Errorf("%v: got %s (known %v), want no answer for a bad configuration", a, d, d.Known())
		}
		if want := "unknown: bad configuration: " + err.Error(); d.String() != want {
			t.Errorf("got %q, want %q", d.String(), want)
		}
	}
}

func TestStateAnnotations(t *testing.T) {
	t.Parallel()
	p := shutdown.DefaultPolicy()
	p.KeepAwake = windows(t, "0 8 * * * for 12h")
	last := time.Date(2026, 3, 30, 9, 40, 31, 5, time.UTC)
	long := errors.New(strings.Repeat("x", 300))
	tests := []struct {
		name  string
		d     shutdown.Decision
		state string
	}{
		{"bad config", shutdown.Policy{Invalid: errors.New("ebb.dev/idle-after: 0s must be > 0 and <= 720h")}.Decide(shutdown.State{}, now),
			"unknown: bad configuration: ebb.dev/idle-after: 0s must be > 0 and <= 720h"},
		{"long bad config is cut", shutdown.Policy{Invalid: long}.Decide(shutdown.State{}, now),
			"unknown: bad configuration: " + strings.Repeat("x", 200) + "..."},
		{"unknown", p.Decide(shutdown.State{Why: shutdown.WhyNoData}, now), "unknown: no trustworthy data: no data yet"},
		{"opt-out", shutdown.Policy{Disabled: true}.Decide(shutdown.State{Known: true}, now), "active: autoshutdown disabled"},
		{"traffic", p.Decide(shutdown.State{Known: true, Value: 3.2, Activation: 0.5}, now), "active: traffic above activation 0.5"},
		{"keep-awake", p.Decide(shutdown.State{Known: true}, now), `active: keep-awake window "0 8 * * * for 12h"`},
		{"min uptime", shutdown.DefaultPolicy().Decide(shutdown.State{Known: true, WokeAt: now.Add(-time.Minute)}, now),
			"active: min uptime 5m after waking at 2026-03-30T09:59:00Z"},
		{"recent", shutdown.DefaultPolicy().Decide(shutdown.State{Known: true, LastActive: now.Add(-4 * time.Minute)}, now),
			"active: activity within idle-after 15m"},
		{"idle", shutdown.DefaultPolicy().Decide(shutdown.State{Known: true, LastActive: now.Add(-17 * time.Minute)}, now),
			"idle: no activity within idle-after 15m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shutdown.StateAnnotations(tt.d, last)
			want := map[string]string{
				shutdown.AnnotationState:      tt.state,
				shutdown.AnnotationLastActive: "2026-03-30T09:40:00Z",
			}
			if len(got) != len(want) || got[shutdown.AnnotationState] != want[shutdown.AnnotationState] || got[shutdown.AnnotationLastActive] != want[shutdown.AnnotationLastActive] {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// The values do not move while nothing but time passes, so writing them only
// when they change does not write every tick.
func TestStateAnnotationsStable(t *testing.T) {
	t.Parallel()
	p := shutdown.DefaultPolicy()
	s := shutdown.State{Known: true, LastActive: now}
	for _, at := range []time.Duration{time.Minute, 14 * time.Minute, 16 * time.Minute, 3 * time.Hour} {
		first := shutdown.StateAnnotations(p.Decide(s, now.Add(at)), s.LastActive)
		second := shutdown.StateAnnotations(p.Decide(s, now.Add(at+30*time.Second)), s.LastActive)
		if first[shutdown.AnnotationState] != second[shutdown.AnnotationState] {
			t.Errorf("after %s: got %q then %q, want no change", at, first, second)
		}
	}
	if got := shutdown.StateAnnotations(p.Decide(shutdown.State{Known: true}, now), time.Time{}); len(got) != 1 {
		t.Errorf("got %q, want no last-active when it is unknown", got)
	}
}

func FuzzParseAnnotations(f *testing.F) {
	f.Add(byte(7), "30m", "false", "0 8 * * 1-5 for 12h in Europe/Berlin; 0 10 * * 6 for 4h", uint32(0))
	f.Add(byte(7), "0s", "maybe", "TZ=UTC for 1h", uint32(0))
	f.Add(byte(4), "", "", "TZ=UTC", uint32(0))
	f.Add(byte(4), "", "", "CRON_TZ=Europe/Berlin 0 8 * * * for 1h", uint32(0))
	f.Add(byte(4), "", "", "@every 1h for 1h; @daily for 24h in Europe/Berlin", uint32(0))
	f.Add(byte(4), "", "", ";;; for for for in in", uint32(0))
	f.Add(byte(4), "", "", "*/0 * * * * for 1h", uint32(0))
	f.Add(byte(4), "", "", "0 0 31 2 * for 1h", uint32(0))
	f.Add(byte(4), "", "", "59 23 31 12 * for 168h in Pacific/Chatham", uint32(0))
	f.Add(byte(4), "", "", "30 2 * * * for 1h in Europe/Berlin; 0 0 * * * for 1ns in Australia/Lord_Howe", uint32(0))
	f.Add(byte(4), "", "", "0 8 * * * for 1h in ../../etc/passwd", uint32(0))
	f.Add(byte(4), "", "", "0 8 * * * for 1h in \xff", uint32(0))
	f.Add(byte(4), "", "", "30 2 * * * for 1h in Europe/Berlin", uint32(15))            // 02:45 CEST, repeated hour
	f.Add(byte(4), "", "", "30 2 * * * for 20m in Europe/Berlin", uint32(154*24*60+20)) // 2027-03-28T00:50Z, spring-forward night
	f.Add(byte(4), "", "", "15 1,2 * * * for 40m in Australia/Lord_Howe", uint32(160*24*60))
	f.Add(byte(1), "9223372036854775807ns", "", "", uint32(0))
	f.Add(byte(3), "1e3h", "TRUE", "", uint32(0))
	f.Fuzz(func(t *testing.T, present byte, idleAfter, autoshutdown, keepAwake string, minutes uint32) {
		a := map[string]string{}
		if present&1 != 0 {
			a[shutdown.AnnotationIdleAfter] = idleAfter
		}
		if present&2 != 0 {
			a[shutdown.AnnotationAutoshutdown] = autoshutdown
		}
		if present&4 != 0 {
			a[shutdown.AnnotationKeepAwake] = keepAwake
		}
		o, err := shutdown.ParseAnnotations(a)
		if o.Invalid != err {
			t.Fatalf("got Invalid %v, want the returned error %v", o.Invalid, err)
		}
		p := shutdown.Resolve(shutdown.DefaultPolicy(), time.Minute, o)
		// Within about four years of the fall-back night of 2026, to the second.
		at := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC).Add(time.Duration(minutes%(1<<21))*time.Minute - time.Duration(minutes>>21)*time.Second)
		idle := shutdown.State{Known: true, LastActive: at.Add(-24 * time.Hour)}
		d := p.Decide(idle, at)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ebb.dev/") {
				t.Errorf("got error %q, want it to name the annotation", err)
			}
			if !d.Active || d.Reason != shutdown.ReasonBadConfig {
				t.Fatalf("bad annotations %q (%v): got %s, want active for a bad configuration", a, err, d)
			}
			return
		}
		if !d.Active && !d.Until.IsZero() && !d.Until.After(at) {
			t.Errorf("got until %s, want after %s", fmtTime(d.Until), fmtTime(at))
		}
		for _, w := range o.KeepAwake {
			if in, until := w.Contains(at); in {
				if !until.After(at) {
					t.Errorf("%s at %s: got until %s, want later", w, fmtTime(at), fmtTime(until))
				}
				if still, _ := w.Contains(until.Add(-time.Nanosecond)); !still {
					t.Errorf("%s at %s: until %s, but not inside just before it", w, fmtTime(at), fmtTime(until))
				}
			}
			if next := w.Next(at); !next.IsZero() {
				if in, _ := w.Contains(next); !in || !next.After(at) {
					t.Errorf("%s at %s: Next = %s, want a later instant inside the window", w, fmtTime(at), fmtTime(next))
				}
				if before, _ := w.Contains(next.Add(-time.Nanosecond)); before {
					t.Errorf("%s at %s: Next = %s, but already inside just before it", w, fmtTime(at), fmtTime(next))
				}
			}
		}
	})
}
