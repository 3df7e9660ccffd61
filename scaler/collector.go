package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// The collector's defaults, each declared once: cmd/ebb's flags and
// externalscaler (through the Collector's accessors) take them from here.
const (
	DefaultInterval     = 5 * time.Second
	DefaultQueryTimeout = 10 * time.Second
	DefaultForgetAfter  = time.Hour
	DefaultMaxStaleness = time.Minute
	DefaultConcurrency  = 4
	DefaultKickGap      = time.Second
)

// Config configures a Collector. Zero fields take the Default values above.
type Config struct {
	// Source answers the batched queries. Required.
	Source queries.Source
	// Interval between ticks.
	Interval time.Duration
	// QueryTimeout bounds each query.
	QueryTimeout time.Duration
	// ForgetAfter drops interests nobody touched for this long; the
	// gRPC server forgets its cached triggers after as long (see
	// Collector.ForgetAfter).
	ForgetAfter time.Duration
	// Concurrency is how many shape queries run at once.
	Concurrency int
	// KickGap is the shortest time, on Clock, between two refreshes that
	// new interests ask for; at most Interval. Negative: no pacing, every
	// new interest refreshes at once (tests on a mock clock that stands
	// still while they register).
	KickGap time.Duration
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Metrics, when set, receives the collector's measurements.
	Metrics *Metrics

	// MaxStaleness is how long the last good value is trusted while queries
	// fail; after that a workload's state is unknown: neither active nor
	// idle, and GetMetrics answers Unavailable (see Collector.MaxStaleness).
	MaxStaleness time.Duration
	// Policy is the server's default idle policy (--idle-after,
	// --min-uptime); the zero Policy means shutdown's defaults.
	Policy shutdown.Policy
	// Overrides, when set, gives workloads' annotation overrides.
	Overrides OverrideSource
	// States, when set, is told each workload's state when it changes.
	States StateSink
	// IdleGate, when set, is asked before a workload is answered idle
	// (see IdleGate).
	IdleGate IdleGate
	// RecoveryStep is the resolution of idle-clock recovery from history;
	// default the Interval, at least 15s.
	RecoveryStep time.Duration
}

func (c *Config) setDefaults() error {
	if c.Source == nil {
		return errors.New("collector: no source")
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < 100*time.Millisecond {
		return fmt.Errorf("collector: interval = %s, must be at least 100ms", c.Interval)
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.QueryTimeout < 0 {
		return fmt.Errorf("collector: query timeout = %s, must be positive", c.QueryTimeout)
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = DefaultForgetAfter
	}
	if c.ForgetAfter < c.Interval {
		return fmt.Errorf("collector: forget-after = %s, must be at least the interval %s", c.ForgetAfter, c.Interval)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("collector: concurrency = %d, must be positive", c.Concurrency)
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.KickGap == 0 {
		c.KickGap = DefaultKickGap
	}
	c.KickGap = min(c.KickGap, c.Interval)
	if c.MaxStaleness == 0 {
		c.MaxStaleness = DefaultMaxStaleness
	}
	if c.MaxStaleness < 0 {
		return fmt.Errorf("collector: max staleness = %s, must be positive", c.MaxStaleness)
	}
	if c.Policy.IdleAfter == 0 && c.Policy.MinUptime == 0 {
		c.Policy.IdleAfter, c.Policy.MinUptime = shutdown.DefaultIdleAfter, shutdown.DefaultMinUptime
	}
	if c.Policy.IdleAfter < 0 || c.Policy.MinUptime < 0 {
		return fmt.Errorf("collector: idle-after = %s and min-uptime = %s, must be positive", c.Policy.IdleAfter, c.Policy.MinUptime)
	}
	if c.RecoveryStep == 0 {
		c.RecoveryStep = max(c.Interval, 15*time.Second)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// interestKey identifies an Interest in the registry.
type interestKey struct {
	shape      queries.Shape
	workload   queries.WorkloadKey
	activation float64
	idleAfter  time.Duration
}

// Collector refreshes a Snapshot of every registered interest once per
// interval, with one query per distinct shape, and swaps it in atomically.
type Collector struct {
	cfg Config

	refreshMu sync.Mutex // one Refresh at a time
	gen       uint64     // counts shapes distributed; used only under refreshMu

	mu        sync.Mutex
	interests map[interestKey]*Interest
	// byWorkload indexes interests by workload, for demand; held is the
	// number of requests the activator holds per workload (see Pending).
	byWorkload map[queries.WorkloadKey][]*Interest
	held       map[queries.WorkloadKey]int
	heldSince  map[queries.WorkloadKey]int64 // unix nanoseconds: when held last went above 0
	freeSlots  []int
	nextSlot   int
	// unrecovered counts interests whose idle clock is not recovered yet,
	// so that a tick without any skips the walk over every interest.
	unrecovered int

	// plan cache: rebuilt only when the registry changed. ordered holds
	// each shape's interests in slot order; used only under refreshMu.
	dirty   bool
	groups  map[queries.Shape]map[queries.WorkloadKey][]*Interest
	ordered map[queries.Shape][]*Interest

	// published is the last state sent to States, per workload; used only
	// under refreshMu.
	published map[queries.WorkloadKey]publishedState
	// flipped collects the interests whose answer a tick changed; used
	// only under refreshMu.
	flipped   []*Interest
	noHistory sync.Once

	snap    snapshotPointer
	changed chan struct{} // closed when a new snapshot is swapped in; guarded by mu
	kick    chan struct{}
	ready   chan struct{}
	once    sync.Once
}

// NewCollector returns a Collector; call Run to start ticking.
func NewCollector(cfg Config) (*Collector, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Collector{
		cfg:        cfg,
		interests:  make(map[interestKey]*Interest),
		byWorkload: make(map[queries.WorkloadKey][]*Interest),
		held:       make(map[queries.WorkloadKey]int),
		heldSince:  make(map[queries.WorkloadKey]int64),
		published:  make(map[queries.WorkloadKey]publishedState),
		changed:    make(chan struct{}),
		kick:       make(chan struct{}, 1),
		ready:      make(chan struct{}),
	}, nil
}

// Register returns the interest for a workload's shape, creating it if it is
// new; a new interest makes the collector refresh soon rather than at the
// next tick. idleAfter is the trigger's own idle period (zero: the server's
// default or the workload's annotation). The caller Touches the interest
// whenever it is asked about.
func (c *Collector) Register(shape queries.Shape, workload queries.WorkloadKey, activation float64, idleAfter time.Duration) *Interest {
	key := interestKey{shape, workload, activation, idleAfter}
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	in, ok := c.interests[key]
	if !ok {
		in = &Interest{shape: shape, workload: workload, activation: activation, idleAfter: idleAfter, slot: c.allocSlot()}
		in.tracker.MaxStaleness = c.cfg.MaxStaleness
		if n := c.held[workload]; n > 0 {
			in.held.Store(int32(n))
			in.heldSince.Store(c.heldSince[workload])
			in.demandAt.Store(now.UnixNano())
		}
		c.interests[key] = in
		c.byWorkload[workload] = append(c.byWorkload[workload], in)
		c.unrecovered++
		c.dirty = true
	}
	c.mu.Unlock()
	in.Touch(now)
	if !ok {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return in
}

// unindex removes in from byWorkload; c.mu is held.
func (c *Collector) unindex(in *Interest) {
	ins := c.byWorkload[in.workload]
	for i, x := range ins {
		if x == in {
			ins[i] = ins[len(ins)-1]
			ins[len(ins)-1] = nil
			ins = ins[:len(ins)-1]
			break
		}
	}
	if len(ins) == 0 {
		delete(c.byWorkload, in.workload)
	} else {
		c.byWorkload[in.workload] = ins
	}
}

// Pending tells the collector how many requests the activator holds for a
// workload, each time that number changes. A held request is demand that
// ebb sees itself, so it is known: while any is held, every interest of
// the workload is Active at once, without waiting for the store or a tick,
// and its streams are woken. The demand also counts as activity for the
// idle clock, so the workload stays up for its idle period after the
// requests are delivered, and for min-uptime after the wake.
func (c *Collector) Pending(w queries.WorkloadKey, n int) {
	n = max(n, 0)
	now := c.cfg.Clock.Now().UnixNano()
	c.mu.Lock()
	was := c.held[w]
	switch {
	case n > 0 && was == 0:
		c.held[w], c.heldSince[w] = n, now
	case n > 0:
		c.held[w] = n
	default:
		delete(c.held, w)
		delete(c.heldSince, w)
	}
	ins := c.byWorkload[w]
	for _, in := range ins {
		in.held.Store(int32(n))
		in.heldSince.Store(c.heldSince[w])
		if n > 0 || was > 0 {
			in.demandAt.Store(now)
		}
	}
	if (was > 0) != (n > 0) {
		for _, in := range ins {
			in.notify()
		}
	}
	c.mu.Unlock()
}

func (c *Collector) allocSlot() int {
	if n := len(c.freeSlots); n > 0 {
		s := c.freeSlots[n-1]
		c.freeSlots = c.freeSlots[:n-1]
		return s
	}
	c.nextSlot++
	return c.nextSlot - 1
}

// Snapshot returns the current snapshot; it never blocks.
func (c *Collector) Snapshot() *Snapshot { return c.snap.load() }

// Changed returns a channel that is closed when the next snapshot is swapped
// in. Take it before reading Snapshot to never miss a change.
func (c *Collector) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// MaxStaleness is how long a value is trusted while queries fail: the
// collector's idle decisions and the gRPC server's GetMetrics both stop
// there.
func (c *Collector) MaxStaleness() time.Duration { return c.cfg.MaxStaleness }

// ForgetAfter is how long an interest nobody asks about is kept; the gRPC
// server keeps its cached triggers as long.
func (c *Collector) ForgetAfter() time.Duration { return c.cfg.ForgetAfter }

// Ready is closed after the first tick in which no query failed.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// Run ticks until ctx is done. The first refresh runs at once.
func (c *Collector) Run(ctx context.Context) error {
	clk := c.cfg.Clock
	ticker := clk.Ticker(c.cfg.Interval)
	defer ticker.Stop()
	var lastKick time.Time
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		case <-c.kick:
			// New interests want a refresh soon, but refreshes they ask for
			// come at most once per KickGap: a burst of registrations (KEDA
			// starting with thousands of ScaledObjects) then costs one query
			// per shape per KickGap, not one per refresh it can squeeze in.
			if wait := c.cfg.KickGap - clk.Since(lastKick); wait > 0 {
				t := clk.Timer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-ticker.C:
				case <-t.C:
				}
				t.Stop()
			}
			lastKick = clk.Now()
		}
	}
}

// plan drops interests not touched within ForgetAfter and groups the rest
// by shape and workload. It returns the number of slots a snapshot needs.
func (c *Collector) plan(now time.Time) (map[queries.Shape]map[queries.WorkloadKey][]*Interest, int) {
	cutoff := now.Add(-c.cfg.ForgetAfter).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, in := range c.interests {
		if in.touched.Load() < cutoff && in.watchers.Load() == 0 {
			in.dead.Store(true)
			in.notify()
			delete(c.interests, key)
			c.unindex(in)
			c.freeSlots = append(c.freeSlots, in.slot)
			if !in.recovered {
				c.unrecovered--
			}
			c.dirty = true
			c.cfg.Logger.Info("forgot workload", "workload", in.workload.String(), "shape", in.shape.String())
		}
	}
	if !c.dirty && c.groups != nil {
		return c.groups, c.nextSlot
	}
	groups := make(map[queries.Shape]map[queries.WorkloadKey][]*Interest)
	for _, in := range c.interests {
		byWorkload := groups[in.shape]
		if byWorkload == nil {
			byWorkload = make(map[queries.WorkloadKey][]*Interest)
			groups[in.shape] = byWorkload
		}
		byWorkload[in.workload] = append(byWorkload[in.workload], in)
	}
	// The same interests per shape in slot order: a tick then reads the
	// last snapshot and writes the next one front to back.
	c.ordered = make(map[queries.Shape][]*Interest, len(groups))
	for shape, byWorkload := range groups {
		var ins []*Interest
		for _, list := range byWorkload {
			ins = append(ins, list...)
		}
		slices.SortFunc(ins, func(a, b *Interest) int { return a.slot - b.slot })
		c.ordered[shape] = ins
	}
	c.groups, c.dirty = groups, false
	return groups, c.nextSlot
}
