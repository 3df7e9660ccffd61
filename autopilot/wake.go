package autopilot

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// Wake times measured from the history: how long a workload took from zero
// replicas to serving, which autoshutdown's advice prices its cold starts
// at in place of --cold-start's default.

// WakeWindow and WakeStep are the part of the history and the resolution
// the wakes in kube-state-metrics' replicas are read at: one range query
// for every workload, the last two days at 30s (5,760 steps), whose answer
// holds a point only at each end of a wake.
const (
	WakeWindow = 48 * time.Hour
	WakeStep   = 30 * time.Second
)

// wakeHistory is what the history says of one workload's wakes.
type wakeHistory struct {
	// ebb's activator histogram over the whole history: the seconds and the
	// count of its observations.
	activatorSum, activatorCount float64
	activatorSeen                bool
	// kube-state-metrics: the steps where the desired replicas rose from 0
	// and where the ready replicas rose from 0, and the step they were read
	// at.
	starts, readies []time.Time
	step            time.Duration
}

// ActivatorWake records a workload's wake time from ebb's activator over
// the whole history: seconds is the sum of its observations, n their
// count (the histogram's _sum and _count growth).
func (h *History) ActivatorWake(k queries.WorkloadKey, seconds, n float64) {
	if !valid(seconds) || !valid(n) {
		return
	}
	w := h.workload(k)
	w.wake.activatorSum, w.wake.activatorCount, w.wake.activatorSeen = seconds, n, true
}

// WakeStart records that a workload's desired replicas rose from 0 to 1 or
// more in the step to t, read at steps of step.
func (h *History) WakeStart(k queries.WorkloadKey, t time.Time, step time.Duration) {
	w := h.workload(k)
	w.wake.starts = append(w.wake.starts, t)
	w.wake.step = step
}

// WakeReady records that a workload's ready replicas rose from 0 to 1 or
// more in the step to t, read at steps of step.
func (h *History) WakeReady(k queries.WorkloadKey, t time.Time, step time.Duration) {
	w := h.workload(k)
	w.wake.readies = append(w.wake.readies, t)
	w.wake.step = step
}

// measured is a workload's wake time as the history shows it: the mean
// of ebb's activator where it saw at least one wake, else the median of the
// wakes in kube-state-metrics' replicas (from the step the desired replicas
// rose from 0 to the step the ready ones did), else ok is false. from says
// which, and how many wakes.
func (w *wakeHistory) measured() (d time.Duration, from string, n int, ok bool) {
	if w.activatorSeen {
		if n := int(math.Round(w.activatorCount)); n >= 1 && w.activatorSum >= 0 {
			d := time.Duration(w.activatorSum / w.activatorCount * float64(time.Second)).Round(time.Second)
			return d, "measured by ebb's activator: mean of " + plural(n, "wake"), n, true
		}
	}
	wakes := w.kubeWakes()
	if len(wakes) == 0 {
		return 0, "", 0, false
	}
	slices.Sort(wakes)
	m := len(wakes) / 2
	d = wakes[m]
	if len(wakes)%2 == 0 {
		d = (wakes[m-1] + wakes[m]) / 2
	}
	return d, fmt.Sprintf("measured in kube-state-metrics' replicas: median of %s, to the %s step",
		plural(len(wakes), "wake"), shutdown.FormatDuration(w.step)), len(wakes), true
}

// kubeWakes pairs each rise of the desired replicas from 0 with the first
// rise of the ready replicas at or after it and before the next: a wake
// given up before a replica was ready is none.
func (w *wakeHistory) kubeWakes() []time.Duration {
	starts, readies := slices.Clone(w.starts), slices.Clone(w.readies)
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(readies, func(a, b time.Time) int { return a.Compare(b) })
	var out []time.Duration
	j := 0
	for i, s := range starts {
		for j < len(readies) && readies[j].Before(s) {
			j++
		}
		if j == len(readies) {
			break
		}
		if i+1 < len(starts) && !readies[j].Before(starts[i+1]) {
			continue
		}
		out = append(out, readies[j].Sub(s))
		j++
	}
	return out
}
