// Package scaler keeps the current value of every watched signal in an
// immutable snapshot that a collector refreshes with batched queries, so that
// answering KEDA never waits on I/O.
package scaler

import (
	"sync/atomic"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// Interest is one workload's signal that somebody (a KEDA trigger) watches.
// The collector evaluates it every tick while it is touched; an Interest that
// nobody touched for the collector's forget period is dropped and reports Dead.
type Interest struct {
	Shape      queries.Shape
	Workload   queries.WorkloadKey
	Activation float64
	// IdleAfter is the trigger's own idle period; zero for the default.
	IdleAfter time.Duration

	// tracker is the idle clock and recovered whether it was recovered from
	// history; both are used only by the collector's refresh.
	tracker   shutdown.Tracker
	recovered bool

	slot    int
	touched atomic.Int64 // unix nanoseconds of the last Touch
	dead    atomic.Bool
}

// Touch records that the interest was asked about at now.
func (in *Interest) Touch(now time.Time) { in.touched.Store(now.UnixNano()) }

// Dead reports whether the collector forgot the interest; register again to
// resume.
func (in *Interest) Dead() bool { return in.dead.Load() }

// Observation is what the collector knows about one interest.
type Observation struct {
	// Value is the last value a successful query returned; 0 when the store
	// answered and had no series for the workload (no traffic).
	Value float64
	// At is when Value was observed: the evaluation time of the last
	// successful query. Zero if no query has succeeded yet.
	At time.Time
	// OK reports whether the last query for this signal shape succeeded.
	OK bool
	// Err is the last query's error when OK is false.
	Err error
	// LastActive is the last evaluation time at which Value was above the
	// interest's activation (or, after a restart, recovered from the
	// store's history); zero if never seen.
	LastActive time.Time
	// Present reports whether the last successful query had a sample for
	// the workload; VanishedAt is when its series vanished while it was
	// active (zero if they did not).
	Present    bool
	VanishedAt time.Time
	// Decision is the idle policy's answer at the snapshot's tick: whether
	// KEDA should keep the workload running, and why.
	Decision shutdown.Decision

	owner *Interest
}

// Known reports whether the observation holds a value at all.
func (o Observation) Known() bool { return !o.At.IsZero() }

// Age returns how old the value is at now; a value never observed is
// infinitely old.
func (o Observation) Age(now time.Time) time.Duration {
	if o.At.IsZero() {
		return 1<<63 - 1
	}
	return now.Sub(o.At)
}

// Snapshot is an immutable view of every interest's observation at one tick.
// It is safe for concurrent use; lookups take no lock and never allocate.
type Snapshot struct {
	// At is the evaluation time of the tick that built the snapshot.
	At  time.Time
	obs []Observation
	// shapes records, per shape, whether its last query succeeded.
	shapes map[queries.Shape]error
}

var emptySnapshot = &Snapshot{shapes: map[queries.Shape]error{}}

// Lookup returns the observation for in, and false when the snapshot has
// none yet (the interest is newer than the last tick).
func (s *Snapshot) Lookup(in *Interest) (Observation, bool) {
	if in.slot < len(s.obs) {
		if o := s.obs[in.slot]; o.owner == in {
			return o, true
		}
	}
	return Observation{}, false
}

// ShapeErr returns the error of the last query for shape, nil when it
// succeeded, and false when the shape was not queried in this snapshot.
func (s *Snapshot) ShapeErr(shape queries.Shape) (error, bool) {
	err, ok := s.shapes[shape]
	return err, ok
}

// Observations returns every interest's observation, in no set order; for
// diagnostics, not the hot path.
func (s *Snapshot) Observations() []Observation {
	var out []Observation
	for i := range s.obs {
		if s.obs[i].owner != nil {
			out = append(out, s.obs[i])
		}
	}
	return out
}

// Len returns the number of interests in the snapshot.
func (s *Snapshot) Len() int {
	n := 0
	for i := range s.obs {
		if s.obs[i].owner != nil {
			n++
		}
	}
	return n
}

// snapshotPointer is an atomically swapped *Snapshot.
type snapshotPointer struct{ p atomic.Pointer[Snapshot] }

func (sp *snapshotPointer) load() *Snapshot {
	if s := sp.p.Load(); s != nil {
		return s
	}
	return emptySnapshot
}
