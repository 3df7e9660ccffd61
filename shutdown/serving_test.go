package shutdown_test

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// A model server with requests waiting or running is never idle, whatever
// its activation and whatever else is known.
func TestServingIsNeverIdle(t *testing.T) {
	t.Parallel()
	p := shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute}
	long := now.Add(-48 * time.Hour)
	tests := []struct {
		name   string
		policy shutdown.Policy
		state  shutdown.State
		active bool
		reason shutdown.Reason
		text   string
	}{
		{"waiting below activation, idle for days", p,
			shutdown.State{Known: true, Value: 3, Activation: 5, InFlight: 3, LastActive: long},
			true, shutdown.ReasonServing, "serving: 3 requests waiting or running"},
		{"one request running, activation 0", p,
			shutdown.State{Known: true, Value: 1, Activation: 0, InFlight: 1},
			true, shutdown.ReasonTraffic, "value 1 > activation 0"},
		{"fractional average of requests", p,
			shutdown.State{Known: true, Value: 0.25, Activation: 1, InFlight: 0.25, LastActive: long},
			true, shutdown.ReasonServing, "serving: 0.25 requests waiting or running"},
		{"no request in flight: idle as usual", p,
			shutdown.State{Known: true, Value: 0, Activation: 5, LastActive: long},
			false, shutdown.ReasonIdle, "idle for 2d (idle after 15m)"},
		{"unknown data is still no answer", p,
			shutdown.State{Known: false, Why: shutdown.WhyFailing, InFlight: 3},
			true, shutdown.ReasonUnknown, "no trustworthy data: " + shutdown.WhyFailing},
		{"opt-out comes first", shutdown.Policy{Disabled: true},
			shutdown.State{Known: true, Value: 3, Activation: 5, InFlight: 3},
			true, shutdown.ReasonOptOut, "autoshutdown disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.policy.Decide(tt.state, now)
			if d.Active != tt.active || d.Reason != tt.reason || d.Text() != tt.text {
				t.Errorf("Decide = %v %s %q, want %v %s %q", d.Active, d.Reason, d.Text(), tt.active, tt.reason, tt.text)
			}
		})
	}
	if got := shutdown.ReasonServing.String(); got != "serving" {
		t.Errorf("ReasonServing.String() = %q, want serving", got)
	}
}

// A Tracker of a request-counting signal counts any request in flight as
// activity: the idle clock starts when the last one is done.
func TestTrackerCountsRequests(t *testing.T) {
	t.Parallel()
	p := shutdown.Policy{IdleAfter: 15 * time.Minute}
	for _, counts := range []bool{true, false} {
		tr := shutdown.Tracker{CountsRequests: counts}
		tr.Recover(time.Time{})
		tr.Observe(2, 5, true, now) // 2 waiting, activation 5
		d := tr.Decide(p, now)
		s := tr.State(now)
		if counts {
			if !d.Active || d.Reason != shutdown.ReasonServing || s.InFlight != 2 || !s.LastActive.Equal(now) {
				t.Errorf("counting: %s, state %+v; want active serving, in flight 2, last active now", d, s)
			}
		} else if d.Active || s.InFlight != 0 || !s.LastActive.IsZero() {
			t.Errorf("not counting: %s, state %+v; want idle, nothing in flight, never active", d, s)
		}
		// The last request is done: recent for IdleAfter, then idle.
		tr.Observe(0, 5, true, now.Add(time.Minute))
		if d := tr.Decide(p, now.Add(10*time.Minute)); counts && (!d.Active || d.Reason != shutdown.ReasonRecent) {
			t.Errorf("10m after: %s, want active, recent", d)
		}
		if d := tr.Decide(p, now.Add(16*time.Minute)); d.Active {
			t.Errorf("16m after: %s, want idle", d)
		}
	}
}
