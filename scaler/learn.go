package scaler

import (
	"context"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// ActivitySource is a Source that can read a workload's past activity, so
// that idleAfter: auto learns from the store's history on start rather
// than from nothing (promapi.Prometheus is one).
type ActivitySource interface {
	// ActiveSteps evaluates shape at every step over (at-lookback, at] and
	// returns, per workload with any, the steps at which its value was
	// above activation, in time order.
	ActiveSteps(ctx context.Context, shape queries.Shape, activation float64, lookback, step time.Duration, at time.Time) (map[queries.WorkloadKey][]time.Time, error)
}

// learnState is an interest's learned idle policy, kept by the collector's
// tick only: the hot path reads decisions, never learns.
type learnState struct {
	activity  shutdown.Activity
	model     *shutdown.Model
	learnedAt time.Time
	wasActive bool
	// read is true once the history was read from the store (or the
	// source keeps none).
	read bool
}

// relearnEvery bounds how old a cached model gets while the workload's
// activity does not turn on or off.
const relearnEvery = 10 * time.Minute

// whyNotRead is an auto model's reason before the history is read.
const whyNotRead = "history not read from the store yet"

// learned returns p with in's learned model in force when p is Auto: the
// tick's observation o goes into the workload's activity, and the model
// is learned again when the activity turned on or off or every 10 minutes.
// Until the history is read, the fixed idle-after applies.
func (c *Collector) learned(in *Interest, p shutdown.Policy, o *Observation, now time.Time) shutdown.Policy {
	if !p.Auto {
		return p
	}
	ls := &in.learn
	if !ls.read {
		if ls.model == nil || ls.model.KeepAlive != p.IdleAfter {
			ls.model = shutdown.FixedModel(p.IdleAfter, whyNotRead)
		}
		return ls.model.Apply(p)
	}
	changed := false
	if o.OK && o.At.Equal(now) {
		active := o.LastActive.Equal(now)
		ls.activity.Observe(now, active)
		changed, ls.wasActive = active != ls.wasActive, active
	}
	if ls.model == nil || changed || now.Sub(ls.learnedAt) >= relearnEvery || ls.model.KeepAlive != p.IdleAfter && ls.model.Mode != shutdown.ModeLearned {
		cfg := p.LearnConfig()
		ls.model, ls.learnedAt = shutdown.Learn(&ls.activity, now, cfg), now
		ls.activity.Forget(now.Add(-cfg.Window))
	}
	return ls.model.Apply(p)
}

// recoverActivity reads, once, the activity history of the interests
// whose policy is auto, with one query per shape and activation; it is
// restart-safe learning, as recover is for idle clocks. A failed read is
// tried again next tick; meanwhile the fixed idle-after applies.
func (c *Collector) recoverActivity(ctx context.Context, groups map[queries.Shape]map[queries.WorkloadKey][]*Interest, now time.Time) {
	pending := map[recoverKey][]*Interest{}
	window := time.Duration(0)
	for shape, byWorkload := range groups {
		for _, ins := range byWorkload {
			for _, in := range ins {
				if in.learn.read {
					continue
				}
				p := c.policy(in)
				if !p.Auto {
					continue
				}
				window = max(window, p.LearnConfig().Window)
				k := recoverKey{shape, in.activation}
				pending[k] = append(pending[k], in)
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	src, ok := c.cfg.Source.(ActivitySource)
	step := max(c.cfg.RecoveryStep, time.Minute)
	for k, ins := range pending {
		var found map[queries.WorkloadKey][]time.Time
		if ok {
			qctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
			var err error
			found, err = src.ActiveSteps(qctx, k.shape, k.activation, window, step, now)
			cancel()
			if err != nil {
				c.cfg.Logger.Warn("activity history not read; idleAfter auto uses the fixed idle-after until it is", "shape", k.shape.String(), "err", err)
				continue
			}
		}
		for _, in := range ins {
			wk := in.workload
			if k.shape.Signal == queries.SignalQuery {
				wk = queries.WorkloadKey{}
			}
			in.learn.activity = activityOf(found[wk], step)
			in.learn.read, in.learn.model = true, nil
			// The pre-wake counts from the last activity, which may lie
			// beyond the idle clock's look-back.
			if last := in.learn.activity.LastActive(); !last.IsZero() {
				in.tracker.Saw(last)
			}
		}
	}
}

// activityOf turns active steps into an Activity that starts at the first
// of them: a workload's history is counted from its first activity, which
// can only make it look shorter.
func activityOf(steps []time.Time, step time.Duration) shutdown.Activity {
	a := shutdown.Activity{Step: step}
	for i, t := range steps {
		a.Observe(t, true)
		if i+1 < len(steps) && steps[i+1].Sub(t) > step {
			a.Observe(t.Add(step), false)
		}
	}
	return a
}
