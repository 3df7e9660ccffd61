package shutdown

import "time"

// Span is one stretch of activity: the workload was active at every
// observation from Start to End.
type Span struct {
	Start, End time.Time
}

// Activity is a workload's activity history: when observation began and
// the spans in which it was active, in time order. It is what Learn reads.
// The zero Activity is empty; Observe builds one observation at a time
// (the collector's tick), Since and Spans may also be filled directly from
// the store's history.
type Activity struct {
	// Since is the first observation; zero if none.
	Since time.Time
	// Spans are the active spans, in time order, not overlapping.
	Spans []Span
	// Step is the spacing of the observations: an active observation
	// within 2 steps of the last active one extends its span. Zero: one
	// minute.
	Step time.Duration

	last       time.Time // the last observation
	lastActive bool
}

func (a *Activity) step() time.Duration {
	if a.Step <= 0 {
		return time.Minute
	}
	return a.Step
}

// Observe records an observation at t: active or not. Observations at or
// before the last one are ignored.
func (a *Activity) Observe(t time.Time, active bool) {
	if !a.last.IsZero() && !t.After(a.last) {
		return
	}
	if a.Since.IsZero() {
		a.Since = t
	}
	if active {
		n := len(a.Spans)
		if n > 0 && a.lastActive && t.Sub(a.Spans[n-1].End) <= 2*a.step() {
			a.Spans[n-1].End = t
		} else {
			a.Spans = append(a.Spans, Span{Start: t, End: t})
		}
	}
	a.last, a.lastActive = t, active
}

// Forget drops the spans that ended before t and moves Since up to t, so
// that memory stays bounded by the learning window.
func (a *Activity) Forget(t time.Time) {
	i := 0
	for i < len(a.Spans) && a.Spans[i].End.Before(t) {
		i++
	}
	if i > 0 {
		a.Spans = append(a.Spans[:0], a.Spans[i:]...)
	}
	if a.Since.Before(t) && !a.Since.IsZero() {
		a.Since = t
	}
}

// LastActive returns the end of the last span; zero if none.
func (a *Activity) LastActive() time.Time {
	if len(a.Spans) == 0 {
		return time.Time{}
	}
	return a.Spans[len(a.Spans)-1].End
}

// gap is an idle gap: the time from the end of one span to the start of
// the next.
type gap struct {
	end   time.Time     // the end of the span before it
	len   time.Duration // to the start of the next span
	start time.Time     // the start of the next span
}

// gaps returns the idle gaps between the spans that end at or after from
// and start at or before now.
func (a *Activity) gaps(from, now time.Time) []gap {
	var out []gap
	for i := 1; i < len(a.Spans); i++ {
		prev, next := a.Spans[i-1], a.Spans[i]
		if prev.End.Before(from) || next.Start.After(now) {
			continue
		}
		out = append(out, gap{end: prev.End, len: next.Start.Sub(prev.End), start: next.Start})
	}
	return out
}
