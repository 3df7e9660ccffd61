package backtest

import (
	"fmt"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// KEDA is KEDA's own scale to zero: it polls the trigger every Poll (KEDA's
// pollingInterval, 30s by default), and the trigger is active while the
// store's rate over Window shows demand; it scales from zero at the first
// active poll and to zero once no poll has been active for Cooldown (its
// cooldownPeriod, 300s by default).
type KEDA struct {
	Cooldown, Poll, Window time.Duration
}

// DefaultKEDA is KEDA's defaults over a 1m rate window.
func DefaultKEDA() KEDA {
	return KEDA{Cooldown: 300 * time.Second, Poll: 30 * time.Second, Window: time.Minute}
}

func (k KEDA) Name() string {
	return fmt.Sprintf("keda-%s", shutdown.FormatDuration(k.Cooldown))
}

func (k KEDA) Start(w *Workload) Runner { return &kedaRunner{KEDA: k, nextPoll: w.Start} }

type kedaRunner struct {
	KEDA
	nextPoll   time.Time
	lastDemand time.Time // the middle of the last step with demand
	lastActive time.Time // the last active poll
}

func (r *kedaRunner) Step(from, to time.Time, demand float64, up bool) (bool, time.Time) {
	if demand > 0 {
		r.lastDemand = from.Add(to.Sub(from) / 2)
	}
	want := up
	for ; !r.nextPoll.After(to); r.nextPoll = r.nextPoll.Add(r.Poll) {
		p := r.nextPoll
		if !r.lastDemand.IsZero() && !r.lastDemand.After(p) && p.Sub(r.lastDemand) < r.Window {
			r.lastActive = p
			if !want {
				return true, p
			}
			continue
		}
		if want && (r.lastActive.IsZero() || p.Sub(r.lastActive) >= r.Cooldown) {
			return false, p
		}
	}
	return want, time.Time{}
}

// Knative is Knative Serving's scale to zero: its activator sees a request
// at once and wakes the revision; the autoscaler wants zero pods once its
// StableWindow (60s) has seen no request, and removes the last one after
// the scale-to-zero Grace period (30s).
type Knative struct {
	StableWindow, Grace time.Duration
}

// DefaultKnative is Knative's defaults.
func DefaultKnative() Knative {
	return Knative{StableWindow: 60 * time.Second, Grace: 30 * time.Second}
}

func (k Knative) Name() string { return "knative" }

func (k Knative) Start(w *Workload) Runner { return newAfterLastRequest(w, k.StableWindow+k.Grace) }

// KubeElasti is KubeElasti's scale to zero: its resolver holds a request
// and wakes the workload at once; it scales to zero after Cooldown (its
// cooldownPeriod, 900s by default) without requests.
type KubeElasti struct {
	Cooldown time.Duration
}

// DefaultKubeElasti is KubeElasti's default.
func DefaultKubeElasti() KubeElasti { return KubeElasti{Cooldown: 900 * time.Second} }

func (k KubeElasti) Name() string { return "kubeelasti-" + shutdown.FormatDuration(k.Cooldown) }

func (k KubeElasti) Start(w *Workload) Runner { return newAfterLastRequest(w, k.Cooldown) }

// afterLastRequest wakes at a request's arrival and stops wait after the
// last one (or after the start, for a workload up at the start).
type afterLastRequest struct {
	wait       time.Duration
	lastDemand time.Time
}

func newAfterLastRequest(w *Workload, wait time.Duration) *afterLastRequest {
	r := &afterLastRequest{wait: wait}
	if w.UpAtStart {
		r.lastDemand = w.Start
	}
	return r
}

func (r *afterLastRequest) Step(from, to time.Time, demand float64, up bool) (bool, time.Time) {
	if demand > 0 {
		r.lastDemand = from.Add(to.Sub(from) / 2)
		if !up {
			return true, r.lastDemand
		}
		return true, time.Time{}
	}
	if up && !r.lastDemand.IsZero() {
		if end := r.lastDemand.Add(r.wait); !end.After(to) {
			return false, later(end, from)
		}
	}
	return up, time.Time{}
}

// Ebb is ebb's idle policy as `ebb serve` runs it: every Tick the collector
// reads the rate over Window, the Tracker and the Policy decide (IdleAfter
// fixed, or Auto: learned from the workload's own activity as it goes, with
// the LearnConfig), and KEDA, pushed the answer, scales to zero after its
// own Cooldown (keep it small, as ebb's docs say).
type Ebb struct {
	IdleAfter time.Duration // ignored when Auto
	Auto      bool
	MinUptime time.Duration
	Tick      time.Duration
	Window    time.Duration
	Cooldown  time.Duration
	Learn     shutdown.LearnConfig
	// ColdStart is each workload class's cold start (Options.ColdStart),
	// which Auto's pre-wake leads by, with shutdown.WakeMargin. A class
	// not in it keeps Learn's WakeLead.
	ColdStart map[string]time.Duration
}

// DefaultEbb is `ebb serve`'s defaults with a fixed idleAfter: a 5s tick,
// 5m min uptime, a 1m window, and KEDA's cooldownPeriod at 30s.
func DefaultEbb(idleAfter time.Duration) Ebb {
	return Ebb{IdleAfter: idleAfter, MinUptime: shutdown.DefaultMinUptime, Tick: 5 * time.Second,
		Window: time.Minute, Cooldown: 30 * time.Second, Learn: shutdown.DefaultLearnConfig()}
}

// DefaultEbbAuto is DefaultEbb with idleAfter: auto.
func DefaultEbbAuto() Ebb {
	e := DefaultEbb(shutdown.DefaultIdleAfter)
	e.Auto = true
	return e
}

func (e Ebb) Name() string {
	if e.Auto {
		return "ebb-auto"
	}
	return "ebb-" + shutdown.FormatDuration(e.IdleAfter)
}

func (e Ebb) Start(w *Workload) Runner {
	tick := max(e.Tick, w.Step)
	r := &ebbRunner{Ebb: e, tick: tick, nextTick: w.Start,
		policy:   shutdown.Policy{IdleAfter: e.IdleAfter, MinUptime: e.MinUptime, Auto: e.Auto},
		activity: &shutdown.Activity{Step: tick}}
	if e.Auto {
		r.policy.IdleAfter = e.Learn.Fixed
		if d, ok := e.ColdStart[w.class()]; ok {
			r.Learn.WakeLead = d + shutdown.WakeMargin
		}
		// Decisions come at tick granularity: a tick as long as the
		// lead's 30s margin over a 2m cold start (a store's 1m step)
		// wakes up to a tick late, so the lead grows by one.
		if tick >= 30*time.Second {
			r.Learn.WakeLead += tick
		}
	}
	// A fresh ebb recovers an empty idle clock: nothing before the
	// history; one that finds the workload up, the start.
	var last time.Time
	if w.UpAtStart {
		last = w.Start
	}
	r.tr.Recover(last)
	return r
}

// relearnEvery bounds how stale a cached model gets between changes of
// activity, as the collector's cache does.
const relearnEvery = 10 * time.Minute

type ebbRunner struct {
	Ebb
	tick       time.Duration
	nextTick   time.Time
	policy     shutdown.Policy
	tr         shutdown.Tracker
	activity   *shutdown.Activity
	model      *shutdown.Model
	learnedAt  time.Time
	wasActive  bool
	lastDemand time.Time
	idleSince  time.Time
}

func (r *ebbRunner) Step(from, to time.Time, demand float64, up bool) (bool, time.Time) {
	if demand > 0 {
		r.lastDemand = from.Add(to.Sub(from) / 2)
	}
	want := up
	for ; !r.nextTick.After(to); r.nextTick = r.nextTick.Add(r.tick) {
		t := r.nextTick
		active := !r.lastDemand.IsZero() && !r.lastDemand.After(t) && t.Sub(r.lastDemand) < r.Window
		v := 0.0
		if active {
			v = 1
		}
		r.tr.Observe(v, 0, true, t)
		p := r.policy
		if r.Auto {
			r.activity.Observe(t, active)
			if r.model == nil || active != r.wasActive || t.Sub(r.learnedAt) >= relearnEvery {
				r.model, r.learnedAt = shutdown.Learn(r.activity, t, r.Learn), t
				r.activity.Forget(t.Add(-r.Learn.Window))
			}
			r.wasActive = active
			p = r.model.Apply(p)
		}
		d := r.tr.Decide(p, t)
		switch {
		case d.Active:
			r.idleSince = time.Time{}
			if !want {
				return true, t
			}
		case r.idleSince.IsZero():
			r.idleSince = t
			fallthrough
		default:
			if want && t.Sub(r.idleSince) >= r.Cooldown {
				return false, t
			}
		}
	}
	return want, time.Time{}
}

// Unknown sees the ticks of a step without data: the collector's reads
// fail, the Tracker answers neither active nor idle, and KEDA keeps the
// replicas; the cooldown resumes where it was once data returns.
func (r *ebbRunner) Unknown(from, to time.Time) {
	for ; !r.nextTick.After(to); r.nextTick = r.nextTick.Add(r.tick) {
		r.tr.Observe(0, 0, false, r.nextTick)
		r.tr.Decide(r.policy, r.nextTick)
	}
}

var _ unknownStepper = (*ebbRunner)(nil)

// Note is the model learned last, for ebb auto.
func (r *ebbRunner) Note() string {
	if r.model == nil {
		return ""
	}
	return r.model.Summary()
}

// StandardPolicies are the policies `ebb backtest` compares by default:
// KEDA's default, Knative, KubeElasti, ebb with a fixed 5m, 15m and 30m,
// and ebb auto learning as learn says, its pre-wake led by each class's
// cold start in coldStart (Options.ColdStart). ebbCooldown is KEDA's
// cooldownPeriod in front of ebb's policies (0: DefaultEbb's 30s).
func StandardPolicies(learn shutdown.LearnConfig, ebbCooldown time.Duration, coldStart map[string]time.Duration) []Policy {
	ebb := func(idleAfter time.Duration) Ebb {
		e := DefaultEbb(idleAfter)
		if ebbCooldown > 0 {
			e.Cooldown = ebbCooldown
		}
		return e
	}
	auto := ebb(learn.Fixed)
	auto.Auto, auto.Learn, auto.ColdStart = true, learn, coldStart
	return []Policy{
		DefaultKEDA(), DefaultKnative(), DefaultKubeElasti(),
		ebb(5 * time.Minute), ebb(15 * time.Minute), ebb(30 * time.Minute),
		auto,
	}
}
