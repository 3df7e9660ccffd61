package scaler

import (
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// OverrideSource gives a workload's autoshutdown overrides, read from its
// annotations (ebb.dev/idle-after, ebb.dev/autoshutdown, ebb.dev/keep-awake).
// It is called by the collector on every tick for every workload, so it must
// answer from memory. ok is false when the workload is unknown to it.
type OverrideSource interface {
	Overrides(workload queries.WorkloadKey) (o shutdown.Overrides, ok bool)
}

// StateSink receives a workload's autoshutdown state whenever it changes, to
// write it back as the workload's ebb.dev/state and ebb.dev/last-active
// annotations. Publish is called from the collector's tick and must not
// block.
type StateSink interface {
	Publish(WorkloadState)
}

// WorkloadState is one workload's autoshutdown state after a tick. A
// workload with several triggers is active while any of them is.
type WorkloadState struct {
	Workload queries.WorkloadKey
	Decision shutdown.Decision
	// LastActive is the last time any of its triggers was above activation;
	// zero if never seen.
	LastActive time.Time
}
