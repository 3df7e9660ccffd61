// Package queriestest holds hand-written fakes of queries' interfaces
// (Source, LastActiveSource, Pinger) for the tests of the packages that use them.
package queriestest

import (
	"context"
	"sync"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// FakeSource is a queries.Source for tests: it answers each shape with the
// samples Set gave it, fails as Fail and FailShape say, blocks between Hang
// and Release, and records every call.
type FakeSource struct {
	mu     sync.Mutex
	values map[queries.Shape][]queries.Sample
	errs   map[queries.Shape]error
	err    error
	calls  []FakeCall
	// block, while Hang holds, is waited on (or ctx) before answering.
	block chan struct{}
}

// FakeCall is one recorded Instant call.
type FakeCall struct {
	Shape queries.Shape
	At    time.Time
}

var _ queries.Source = (*FakeSource)(nil)

// Set makes shape answer samples.
func (f *FakeSource) Set(shape queries.Shape, samples ...queries.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.values == nil {
		f.values = make(map[queries.Shape][]queries.Sample)
	}
	f.values[shape] = samples
}

// Fail makes every call fail with err until Fail(nil).
func (f *FakeSource) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// FailShape makes calls for shape fail with err until FailShape(shape, nil).
func (f *FakeSource) FailShape(shape queries.Shape, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errs == nil {
		f.errs = make(map[queries.Shape]error)
	}
	f.errs[shape] = err
}

// Hang makes calls block until Release or their context ends.
func (f *FakeSource) Hang() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block = make(chan struct{})
}

// Release ends Hang.
func (f *FakeSource) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.block != nil {
		close(f.block)
		f.block = nil
	}
}

// Calls returns the calls made so far.
func (f *FakeSource) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeCall(nil), f.calls...)
}

// Instant implements queries.Source.
func (f *FakeSource) Instant(ctx context.Context, shape queries.Shape, at time.Time) ([]queries.Sample, error) {
	f.mu.Lock()
	f.calls = append(f.calls, FakeCall{shape, at})
	block, err := f.block, f.err
	if e := f.errs[shape]; e != nil {
		err = e
	}
	samples := append([]queries.Sample(nil), f.values[shape]...)
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, &queries.QueryError{Shape: shape, Kind: queries.KindTimeout, Err: ctx.Err()}
		}
	}
	if err != nil {
		return nil, err
	}
	return samples, nil
}

// FakeLastActive is a FakeSource that also answers LastActive, from what
// SetLastActive recorded, or fails with the error given to FailLastActive.
type FakeLastActive struct {
	FakeSource
	hmu     sync.Mutex
	last    map[queries.Shape][]queries.LastActive
	herr    error
	lookups []FakeLookback
}

// FakeLookback is one recorded LastActive call.
type FakeLookback struct {
	Shape      queries.Shape
	Activation float64
	Lookback   time.Duration
	Step       time.Duration
	At         time.Time
}

var _ queries.LastActiveSource = (*FakeLastActive)(nil)

// SetLastActive makes LastActive answer found for shape.
func (f *FakeLastActive) SetLastActive(shape queries.Shape, found ...queries.LastActive) {
	f.hmu.Lock()
	defer f.hmu.Unlock()
	if f.last == nil {
		f.last = make(map[queries.Shape][]queries.LastActive)
	}
	f.last[shape] = found
}

// FailLastActive makes LastActive fail with err until FailLastActive(nil).
func (f *FakeLastActive) FailLastActive(err error) {
	f.hmu.Lock()
	defer f.hmu.Unlock()
	f.herr = err
}

// Lookbacks returns the LastActive calls made so far.
func (f *FakeLastActive) Lookbacks() []FakeLookback {
	f.hmu.Lock()
	defer f.hmu.Unlock()
	return append([]FakeLookback(nil), f.lookups...)
}

// LastActive implements queries.LastActiveSource: of what SetLastActive gave
// for shape, the times within (at-lookback, at].
func (f *FakeLastActive) LastActive(_ context.Context, shape queries.Shape, activation float64, lookback, step time.Duration, at time.Time) ([]queries.LastActive, error) {
	f.hmu.Lock()
	defer f.hmu.Unlock()
	f.lookups = append(f.lookups, FakeLookback{shape, activation, lookback, step, at})
	if f.herr != nil {
		return nil, f.herr
	}
	var out []queries.LastActive
	for _, l := range f.last[shape] {
		if !l.At.After(at) && l.At.After(at.Add(-lookback)) {
			out = append(out, l)
		}
	}
	return out, nil
}

// FakePinger is a FakeSource whose Ping fails with PingErr.
type FakePinger struct {
	FakeSource
	PingErr error
}

var _ queries.Pinger = (*FakePinger)(nil)

// Ping implements queries.Pinger.
func (f *FakePinger) Ping(context.Context, time.Time) error { return f.PingErr }
