package scaler

import (
	"context"
	"errors"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// ErrVanished is the error of a workload whose series disappeared from a
// successful query while it was active. Traffic that stops shows first as a
// rate falling to 0 on series that still exist; series that vanish while the
// value is above activation mean the store lost them (scrape targets down,
// a relabelling change), so the value is unknown, not zero.
var ErrVanished = errors.New("series vanished while the workload was active: treated as missing data, not as no traffic")

type shapeResult struct {
	samples []queries.Sample
	err     error
}

// Refresh runs one tick: it forgets stale interests, queries every shape
// once at the clock's now, recovers new interests' idle clocks from history,
// decides every interest's activity, and swaps in the new snapshot.
func (c *Collector) Refresh(ctx context.Context) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	now := c.cfg.Clock.Now()
	start := time.Now() // wall time for the duration metric only
	groups, slots := c.plan(now)
	results := c.query(ctx, groups, now)
	c.recover(ctx, groups, now)
	c.recoverActivity(ctx, groups, now)

	prev := c.snap.load()
	obs := make([]Observation, slots)
	shapeErrs := make(map[queries.Shape]error, len(groups))
	failed := 0
	for shape, byWorkload := range groups {
		r := results[shape]
		shapeErrs[shape] = r.err
		c.cfg.Metrics.observeQuery(shape.Signal, len(r.samples), r.err)
		if r.err != nil {
			failed++
			c.cfg.Logger.Warn("query failed", "shape", shape.String(), "err", r.err)
		}
		// Hand each sample to the interests of its workload: one lookup in
		// the plan per sample, and no map of values per tick.
		c.gen++
		if r.err == nil {
			if shape.Signal == queries.SignalQuery {
				if len(r.samples) > 0 {
					for _, ins := range byWorkload {
						for _, in := range ins {
							in.sampled, in.sample = c.gen, r.samples[0].Value
						}
					}
				}
			} else {
				for _, s := range r.samples {
					for _, in := range byWorkload[s.Workload] {
						in.sampled, in.sample = c.gen, s.Value
					}
				}
			}
		}
		for _, in := range c.ordered[shape] {
			o := &obs[in.slot]
			known := c.observe(o, in, prev, r.err, in.sampled == c.gen, now)
			held := int(in.held.Load())
			if held > 0 {
				in.demandAt.Store(now.UnixNano())
			}
			in.tracker.Holding(held, time.Unix(0, in.heldSince.Load()))
			if at := in.demandAt.Load(); at != 0 {
				in.tracker.Saw(time.Unix(0, at))
			}
			d := in.tracker.Decide(c.learned(in, c.policy(in), o, now), now)
			// What the StateSink is told: idle puts the activator in front.
			in.decision = d
			if !known || o.Active || !knownReason(o.Reason) { // not answered idle last tick
				d = c.gate(in.workload, d)
			}
			if !known || d.Active != o.Active || d.Known() != knownReason(o.Reason) {
				c.flipped = append(c.flipped, in)
			}
			o.Active, o.Reason, o.Until, o.Why = d.Active, d.Reason, d.Until, ""
			switch {
			case d.Reason == shutdown.ReasonBadConfig:
				o.Why = d.Text()
			case !d.Known():
				o.Why = d.Detail.Why
			}
		}
	}
	c.publish(groups, obs)

	next := &Snapshot{At: now, at: now.UnixNano(), obs: obs, shapes: shapeErrs}
	c.cfg.Metrics.observeTick(time.Since(start), len(groups), next)
	c.snap.p.Store(next)
	for i, in := range c.flipped {
		in.notify()
		c.flipped[i] = nil
	}
	c.flipped = c.flipped[:0]
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if failed == 0 && len(groups) == 0 {
		failed = c.ping(ctx, now)
	}
	if failed == 0 && ctx.Err() == nil {
		c.once.Do(func() { close(c.ready) })
	}
}

// ping checks, while nothing is watched, that the store answers, so that
// readiness means the store was reached. It returns 1 on failure.
func (c *Collector) ping(ctx context.Context, now time.Time) int {
	p, ok := c.cfg.Source.(queries.Pinger)
	if !ok {
		return 0
	}
	select {
	case <-c.ready:
		return 0 // only readiness needs it
	default:
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	if err := p.Ping(pctx, now); err != nil {
		c.cfg.Logger.Warn("store not reachable", "err", err)
		return 1
	}
	return 0
}

// query runs one query per shape, at most Concurrency at a time.
func (c *Collector) query(ctx context.Context, groups map[queries.Shape]map[queries.WorkloadKey][]*Interest, now time.Time) map[queries.Shape]shapeResult {
	type result struct {
		shape queries.Shape
		shapeResult
	}
	ch := make(chan result, len(groups))
	sem := make(chan struct{}, c.cfg.Concurrency)
	for shape := range groups {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			qctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
			samples, err := c.cfg.Source.Instant(qctx, shape, now)
			cancel()
			ch <- result{shape, shapeResult{samples, err}}
		}()
	}
	out := make(map[queries.Shape]shapeResult, len(groups))
	for range groups {
		r := <-ch
		out[r.shape] = r.shapeResult
	}
	return out
}

// MaxVanished bounds how long series that vanished are taken for missing
// data: a pod replaced during a quiet spell gets Istio counters again only
// with its first request, so absence must become "no traffic" eventually.
const MaxVanished = time.Hour

// observe turns a shape's result into one interest's observation, in place
// of o, and feeds its idle clock; it reports whether prev had one. A failed
// query keeps the last value with its time; a workload without a sample
// observes 0 (no traffic), unless its series vanished while it was active
// (see ErrVanished), for at most MaxVanished.
func (c *Collector) observe(o *Observation, in *Interest, prev *Snapshot, err error, found bool, now time.Time) (known bool) {
	p := prev.get(in)
	if p != nil {
		*o = *p
	}
	known = p != nil
	o.owner = in
	if err == nil {
		v := 0.0
		if found {
			v = in.sample
		}
		vanishing := !o.VanishedAt.IsZero()
		if !found && o.Known() && (o.Present && o.Active || vanishing) &&
			(!vanishing || now.Sub(o.VanishedAt) < MaxVanished) {
			if !vanishing {
				o.VanishedAt = now
				c.cfg.Logger.Warn("series vanished while the workload was active: missing data, not no traffic",
					"workload", in.workload.String(), "shape", in.shape.String(), "last", o.Value)
				c.cfg.Metrics.observeVanished(in.shape.Signal)
			}
			err = ErrVanished
		} else {
			o.Value, o.At, o.OK, o.Err = v, now, true, nil
			o.Present, o.VanishedAt = found, time.Time{}
			// Requests waiting or running in a model server are activity
			// whatever the activation (see shutdown.State.InFlight).
			counts := in.shape.Signal.CountsRequests()
			if v > in.activation || counts && v > 0 {
				o.LastActive = now
			}
			in.tracker.CountsRequests = counts
			in.tracker.Observe(v, in.activation, true, now)
			return known
		}
	}
	o.OK, o.Err = false, err
	in.tracker.Observe(0, in.activation, false, now)
	return known
}

// policy resolves an interest's idle policy: the workload's annotations,
// then the trigger's idleAfter, then the server's default.
func (c *Collector) policy(in *Interest) shutdown.Policy {
	var o shutdown.Overrides
	if c.cfg.Overrides != nil {
		o, _ = c.cfg.Overrides.Overrides(in.workload)
	}
	return shutdown.Resolve(c.cfg.Policy, in.idleAfter, o)
}

// recoverKey groups interests whose idle clocks one history query recovers.
type recoverKey struct {
	shape      queries.Shape
	activation float64
}

// recover recovers the idle clocks of interests that have not been
// recovered yet, with one history query per shape and activation over the
// longest idle period among them. An interest whose recovery fails stays
// unknown (neither active nor idle) and is tried again next tick.
func (c *Collector) recover(ctx context.Context, groups map[queries.Shape]map[queries.WorkloadKey][]*Interest, now time.Time) {
	c.mu.Lock()
	unrecovered := c.unrecovered
	c.mu.Unlock()
	if unrecovered == 0 {
		return
	}
	done := 0
	defer func() {
		c.mu.Lock()
		c.unrecovered -= done
		c.mu.Unlock()
	}()
	pending := make(map[recoverKey][]*Interest)
	for shape, byWorkload := range groups {
		for _, ins := range byWorkload {
			for _, in := range ins {
				if !in.recovered {
					k := recoverKey{shape, in.activation}
					pending[k] = append(pending[k], in)
				}
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	hs, ok := c.cfg.Source.(queries.LastActiveSource)
	if !ok {
		c.noHistory.Do(func() {
			c.cfg.Logger.Info("the source keeps no history: idle clocks start at ebb's start")
		})
		for _, ins := range pending {
			for _, in := range ins {
				in.tracker.Recover(time.Time{})
				in.recovered = true
				done++
			}
		}
		return
	}
	for k, ins := range pending {
		lookback := time.Duration(0)
		for _, in := range ins {
			p := c.policy(in)
			lookback = max(lookback, p.IdleAfter, p.MinUptime)
		}
		lookback += k.shape.Window
		qctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
		activation := k.activation
		if k.shape.Signal.CountsRequests() {
			activation = 0 // any request in flight was activity (see observe)
		}
		found, err := hs.LastActive(qctx, k.shape, activation, lookback, c.cfg.RecoveryStep, now)
		cancel()
		c.cfg.Metrics.observeRecovery(k.shape.Signal, err)
		if err != nil {
			c.cfg.Logger.Warn("idle clock recovery failed; workloads stay active until it succeeds", "shape", k.shape.String(), "err", err)
			continue
		}
		// The store evaluated a grid of steps: the real last activity may
		// lie up to one step after the last active step. Counting from the
		// end of that step can delay an idle answer by a step, never bring
		// it forward.
		last := make(map[queries.WorkloadKey]time.Time, len(found))
		for _, f := range found {
			at := f.At.Add(c.cfg.RecoveryStep)
			if at.After(now) {
				at = now
			}
			last[f.Workload] = at
		}
		for _, in := range ins {
			wk := in.workload
			if k.shape.Signal == queries.SignalQuery {
				wk = queries.WorkloadKey{}
			}
			in.tracker.Recover(last[wk])
			in.recovered = true
			done++
		}
	}
}

// publishedState is what was last published for a workload.
type publishedState struct {
	active     bool
	reason     shutdown.Reason
	lastActive time.Time
}

// lastActiveEvery is how far a busy workload's last activity must move
// before it is published again: writing it every minute would patch every
// busy Deployment every minute.
const lastActiveEvery = 5 * time.Minute

// publish tells the StateSink about every workload whose state changed: its
// activity or its reason, or its last activity by lastActiveEvery.
func (c *Collector) publish(groups map[queries.Shape]map[queries.WorkloadKey][]*Interest, obs []Observation) {
	if c.cfg.States == nil {
		return
	}
	states := make(map[queries.WorkloadKey]WorkloadState)
	for _, byWorkload := range groups {
		for wk, ins := range byWorkload {
			for _, in := range ins {
				o := &obs[in.slot]
				s, seen := states[wk]
				// Active wins over idle; among equals the first reason stays.
				if !seen || (in.decision.Active && !s.Decision.Active) {
					s.Decision = in.decision
				}
				if o.LastActive.After(s.LastActive) {
					s.LastActive = o.LastActive
				}
				s.Workload = wk
				states[wk] = s
			}
		}
	}
	for wk, s := range states {
		p := publishedState{s.Decision.Active, s.Decision.Reason, s.LastActive.Truncate(time.Minute)}
		if old, ok := c.published[wk]; ok && old.active == p.active && old.reason == p.reason &&
			p.lastActive.Sub(old.lastActive) < lastActiveEvery {
			continue
		}
		c.published[wk] = p
		c.cfg.States.Publish(s)
	}
	for wk := range c.published {
		if _, ok := states[wk]; !ok {
			delete(c.published, wk)
		}
	}
}
