package shutdown

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Server defaults.
const (
	DefaultIdleAfter = 15 * time.Minute
	DefaultMinUptime = 5 * time.Minute
)

// Policy is when one workload may be shut down.
type Policy struct {
	// IdleAfter is how long the workload stays active after its last activity.
	IdleAfter time.Duration
	// MinUptime is how long it stays active at least after a wake, so that it
	// cannot flap.
	MinUptime time.Duration
	// Disabled opts the workload out: it is never idle.
	Disabled bool
	// KeepAwake holds windows inside which the workload is never idle.
	KeepAwake []Window
	// Invalid is the workload's configuration problem, if any. A Policy with
	// a problem decides neither active nor idle: a typo must not shut a
	// workload down, nor wake one.
	Invalid error
	// Unknown, when set, says why the workload's configuration is not known
	// yet; the Policy then decides neither active nor idle.
	Unknown string
	// Auto is idleAfter: auto: the keep-alive, pre-wake and keep-awake
	// hours are learned (see Learn and Model.Apply).
	Auto bool
	// Learn is how an Auto policy learns; the zero value means
	// DefaultLearnConfig, with IdleAfter as the fixed fallback.
	Learn LearnConfig
	// Learned is the model in force for an Auto policy, set by
	// Model.Apply; nil: IdleAfter applies as for a fixed policy.
	Learned *Model
}

// State is what ebb knows about a workload's activity.
type State struct {
	// Known reports whether ebb has a trustworthy observation; false when the
	// source fails, the data is stale, or there is none yet.
	Known bool
	// Why says why the state is not Known, e.g. "no data yet".
	Why string
	// Value is the workload's signal; it is active while Value > Activation.
	Value      float64
	Activation float64
	// LastActive is the last instant Value was above Activation; zero if never.
	LastActive time.Time
	// WokeAt is when the workload last went from idle to active; zero if unknown.
	WokeAt time.Time
	// Held is the number of requests ebb's activator holds for the
	// workload now, and HeldSince when it began holding them.
	Held      int
	HeldSince time.Time
	// InFlight is the number of requests the workload's model servers
	// report waiting or running (the queue and running signals): while it
	// is above 0 the workload is serving and never idle, whatever its
	// activation and its other signals say (a request rate counts requests
	// when they complete).
	InFlight float64
}

// Reason is why a Decision came out as it did. The constants are in order of
// precedence: the first that applies is the reason.
type Reason uint8

// Reasons, in order of precedence.
const (
	ReasonHeld         Reason = iota + 1 // the activator holds requests for it: active, whatever else is known
	ReasonBadConfig                      // the workload's configuration is broken: neither active nor idle (see Decision.Known)
	ReasonUnknown                        // no trustworthy data: neither active nor idle (see Decision.Known)
	ReasonOptOut                         // autoshutdown disabled: active
	ReasonTraffic                        // value above activation: active
	ReasonServing                        // its model servers have requests waiting or running: active
	ReasonKeepAwake                      // inside a keep-awake window: active
	ReasonLearnedHours                   // inside a learned keep-awake hour (auto): active
	ReasonMinUptime                      // woke less than MinUptime ago: active
	ReasonRecent                         // active less than IdleAfter ago: active
	ReasonPreWake                        // inside the learned pre-wake window (auto): active
	ReasonIdle                           // none of the above: idle

	// ReasonSwitching is not one of Decide's: the collector answers a
	// workload that Decide found idle active for as long as the activator
	// is not yet in front of its Services (see Switching).
	ReasonSwitching
)

var reasonNames = [...]string{
	ReasonHeld:         "held",
	ReasonBadConfig:    "bad-config",
	ReasonUnknown:      "unknown",
	ReasonOptOut:       "opt-out",
	ReasonTraffic:      "traffic",
	ReasonServing:      "serving",
	ReasonKeepAwake:    "keep-awake",
	ReasonLearnedHours: "learned-hours",
	ReasonMinUptime:    "min-uptime",
	ReasonRecent:       "recent",
	ReasonPreWake:      "pre-wake",
	ReasonIdle:         "idle",
	ReasonSwitching:    "switching",
}

// String returns the reason's short name, e.g. "keep-awake", fit for a
// metric label.
func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Decision is whether a workload should run, why, and until when.
type Decision struct {
	// Active is whether the workload should run. It is true for an unknown
	// state too (Reason ReasonUnknown), so that nothing that reads Active
	// alone ever shuts a workload down blind; what answers KEDA checks
	// Known first and answers neither true nor false.
	Active bool
	Reason Reason
	// Until is when the answer next changes if nothing but time passes;
	// zero when time alone will not change it.
	Until time.Time
	// Detail holds what the human-readable text is made of.
	Detail Detail
}

// Detail is the data behind a Decision's text.
type Detail struct {
	At         time.Time // the now of the decision
	Value      float64
	Activation float64
	LastActive time.Time
	WokeAt     time.Time
	IdleAfter  time.Duration
	MinUptime  time.Duration
	Window     string  // the keep-awake window that applies
	Learned    *Model  // the learned model of an auto policy
	Held       int     // requests held by the activator
	InFlight   float64 // requests waiting or running in its model servers
	HeldSince  time.Time
	Why        string // why the state is not known
	Err        error  // the configuration problem
}

// Decide answers whether the workload should be active at now. It is pure
// and does not allocate.
func (p Policy) Decide(s State, now time.Time) Decision {
	d := Decision{Active: true, Detail: Detail{
		At: now, Value: s.Value, Activation: s.Activation,
		LastActive: s.LastActive, WokeAt: s.WokeAt,
		IdleAfter: p.IdleAfter, MinUptime: p.MinUptime, Learned: p.Learned,
		Why: s.Why, Err: p.Invalid, Held: s.Held, HeldSince: s.HeldSince, InFlight: s.InFlight,
	}}
	switch {
	case s.Held > 0:
		d.Reason = ReasonHeld
		return d
	case p.Invalid != nil:
		d.Reason = ReasonBadConfig
		return d
	case p.Unknown != "":
		d.Reason, d.Detail.Why = ReasonUnknown, p.Unknown
		return d
	case !s.Known || !finite(s.Value) || !finite(s.Activation):
		if s.Known {
			d.Detail.Why = "value or activation is not a number"
		}
		d.Reason = ReasonUnknown
		return d
	case p.Disabled:
		d.Reason = ReasonOptOut
		return d
	case s.Value > s.Activation:
		d.Reason = ReasonTraffic
		return d
	case s.InFlight > 0:
		d.Reason = ReasonServing
		return d
	}

	// Reasons that expire with time: the answer changes when all have.
	for i := range p.KeepAwake {
		if in, end := p.KeepAwake[i].Contains(now); in {
			if d.Reason == 0 {
				d.Reason = ReasonKeepAwake
				d.Detail.Window = p.KeepAwake[i].String()
			}
			d.Until = later(d.Until, end)
		}
	}
	if m := p.Learned; m != nil {
		for i := range m.Hours {
			if in, end := m.Hours[i].Contains(now); in {
				if d.Reason == 0 {
					d.Reason = ReasonLearnedHours
					d.Detail.Window = m.HoursText
				}
				d.Until = later(d.Until, end)
			}
		}
	}
	if !s.WokeAt.IsZero() {
		if end := s.WokeAt.Add(p.MinUptime); end.After(now) {
			if d.Reason == 0 {
				d.Reason = ReasonMinUptime
			}
			d.Until = later(d.Until, end)
		}
	}
	if !s.LastActive.IsZero() {
		if end := s.LastActive.Add(p.IdleAfter); end.After(now) {
			if d.Reason == 0 {
				d.Reason = ReasonRecent
			}
			d.Until = later(d.Until, end)
		}
	}
	var wakeAt time.Time // the next pre-wake, if after now
	if m := p.Learned; m != nil && m.PreWakeFrom > 0 && !s.LastActive.IsZero() {
		from, to := s.LastActive.Add(m.PreWakeFrom), s.LastActive.Add(m.PreWakeUntil)
		switch {
		case now.Before(from):
			wakeAt = from
		case now.Before(to):
			if d.Reason == 0 {
				d.Reason = ReasonPreWake
			}
			d.Until = later(d.Until, to)
		}
	}
	if d.Reason != 0 {
		d.Until = p.pastWindows(d.Until)
		return d
	}

	d.Active, d.Reason = false, ReasonIdle
	for _, w := range p.windows() {
		if open := w.Next(now); !open.IsZero() && (d.Until.IsZero() || open.Before(d.Until)) {
			d.Until = open
		}
	}
	if !wakeAt.IsZero() && (d.Until.IsZero() || wakeAt.Before(d.Until)) {
		d.Until = wakeAt
	}
	return d
}

// windows returns the keep-awake windows and the learned hours.
func (p Policy) windows() []Window {
	if p.Learned == nil || len(p.Learned.Hours) == 0 {
		return p.KeepAwake
	}
	return append(slices.Clip(p.KeepAwake), p.Learned.Hours...)
}

// pastWindows moves u past keep-awake windows open at u, so that Until is
// when the workload really goes idle.
func (p Policy) pastWindows(u time.Time) time.Time {
	for range 3 {
		moved := false
		for _, w := range p.windows() {
			if in, end := w.Contains(u); in && end.After(u) {
				u, moved = end, true
			}
		}
		if !moved {
			break
		}
	}
	return u
}

// Text returns the human-readable reason, e.g. "idle for 17m (idle after 15m)".
func (d Decision) Text() string {
	x := d.Detail
	switch d.Reason {
	case ReasonHeld:
		return heldText(x)
	case ReasonBadConfig:
		if x.Err == nil {
			return "bad configuration"
		}
		return "bad configuration: " + x.Err.Error()
	case ReasonUnknown:
		if x.Why == "" {
			return "no trustworthy data"
		}
		return "no trustworthy data: " + x.Why
	case ReasonOptOut:
		return "autoshutdown disabled"
	case ReasonTraffic:
		return "value " + number(x.Value) + " > activation " + number(x.Activation)
	case ReasonServing:
		return "serving: " + number(x.InFlight) + " requests waiting or running"
	case ReasonKeepAwake:
		return "keep-awake window " + strconv.Quote(x.Window)
	case ReasonLearnedHours:
		return "learned keep-awake hours " + x.Window
	case ReasonPreWake:
		return "pre-wake: activity expected " + FormatDuration(x.Learned.PreWakeFrom.Truncate(time.Minute)) + "-" +
			FormatDuration(x.Learned.PreWakeUntil.Truncate(time.Minute)) + " after the last, which was " + shortAgo(x.At.Sub(x.LastActive)) + " ago"
	case ReasonMinUptime:
		return "woke " + shortAgo(x.At.Sub(x.WokeAt)) + " ago, min uptime " + FormatDuration(x.MinUptime)
	case ReasonRecent:
		return "last active " + shortAgo(x.At.Sub(x.LastActive)) + " ago, idle after " + FormatDuration(x.IdleAfter)
	case ReasonIdle:
		if x.LastActive.IsZero() {
			return "no activity seen (idle after " + FormatDuration(x.IdleAfter) + ")"
		}
		return "idle for " + shortAgo(x.At.Sub(x.LastActive)) + " (idle after " + FormatDuration(x.IdleAfter) + ")"
	case ReasonSwitching:
		return "idle, switching its Services to the activator first"
	}
	return d.Reason.String()
}

// Switching returns idle decision d held back: active, with reason
// ReasonSwitching, until the activator is in front of the workload's
// Services, so that KEDA does not remove its last pod while requests still
// go only to it. Its Until and Detail are d's.
func Switching(d Decision) Decision {
	d.Active, d.Reason = true, ReasonSwitching
	return d
}

// Known reports whether the decision rests on a trustworthy state and a
// valid configuration. A decision that is not known must neither wake a
// workload nor shut it down: KEDA is answered an error, on which it keeps
// the current replica count.
func (d Decision) Known() bool { return d.Reason != ReasonUnknown && d.Reason != ReasonBadConfig }

// String returns "active: <text>", "idle: <text>" or "unknown: <text>".
func (d Decision) String() string {
	if !d.Known() {
		return "unknown: " + d.Text()
	}
	if d.Active {
		return "active: " + d.Text()
	}
	return "idle: " + d.Text()
}

// heldText is "holding 3 requests since 2026-03-30T09:59:00Z".
func heldText(x Detail) string {
	unit := " requests"
	if x.Held == 1 {
		unit = " request"
	}
	return "holding " + strconv.Itoa(x.Held) + unit + " since " + x.HeldSince.UTC().Truncate(time.Second).Format(time.RFC3339)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
