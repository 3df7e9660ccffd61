package shutdown

import "time"

// Why a Tracker's state is not known.
const (
	WhyNotRecovered = "idle clock not recovered yet"
	WhyNoData       = "no data yet"
	WhyFailing      = "source failing, last good data too old"
)

// Tracker keeps one workload's idle clock from successive observations: the
// last activity, the last wake, and whether the data is trustworthy. Its
// owner calls it from one goroutine; it starts no goroutines and takes no
// locks. The zero Tracker is ready to use.
//
// A Tracker is not Known until Recover has been called, so that a restarted
// ebb never answers idle before it has recovered the idle clock from the
// store's history.
type Tracker struct {
	// MaxStaleness is how long the last good observation is trusted while
	// observations fail. Zero: not at all.
	MaxStaleness time.Duration
	// CountsRequests says the observed value is a number of requests a
	// model server has waiting or running (see State.InFlight): any value
	// above 0 is activity, whatever the activation.
	CountsRequests bool

	value, activation float64
	lastOK            time.Time // when the last good observation was made; zero if none
	failing           bool      // the last observation failed
	lastActive        time.Time
	wokeAt            time.Time
	recovered         bool
	decided, active   bool // the last answer of Decide, if any
	held              int  // requests the activator holds now: see Holding
	heldSince         time.Time
}

// Holding records that ebb's activator holds n requests for the workload
// since since (n = 0: none). Held requests are demand ebb sees itself: the
// decision is active, whatever else is known.
func (t *Tracker) Holding(n int, since time.Time) {
	t.held, t.heldSince = n, since
	if n <= 0 {
		t.held, t.heldSince = 0, time.Time{}
	}
}

// Observe records an observation made at at: the workload's value and its
// activation threshold, or ok = false when the source failed. A value or
// activation that is not a finite number counts as a failure. Observations
// older than the last good one are ignored.
//
// A workload that was active at the last good observation before failures
// is taken as active through them: its idle clock starts again at the
// first good observation after them. What happened while the source failed
// is not known (a store restarted empty has lost it for good), and the
// failure rules never let an outage bring a shutdown forward.
func (t *Tracker) Observe(value, activation float64, ok bool, at time.Time) {
	if !ok || !finite(value) || !finite(activation) {
		t.failing = true
		return
	}
	if at.Before(t.lastOK) {
		return
	}
	wasActive := t.failing && !t.lastOK.IsZero() && t.isActive(t.value, t.activation)
	t.value, t.activation, t.lastOK, t.failing = value, activation, at, false
	if (wasActive || t.isActive(value, activation)) && at.After(t.lastActive) {
		t.lastActive = at
	}
}

// isActive says whether an observed value is activity.
func (t *Tracker) isActive(value, activation float64) bool {
	return value > activation || t.CountsRequests && value > 0
}

// Saw records activity seen outside the store at at, such as a request
// held for the workload: the idle clock counts from it.
func (t *Tracker) Saw(at time.Time) {
	if at.After(t.lastActive) {
		t.lastActive = at
	}
}

// Recover merges the last activity found in the store's history (zero if
// none within the look-back) and marks the idle clock as recovered.
func (t *Tracker) Recover(lastActive time.Time) {
	if lastActive.After(t.lastActive) {
		t.lastActive = lastActive
	}
	t.recovered = true
}

// State returns the workload's state at now, for Policy.Decide.
func (t *Tracker) State(now time.Time) State {
	s := State{
		Known: true, Value: t.value, Activation: t.activation,
		LastActive: t.lastActive, WokeAt: t.wokeAt,
		Held: t.held, HeldSince: t.heldSince,
	}
	if t.CountsRequests {
		s.InFlight = t.value
	}
	switch {
	case !t.recovered:
		s.Known, s.Why = false, WhyNotRecovered
	case t.lastOK.IsZero():
		s.Known, s.Why = false, WhyNoData
	case t.failing && now.Sub(t.lastOK) > t.MaxStaleness:
		s.Known, s.Why = false, WhyFailing
	}
	return s
}

// Decide returns p's decision for the tracked state at now and records a
// wake when the answer turns from idle to active, whatever the cause
// (traffic or a keep-awake window), so that MinUptime holds after every
// wake. An unknown state is no answer: it records no wake, and the next
// known answer is compared with the last known one, so that a store outage
// neither wakes a workload nor, through MinUptime, keeps it up afterwards.
func (t *Tracker) Decide(p Policy, now time.Time) Decision {
	d := p.Decide(t.State(now), now)
	if !d.Known() {
		return d
	}
	if d.Active && t.decided && !t.active {
		t.wokeAt = now
		d = p.Decide(t.State(now), now)
	}
	t.decided, t.active = true, d.Active
	return d
}
