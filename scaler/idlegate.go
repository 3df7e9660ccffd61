package scaler

import (
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// IdleGate holds back idle answers. A workload whose requests the activator
// holds while it is at zero may be answered idle only once the activator is
// in front of its Services: before that, KEDA could remove its last pod
// while its Services still send requests only to that pod, and a request in
// between would find no endpoint. kube.Switcher is one.
type IdleGate interface {
	// IdleReady reports whether workload w may be answered idle.
	IdleReady(w queries.WorkloadKey) bool
}

// gate returns d, or when d is idle and the IdleGate holds w back, d
// answered active with reason shutdown.ReasonSwitching. The StateSink is
// told d as it is: its idle is what puts the activator in front. Refresh
// asks only where the last answer was not idle already: the gate guards
// the step to idle, and a workload once answered idle stays so without
// asking each tick (its slices are then kept by the Switcher).
func (c *Collector) gate(w queries.WorkloadKey, d shutdown.Decision) shutdown.Decision {
	if d.Active || !d.Known() || c.cfg.IdleGate == nil || c.cfg.IdleGate.IdleReady(w) {
		return d
	}
	return shutdown.Switching(d)
}

// Kick asks for a refresh soon, paced as the ones new interests ask for
// (Config.KickGap): the IdleGate's owner calls it when a workload it held
// back may go.
func (c *Collector) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
