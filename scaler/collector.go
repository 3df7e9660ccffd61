package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/queries"
)

// Config configures a Collector.
type Config struct {
	// Source answers the batched queries. Required.
	Source queries.Source
	// Interval between ticks; default 5s.
	Interval time.Duration
	// QueryTimeout bounds each query; default 10s, and never more than
	// Interval*2.
	QueryTimeout time.Duration
	// ForgetAfter drops interests nobody touched for this long; default 1h.
	ForgetAfter time.Duration
	// Concurrency is how many shape queries run at once; default 4.
	Concurrency int
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Metrics, when set, receives the collector's measurements.
	Metrics *Metrics
}

func (c *Config) setDefaults() error {
	if c.Source == nil {
		return errors.New("collector: no source")
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.Interval < 100*time.Millisecond {
		return fmt.Errorf("collector: interval = %s, must be at least 100ms", c.Interval)
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 10 * time.Second
	}
	if c.QueryTimeout < 0 {
		return fmt.Errorf("collector: query timeout = %s, must be positive", c.QueryTimeout)
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = time.Hour
	}
	if c.ForgetAfter < c.Interval {
		return fmt.Errorf("collector: forget-after = %s, must be at least the interval %s", c.ForgetAfter, c.Interval)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("collector: concurrency = %d, must be positive", c.Concurrency)
	}
	if c.Clock == nil {
		c.Clock = clock.New()
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
}

// Collector refreshes a Snapshot of every registered interest once per
// interval, with one query per distinct shape, and swaps it in atomically.
type Collector struct {
	cfg Config

	refreshMu sync.Mutex // one Refresh at a time

	mu        sync.Mutex
	interests map[interestKey]*Interest
	freeSlots []int
	nextSlot  int

	// plan cache: rebuilt only when the registry changed.
	dirty  bool
	groups map[queries.Shape]map[queries.WorkloadKey][]*Interest

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
		cfg:       cfg,
		interests: make(map[interestKey]*Interest),
		changed:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		ready:     make(chan struct{}),
	}, nil
}

// Register returns the interest for a workload's shape, creating it if it is
// new; a new interest makes the collector refresh soon rather than at the
// next tick. The caller Touches it whenever it is asked about.
func (c *Collector) Register(shape queries.Shape, workload queries.WorkloadKey, activation float64) *Interest {
	key := interestKey{shape, workload, activation}
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	in, ok := c.interests[key]
	if !ok {
		in = &Interest{Shape: shape, Workload: workload, Activation: activation, slot: c.allocSlot()}
		c.interests[key] = in
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

// Ready is closed after the first tick in which no query failed.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// Run ticks until ctx is done. The first refresh runs at once.
func (c *Collector) Run(ctx context.Context) error {
	ticker := c.cfg.Clock.Ticker(c.cfg.Interval)
	defer ticker.Stop()
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		case <-c.kick:
		}
	}
}

// Refresh runs one tick: it forgets stale interests, queries every shape
// once at the clock's now, and swaps in the new snapshot.
func (c *Collector) Refresh(ctx context.Context) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	now := c.cfg.Clock.Now()
	start := time.Now() // wall time for the duration metric only
	groups, slots := c.plan(now)
	prev := c.snap.load()
	obs := make([]Observation, slots)
	shapeErrs := make(map[queries.Shape]error, len(groups))

	type result struct {
		shape   queries.Shape
		samples []queries.Sample
		err     error
	}
	results := make(chan result, len(groups))
	sem := make(chan struct{}, c.cfg.Concurrency)
	for shape := range groups {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			qctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
			samples, err := c.cfg.Source.Instant(qctx, shape, now)
			cancel()
			results <- result{shape, samples, err}
		}()
	}
	failed := 0
	for range groups {
		r := <-results
		shapeErrs[r.shape] = r.err
		c.cfg.Metrics.observeQuery(r.shape.Signal, len(r.samples), r.err)
		if r.err != nil {
			failed++
			c.cfg.Logger.Warn("query failed", "shape", r.shape.String(), "err", r.err)
			for _, ins := range groups[r.shape] {
				for _, in := range ins {
					o, _ := prev.Lookup(in)
					o.OK, o.Err, o.owner = false, r.err, in
					obs[in.slot] = o
				}
			}
			continue
		}
		apply(obs, prev, groups[r.shape], r.samples, r.shape.Signal == queries.SignalQuery, now)
	}

	next := &Snapshot{At: now, obs: obs, shapes: shapeErrs}
	c.snap.p.Store(next)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.cfg.Metrics.observeTick(time.Since(start), len(groups), next.Len())
	if failed == 0 && ctx.Err() == nil {
		c.once.Do(func() { close(c.ready) })
	}
}

// apply writes a successful query's samples into obs for every interest of
// the shape. Interests without a sample observe 0: the store answered and had
// no series for them. A query shape's single sample applies to all of them.
func apply(obs []Observation, prev *Snapshot, interests map[queries.WorkloadKey][]*Interest, samples []queries.Sample, whole bool, now time.Time) {
	for _, ins := range interests {
		for _, in := range ins {
			o, _ := prev.Lookup(in)
			obs[in.slot] = Observation{At: now, OK: true, LastActive: o.LastActive, owner: in}
		}
	}
	set := func(in *Interest, v float64) {
		o := &obs[in.slot]
		o.Value = v
		if v > in.Activation {
			o.LastActive = now
		}
	}
	for _, s := range samples {
		if whole {
			for _, ins := range interests {
				for _, in := range ins {
					set(in, s.Value)
				}
			}
			break
		}
		for _, in := range interests[s.Workload] {
			set(in, s.Value)
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
		if in.touched.Load() < cutoff {
			in.dead.Store(true)
			delete(c.interests, key)
			c.freeSlots = append(c.freeSlots, in.slot)
			c.dirty = true
			c.cfg.Logger.Info("forgot workload", "workload", in.Workload.String(), "shape", in.Shape.String())
		}
	}
	if !c.dirty && c.groups != nil {
		return c.groups, c.nextSlot
	}
	groups := make(map[queries.Shape]map[queries.WorkloadKey][]*Interest)
	for _, in := range c.interests {
		byWorkload := groups[in.Shape]
		if byWorkload == nil {
			byWorkload = make(map[queries.WorkloadKey][]*Interest)
			groups[in.Shape] = byWorkload
		}
		byWorkload[in.Workload] = append(byWorkload[in.Workload], in)
	}
	c.groups, c.dirty = groups, false
	return groups, c.nextSlot
}
