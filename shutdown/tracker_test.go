package shutdown_test

import (
	"math"
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

func TestTrackerState(t *testing.T) {
	t.Parallel()
	t0 := now
	tests := []struct {
		name           string
		steps          func(tr *shutdown.Tracker)
		at             time.Time
		known          bool
		why            string
		value          float64
		lastActive     time.Time
		wantActivation float64
	}{
		{"fresh tracker is not recovered", func(tr *shutdown.Tracker) {
			tr.Observe(0, 0, true, t0)
		}, t0, false, shutdown.WhyNotRecovered, 0, time.Time{}, 0},
		{"recovered without data", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
		}, t0, false, shutdown.WhyNoData, 0, time.Time{}, 0},
		{"recovered, no traffic", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
			tr.Observe(0, 0, true, t0)
		}, t0, true, "", 0, time.Time{}, 0},
		{"traffic sets last active", func(tr *shutdown.Tracker) {
			tr.Recover(t0.Add(-time.Hour))
			tr.Observe(4, 1, true, t0)
			tr.Observe(1, 1, true, t0.Add(time.Minute))
		}, t0.Add(time.Minute), true, "", 1, t0, 1},
		{"recovery keeps the later activity", func(tr *shutdown.Tracker) {
			tr.Observe(4, 0, true, t0)
			tr.Recover(t0.Add(-time.Hour))
		}, t0, true, "", 4, t0, 0},
		{"recovery moves last active forward", func(tr *shutdown.Tracker) {
			tr.Observe(0, 0, true, t0)
			tr.Recover(t0.Add(-time.Minute))
		}, t0, true, "", 0, t0.Add(-time.Minute), 0},
		{"an older observation is ignored", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
			tr.Observe(0, 0, true, t0)
			tr.Observe(9, 0, true, t0.Add(-time.Minute))
		}, t0, true, "", 0, time.Time{}, 0},
		{"failing, last good data still fresh", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
			tr.Observe(2, 0, true, t0)
			tr.Observe(0, 0, false, t0.Add(time.Minute))
		}, t0.Add(2 * time.Minute), true, "", 2, t0, 0},
		{"failing too long", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
			tr.Observe(2, 0, true, t0)
			tr.Observe(0, 0, false, t0.Add(time.Minute))
		}, t0.Add(2*time.Minute + time.Second), false, shutdown.WhyFailing, 2, t0, 0},
		{"NaN is a failure", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
			tr.Observe(1, 0, true, t0)
			tr.Observe(math.NaN(), 0, true, t0.Add(time.Minute))
		}, t0.Add(3 * time.Minute), false, shutdown.WhyFailing, 1, t0, 0},
		{"good again after failing", func(tr *shutdown.Tracker) {
			tr.Recover(time.Time{})
			tr.Observe(0, 0, false, t0)
			tr.Observe(0, 0, true, t0.Add(5*time.Minute))
		}, t0.Add(10 * time.Minute), true, "", 0, time.Time{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &shutdown.Tracker{MaxStaleness: 2 * time.Minute}
			tt.steps(tr)
			s := tr.State(tt.at)
			if s.Known != tt.known || s.Why != tt.why {
				t.Errorf("got known %v %q, want %v %q", s.Known, s.Why, tt.known, tt.why)
			}
			if s.Value != tt.value || s.Activation != tt.wantActivation {
				t.Errorf("got value %v activation %v, want %v %v", s.Value, s.Activation, tt.value, tt.wantActivation)
			}
			if !s.LastActive.Equal(tt.lastActive) {
				t.Errorf("got last active %s, want %s", fmtTime(s.LastActive), fmtTime(tt.lastActive))
			}
		})
	}
}

// TestTrackerWake follows one workload through a day: every wake, whatever
// its cause, holds the workload up for MinUptime, so a flapping source cannot
// flap the workload; an unknown state is no wake.
func TestTrackerWake(t *testing.T) {
	t.Parallel()
	p := shutdown.Policy{IdleAfter: time.Minute, MinUptime: 5 * time.Minute}
	tr := &shutdown.Tracker{MaxStaleness: 90 * time.Second}
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	type step struct {
		minute int
		value  float64
		ok     bool
		active bool
		reason shutdown.Reason
		woke   int // minute of WokeAt; -1: zero
	}
	tr.Recover(time.Time{})
	steps := []step{
		{0, 0, true, false, shutdown.ReasonIdle, -1},
		{1, 3, true, true, shutdown.ReasonTraffic, 1},     // traffic wakes it
		{2, 0, true, true, shutdown.ReasonMinUptime, 1},   // idle-after 1m is shorter than min uptime
		{6, 0, true, false, shutdown.ReasonIdle, 1},       // min uptime over
		{7, 0, false, false, shutdown.ReasonIdle, 1},      // failing, last answer still fresh
		{8, 0, false, true, shutdown.ReasonUnknown, 1},    // failing too long: unknown, no wake
		{9, 0, true, false, shutdown.ReasonIdle, 1},       // source back: idle as before, no min uptime
		{13, 0, true, false, shutdown.ReasonIdle, 1},      // still idle
		{14, 2, true, true, shutdown.ReasonTraffic, 14},   // wakes again
		{15, 5, true, true, shutdown.ReasonTraffic, 14},   // still awake: no new wake
		{16, 0, true, true, shutdown.ReasonMinUptime, 14}, // recent (1m) and min uptime: min uptime first
	}
	for _, st := range steps {
		tr.Observe(st.value, 0, st.ok, at(st.minute))
		d := tr.Decide(p, at(st.minute))
		if d.Active != st.active || d.Reason != st.reason {
			t.Fatalf("minute %d: got %v %s, want %v %s", st.minute, d.Active, d.Reason, st.active, st.reason)
		}
		wantWoke := time.Time{}
		if st.woke >= 0 {
			wantWoke = at(st.woke)
		}
		if got := tr.State(at(st.minute)).WokeAt; !got.Equal(wantWoke) {
			t.Fatalf("minute %d: got woke at %s, want %s", st.minute, fmtTime(got), fmtTime(wantWoke))
		}
	}
}

// The first answer after a start is not a wake: ebb does not know whether
// the workload was running. Nor is the first known answer after unknown
// ones: a workload idle after a restart is idle, not woken.
func TestTrackerFirstAnswerIsNotAWake(t *testing.T) {
	t.Parallel()
	var tr shutdown.Tracker
	if d := tr.Decide(shutdown.DefaultPolicy(), now); d.Known() || d.Reason != shutdown.ReasonUnknown {
		t.Fatalf("got known %v %s, want unknown", d.Known(), d.Reason)
	}
	if got := tr.State(now).WokeAt; !got.IsZero() {
		t.Errorf("got woke at %s, want zero", fmtTime(got))
	}
	tr.Recover(time.Time{})
	tr.Observe(0, 0, true, now)
	if d := tr.Decide(shutdown.DefaultPolicy(), now); !d.Known() || d.Active || d.Reason != shutdown.ReasonIdle {
		t.Fatalf("after recovery without activity: %s, want idle", d)
	}
	if got := tr.State(now).WokeAt; !got.IsZero() {
		t.Errorf("after recovery: woke at %s, want zero", fmtTime(got))
	}
}

// A wake records WokeAt and the same decision already reports min uptime's
// end as Until.
func TestTrackerWakeUntil(t *testing.T) {
	t.Parallel()
	p := shutdown.Policy{IdleAfter: time.Minute, MinUptime: 5 * time.Minute, KeepAwake: windows(t, "0 10 * * * for 2m")}
	var tr shutdown.Tracker
	tr.Recover(time.Time{})
	tr.Observe(0, 0, true, now.Add(-time.Minute))
	if d := tr.Decide(p, now.Add(-time.Minute)); d.Active {
		t.Fatalf("got %s, want idle", d)
	}
	tr.Observe(0, 0, true, now)
	d := tr.Decide(p, now)
	if !d.Active || d.Reason != shutdown.ReasonKeepAwake {
		t.Fatalf("got %s, want active for the window", d)
	}
	if want := now.Add(5 * time.Minute); !d.Until.Equal(want) {
		t.Errorf("got until %s, want %s", fmtTime(d.Until), fmtTime(want))
	}
}

// A workload active when the source began to fail is taken as active
// through the failures: its idle clock starts again at the first good
// observation after them, so an outage (a store restarted empty has lost
// what happened in it) never brings a shutdown forward. One idle going in
// keeps its idle clock: the outage wakes nothing.
func TestTrackerActiveThroughFailures(t *testing.T) {
	t.Parallel()
	p := shutdown.Policy{IdleAfter: 30 * time.Second}
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	for _, tt := range []struct {
		name     string
		before   float64 // the last good value before the failures, at 2s
		wantLast int     // the idle clock's start, in seconds
		idleAt   int     // the first second answered idle
	}{
		{"active going in", 12, 10, 40},
		{"idle going in", 0, 0, 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &shutdown.Tracker{MaxStaleness: time.Minute}
			tr.Recover(time.Time{})
			tr.Observe(5, 0, true, at(0)) // active at 0s
			tr.Observe(tt.before, 0, true, at(2))
			tr.Observe(0, 0, false, at(4)) // the store restarts
			tr.Observe(0, 0, false, at(6))
			tr.Observe(0, 0, true, at(10)) // back, empty: no traffic
			if got := tr.State(at(10)).LastActive; !got.Equal(at(tt.wantLast)) {
				t.Fatalf("last active = %s, want %s", fmtTime(got), fmtTime(at(tt.wantLast)))
			}
			for s := 10; s <= 45; s++ {
				if s > 10 {
					tr.Observe(0, 0, true, at(s))
				}
				d := tr.Decide(p, at(s))
				if idle := !d.Active; idle != (s >= tt.idleAt) {
					t.Fatalf("second %d: active = %v (%s), want idle from %ds", s, d.Active, d.Reason, tt.idleAt)
				}
			}
		})
	}
}
