package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
	"github.com/ebbscale/ebb/sim"
)

// The demo's notebook with a regular rhythm, on idleAfter: auto: 10 minutes
// of work every 2 hours, from half an hour after the demo's start (and so
// every 2 hours in the simulated past, which ebb learns from on start).
var rhythmKey = queries.WorkloadKey{Namespace: "notebooks", Name: "carol-notebook"}

// addDemoRhythm adds the notebook to the demo's cluster and returns its
// scaling config.
func addDemoRhythm(c *sim.Cluster, start time.Time) (sim.DemoSpec, error) {
	spec := sim.DemoSpec{Key: rhythmKey, About: "GPU notebook, 10 minutes of work every 2 hours, idleAfter: auto",
		Signal: queries.SignalRequests, Target: 1, Window: time.Minute, MinReplicas: 0, MaxReplicas: 1, GPUsPerReplica: 1,
		IdleAfter: shutdown.AutoIdleAfter}
	err := c.Add(sim.Workload{Key: rhythmKey, Replicas: 0, GPUsPerReplica: 1, GPUTimePerRequest: time.Second,
		Traffic: sim.Anchor(sim.Idle(10*time.Minute, 110*time.Minute, 0.5), start.Add(30*time.Minute))})
	return spec, err
}

// demoIdleAfter is a spec's idleAfter metadata: "auto", a duration, or ""
// (the server's).
func demoIdleAfter(spec sim.DemoSpec) string {
	switch {
	case spec.IdleAfter == shutdown.AutoIdleAfter:
		return "auto"
	case spec.IdleAfter > 0:
		return spec.IdleAfter.String()
	}
	return ""
}

// preWake is what pre-wakes did to one demo row: a wake with no demand is
// a pre-wake, not a cold start; demand that finds it up is a cold start it
// hid; a return to zero without demand wasted it.
type preWake struct {
	woke, hidden, wasted int
	pending              bool
}

// scaledUp records a scale from zero: a cold start when demand caused it,
// else a pre-wake.
func (r *demoRow) scaledUp() {
	if r.value > r.spec.Activation {
		r.coldStarts++
		return
	}
	r.pre.woke++
	r.pre.pending = true
}

// followed settles a pending pre-wake once demand arrives or the workload
// is back at zero.
func (r *demoRow) followed() {
	switch {
	case !r.pre.pending:
	case r.replicas > 0 && r.value > r.spec.Activation:
		r.pre.hidden++
		r.pre.pending = false
	case r.replicas == 0:
		r.pre.wasted++
		r.pre.pending = false
	}
}

// writeDemoPreWakes says how many cold starts pre-wake hid.
func writeDemoPreWakes(w io.Writer, rows []*demoRow) {
	header := false
	for _, r := range rows {
		if r.pre.woke == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "pre-wake (idleAfter auto): woken ahead of the workload's rhythm")
			header = true
		}
		fmt.Fprintf(w, "  %s: %d pre-wakes, %d cold starts hidden, %d wasted\n", r.spec.Key, r.pre.woke, r.pre.hidden, r.pre.wasted)
	}
}
