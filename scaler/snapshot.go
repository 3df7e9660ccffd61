// Package scaler keeps the current value of every watched signal in an
// immutable snapshot that a collector refreshes with batched queries, so that
// answering KEDA never waits on I/O.
package scaler

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// Interest is one workload's signal that somebody (a KEDA trigger) watches.
// The collector evaluates it every tick while it is touched; an Interest that
// nobody touched for the collector's forget period is dropped and reports Dead.
type Interest struct {
	// What KEDA's calls read and write comes first, in one cache line.
	slot      int
	touched   atomic.Int64 // unix nanoseconds of the last Touch
	dead      atomic.Bool
	watchers  atomic.Int32                  // open watches: see Watch
	changes   atomic.Pointer[chan struct{}] // see Changes
	held      atomic.Int32                  // requests held for the workload: see Collector.Pending
	demandAt  atomic.Int64                  // unix nanoseconds of the last held request; 0 if none
	heldSince atomic.Int64                  // unix nanoseconds: when the held requests began; 0 if none

	// What the interest is: its registry key, fixed at Register (see the
	// accessors below).
	shape      queries.Shape
	workload   queries.WorkloadKey
	activation float64
	idleAfter  time.Duration // zero for the default

	// tracker is the idle clock and recovered whether it was recovered from
	// history; both are used only by the collector's refresh.
	tracker   shutdown.Tracker
	recovered bool
	// learn is the learned model of an auto policy (learn.go); used only
	// by the collector's refresh.
	learn learnState
	// decision is the idle policy's last decision with its detail, for the
	// state sink; used only by the collector's refresh.
	decision shutdown.Decision
	// sample is the value of this tick's answer for the workload, valid when
	// sampled equals the collector's generation; used only by refresh.
	sample  float64
	sampled uint64
}

// Shape returns the signal shape the interest watches.
func (in *Interest) Shape() queries.Shape { return in.shape }

// Workload returns the workload the interest watches.
func (in *Interest) Workload() queries.WorkloadKey { return in.workload }

// Activation returns the value above which the workload is active.
func (in *Interest) Activation() float64 { return in.activation }

// IdleAfter returns the trigger's own idle period; zero for the default.
func (in *Interest) IdleAfter() time.Duration { return in.idleAfter }

// Touch records that the interest was asked about at now.
func (in *Interest) Touch(now time.Time) { in.touched.Store(now.UnixNano()) }

// Held returns the number of requests the activator holds for the
// interest's workload right now.
func (in *Interest) Held() int { return int(in.held.Load()) }

// Dead reports whether the collector forgot the interest; register again to
// resume.
func (in *Interest) Dead() bool { return in.dead.Load() }

// Watch marks the interest as watched until the returned function is called:
// the collector does not forget a watched interest, however long since it
// was touched (an open StreamIsActive is KEDA asking all the time).
func (in *Interest) Watch() (unwatch func()) {
	in.watchers.Add(1)
	return func() { in.watchers.Add(-1) }
}

// Changes returns a channel that is closed when a new snapshot changes the
// interest's answer (Active), gives it its first answer, or when the
// collector forgets the interest. Take it before reading the snapshot to
// never miss a change. Unlike the collector's Changed, a tick that changes
// nothing for the interest does not wake its waiters.
func (in *Interest) Changes() <-chan struct{} {
	for {
		if p := in.changes.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if in.changes.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// notify wakes the waiters of Changes, if any.
func (in *Interest) notify() {
	if p := in.changes.Swap(nil); p != nil {
		close(*p)
	}
}

// Observation is what the collector knows about one interest. It holds the
// idle policy's answer, not the text behind it: the state sink gets that
// (WorkloadState), and a snapshot stays small enough to rebuild every tick.
type Observation struct {
	owner *Interest
	// Value is the last value a successful query returned; 0 when the store
	// answered and had no series for the workload (no traffic).
	Value float64
	// At is when Value was observed: the evaluation time of the last
	// successful query. Zero if no query has succeeded yet.
	At time.Time
	// Err is the last query's error when OK is false.
	Err error
	// OK reports whether the last query for this signal shape succeeded.
	OK bool
	// Present reports whether the last successful query had a sample for
	// the workload.
	Present bool
	// Active and Reason are the idle policy's answer at the snapshot's
	// tick: whether KEDA should keep the workload running, and why.
	Active bool
	Reason shutdown.Reason

	// The fields above, which KEDA's calls read, fit in 64 bytes.

	// Why says why the idle policy gave no answer, when its decision was
	// not Known: no trustworthy state, or a broken configuration.
	Why string

	// LastActive is the last evaluation time at which Value was above the
	// interest's activation (or, after a restart, recovered from the
	// store's history); zero if never seen.
	LastActive time.Time
	// VanishedAt is when the workload's series vanished while it was active
	// (zero if they did not).
	VanishedAt time.Time
	// Until is when the idle policy's answer next changes if nothing but
	// time passes; zero when time alone will not change it.
	Until time.Time
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
	at  int64 // At in unix nanoseconds
	obs []Observation
	// shapes records, per shape, whether its last query succeeded.
	shapes map[queries.Shape]error
}

var emptySnapshot = &Snapshot{shapes: map[queries.Shape]error{}, at: math.MaxInt64} // no demand is newer than it

// Lookup returns the observation for in, and false when the snapshot has
// none yet (the interest is newer than the last tick).
func (s *Snapshot) Lookup(in *Interest) (Observation, bool) {
	if o := s.get(in); o != nil {
		return *o, true
	}
	return Observation{}, false
}

// get returns in's observation in s, nil when it has none.
func (s *Snapshot) get(in *Interest) *Observation {
	if in.slot < len(s.obs) {
		if o := &s.obs[in.slot]; o.owner == in {
			return o
		}
	}
	return nil
}

// Value is GetMetrics' lookup: in's value at now, as the package function
// Value gives it, without copying the whole observation. A snapshot without
// in has ErrNoValue.
func (s *Snapshot) Value(in *Interest, now time.Time, maxStaleness time.Duration) (float64, error) {
	o := s.get(in)
	switch {
	case o == nil:
		return 0, ErrNoValue
	case !o.At.IsZero() && now.Sub(o.At) <= maxStaleness:
		return o.Value, nil // the common case, without building an error
	}
	return value(o, now, maxStaleness)
}

// knownReason reports whether a decision with reason r is an answer.
func knownReason(r shutdown.Reason) bool { return shutdown.Decision{Reason: r}.Known() }

// Activity is what a snapshot can answer to "should this workload run?".
type Activity uint8

// Activities. Only Active and Idle are answers; the other two are reasons
// to answer neither.
const (
	// Unseen: the interest is newer than the snapshot's tick.
	Unseen Activity = iota
	// Unknown: the idle policy had no trustworthy state to decide on (no
	// data yet, the idle clock not recovered, data older than the max
	// staleness, annotations not read yet) or the workload's configuration
	// is broken; Observation.Why says which.
	Unknown
	Idle
	Active
)

var activityNames = [...]string{Unseen: "unseen", Unknown: "unknown", Idle: "idle", Active: "active"}

func (a Activity) String() string { return activityNames[a] }

// Activity returns the idle policy's answer for in at the snapshot's tick,
// or Active while requests are held for its workload or were held since
// that tick (demand ebb saw itself, which the tick did not know yet). It
// reads only the answer: the hot path of IsActive and StreamIsActive.
func (s *Snapshot) Activity(in *Interest) Activity {
	if in.held.Load() > 0 || in.demandAt.Load() > s.at {
		return Active
	}
	o := s.get(in)
	switch {
	case o == nil:
		return Unseen
	case !knownReason(o.Reason):
		return Unknown
	case o.Active:
		return Active
	}
	return Idle
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

// size returns the number of interests in the snapshot.
func (s *Snapshot) size() int {
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
