package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/sim"
)

// wake is what happens to the requests of one demo workload at zero: the
// ones that arrive before its first pod is ready are held by ebb's
// activator and delivered once it is, or, without the activator, fail.
// The model: a request arriving at zero is held at once and, as demand
// ebb sees itself, makes ebb answer the workload active in the same
// moment (the real scaler.Collector.Pending path, which an external-push
// trigger acts on at once); without the activator the demand shows only
// in the store, at the next tick. The first pod is ready --pod-start
// after the wake.
type wake struct {
	owed      float64   // requests arrived at zero, less than one whole
	firstAt   time.Time // the first request of the wake at zero; zero when none is waiting
	readyAt   time.Time // when the first pod is ready; zero when not waking
	waiting   float64   // requests held (or failing) since firstAt
	wakes     int
	held      float64 // delivered after being held
	failed    float64 // failed for want of a pod (no activator)
	delays    time.Duration
	maxDelay  time.Duration
	delivered int // wakes whose requests were delivered
}

// arrive accounts the requests of (prev, now] of a workload with replicas
// before this tick's poll, and tells the collector about held ones. It
// returns nothing; the poll that follows sees the demand.
func (r *demoRow) arrive(traffic sim.Traffic, c *scaler.Collector, cfg demoConfig, prev, now time.Time) {
	if traffic == nil {
		return
	}
	n := traffic.Requests(prev, now)
	w := &r.wake
	if !w.readyAt.IsZero() || w.firstAt.IsZero() && r.replicas > 0 {
		// Waking, or up: requests before readyAt wait; the rest are served.
		if !w.readyAt.IsZero() && prev.Before(w.readyAt) {
			w.waiting += n * share(prev, now, w.readyAt)
		}
		return
	}
	// At zero: the first whole request starts the wake.
	w.owed += n
	if w.owed < 1 {
		return
	}
	if w.firstAt.IsZero() {
		// Linear within the step: when the owed count reached one.
		frac := 1 - (w.owed-1)/n
		w.firstAt = prev.Add(time.Duration(frac * float64(now.Sub(prev))))
		w.waiting = w.owed
	}
	if cfg.activator {
		c.Pending(r.spec.Key, int(w.waiting))
	}
}

// share is the part of (prev, now] before t.
func share(prev, now, t time.Time) float64 {
	if !t.After(prev) {
		return 0
	}
	if !t.Before(now) {
		return 1
	}
	return float64(t.Sub(prev)) / float64(now.Sub(prev))
}

// woke is called after the poll: a workload that had requests waiting at
// zero and now has replicas starts its first pod; one whose pod is ready
// by now gets its held requests (or counts them failed).
func (r *demoRow) woke(c *scaler.Collector, cfg demoConfig, now time.Time) {
	w := &r.wake
	if w.readyAt.IsZero() && !w.firstAt.IsZero() && r.replicas > 0 {
		wakeAt := now // the store showed the demand at this tick
		if cfg.activator {
			wakeAt = w.firstAt // the held request woke it at once
		}
		w.readyAt = wakeAt.Add(cfg.podStart)
		w.wakes++
	}
	if w.readyAt.IsZero() || now.Before(w.readyAt) {
		return
	}
	delay := w.readyAt.Sub(w.firstAt)
	w.delays += delay
	w.maxDelay = max(w.maxDelay, delay)
	if cfg.activator {
		w.held += w.waiting
		c.Pending(r.spec.Key, 0)
	} else {
		w.failed += w.waiting
	}
	w.delivered++
	w.firstAt, w.readyAt, w.waiting, w.owed = time.Time{}, time.Time{}, 0, 0
}

// writeDemoWakes says, for every workload that woke from zero, what
// happened to the requests that arrived while it had no ready pod.
func writeDemoWakes(w io.Writer, rows []*demoRow, cfg demoConfig) {
	any := false
	for _, r := range rows {
		any = any || r.wake.wakes > 0
	}
	if !any {
		return
	}
	mode := "with the activator: requests that arrived at zero were held,\nand the first of them woke the workload at once"
	if !cfg.activator {
		mode = "without the activator (--activator=false): requests that\narrived at zero failed until a pod was ready"
	}
	fmt.Fprintf(w, "\nwakes from zero (a pod is ready %s after a wake, --pod-start)\n%s\n", cfg.podStart, mode)
	fmt.Fprintf(w, "%-24s %5s %8s %8s %11s %11s\n", "WORKLOAD", "WAKES", "HELD", "FAILED", "WAKE-DELAY", "WORST")
	for _, r := range rows {
		x := r.wake
		if x.wakes == 0 {
			continue
		}
		mean := time.Duration(0)
		if x.delivered > 0 {
			mean = (x.delays / time.Duration(x.delivered)).Round(time.Second)
		}
		fmt.Fprintf(w, "%-24s %5d %8.0f %8.0f %11s %11s\n", cut(r.spec.Key.String(), 24), x.wakes, x.held, x.failed, mean, x.maxDelay.Round(time.Second))
	}
}
