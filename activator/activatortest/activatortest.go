// Package activatortest holds test doubles for the activator: Endpoints
// whose ready addresses a test publishes and withdraws, and a Demand that
// records what it is told.
package activatortest

import (
	"context"
	"sync"

	"github.com/ebbscale/ebb/queries"
)

type serviceKey struct{ namespace, name string }

type service struct {
	workload queries.WorkloadKey
	addrs    []string
	changed  chan struct{}
}

// Endpoints is a fake activator.Endpoints. Services are added with
// AddService; their ready addresses (the same for every port) with
// SetReady. The zero value is not ready for use: call NewEndpoints.
type Endpoints struct {
	mu       sync.Mutex
	services map[serviceKey]*service
	readyN   int
	called   chan struct{} // closed and renewed on each Ready call
}

// NewEndpoints returns an Endpoints with no Services.
func NewEndpoints() *Endpoints {
	return &Endpoints{services: make(map[serviceKey]*service), called: make(chan struct{})}
}

// AddService makes Service namespace/name known, in front of workload, with
// no ready address.
func (e *Endpoints) AddService(namespace, name string, workload queries.WorkloadKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.services[serviceKey{namespace, name}] = &service{workload: workload, changed: make(chan struct{})}
}

// SetReady publishes addrs as the Service's ready addresses (none:
// withdraws them all) and closes the channel Ready handed out.
func (e *Endpoints) SetReady(namespace, name string, addrs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.services[serviceKey{namespace, name}]
	if s == nil {
		panic("activatortest: SetReady for unknown Service " + namespace + "/" + name)
	}
	s.addrs = append([]string(nil), addrs...)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Resolve implements activator.Endpoints.
func (e *Endpoints) Resolve(namespace, name string, port int32) (queries.WorkloadKey, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.services[serviceKey{namespace, name}]
	if s == nil {
		return queries.WorkloadKey{}, false
	}
	return s.workload, true
}

// Ready implements activator.Endpoints. An unknown Service has no
// addresses and a channel that is never closed.
func (e *Endpoints) Ready(namespace, name string, port int32) ([]string, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.readyN++
	close(e.called)
	e.called = make(chan struct{})
	s := e.services[serviceKey{namespace, name}]
	if s == nil {
		return nil, make(chan struct{})
	}
	return s.addrs, s.changed
}

// ReadyCalls returns how many times Ready was called.
func (e *Endpoints) ReadyCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readyN
}

// WaitReadyCalls blocks until Ready has been called n times in all, or ctx
// ends; it returns ctx.Err() then.
func (e *Endpoints) WaitReadyCalls(ctx context.Context, n int) error {
	for {
		e.mu.Lock()
		got, ch := e.readyN, e.called
		e.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Demand is a fake activator.Demand: it records every call and lets a test
// wait for a workload's count to reach a value.
type Demand struct {
	mu      sync.Mutex
	calls   []Call
	current map[queries.WorkloadKey]int
	changed chan struct{}
}

// Call is one call of Pending.
type Call struct {
	Workload queries.WorkloadKey
	N        int
}

// NewDemand returns a Demand that has been told nothing.
func NewDemand() *Demand {
	return &Demand{current: make(map[queries.WorkloadKey]int), changed: make(chan struct{})}
}

// Pending implements activator.Demand.
func (d *Demand) Pending(w queries.WorkloadKey, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, Call{w, n})
	d.current[w] = n
	close(d.changed)
	d.changed = make(chan struct{})
}

// Calls returns the calls so far, in order.
func (d *Demand) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// Wait blocks until w's last count is n, or ctx ends; it returns ctx.Err()
// then.
func (d *Demand) Wait(ctx context.Context, w queries.WorkloadKey, n int) error {
	for {
		d.mu.Lock()
		cur, ch := d.current[w], d.changed
		d.mu.Unlock()
		if cur == n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
