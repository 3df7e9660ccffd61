package activator

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// holding is a workload's held requests, under Activator.mu.
type holding struct {
	n       int
	episode *episode
}

// episode is one stretch of time during which a workload holds requests:
// one cold start.
type episode struct {
	since     time.Time
	m         *workloadMetrics
	forwarded atomic.Bool // the first byte of a held request went out
}

// firstByte records the wake latency once per episode.
func (e *episode) firstByte(now time.Time) {
	if e.forwarded.CompareAndSwap(false, true) {
		e.m.wake.Observe(now.Sub(e.since).Seconds())
	}
}

// queue is a Service's held requests in arrival order, under Activator.mu.
// Its dispatcher goroutine releases them while the Service has ready
// addresses; it lives while the queue holds or has released requests in
// flight.
type queue struct {
	target     Target
	head, tail *waiter
	n          int           // waiters
	inflight   int           // released, not yet written upstream nor answered
	kick       chan struct{} // cap 1: the queue changed
}

// waiter is one held request.
type waiter struct {
	prev, next *waiter
	f          *forward
	granted    chan struct{} // closed by the dispatcher
	state      uint8
}

const (
	waiting uint8 = iota
	granted
	gone
)

func (q *queue) push(w *waiter) {
	w.prev = q.tail
	if q.tail == nil {
		q.head = w
	} else {
		q.tail.next = w
	}
	q.tail = w
	q.n++
}

func (q *queue) remove(w *waiter) {
	if w.prev == nil {
		q.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		q.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next = nil, nil
	q.n--
}

// poke wakes the dispatcher.
func (q *queue) poke() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// hold queues f until its Service has a ready endpoint. It returns true
// with f.addrs set when f may go upstream; otherwise it has answered rw.
// checked says that the caller found no ready address already.
func (a *Activator) hold(rw http.ResponseWriter, r *http.Request, f *forward, checked bool) bool {
	timeout := a.holdTimeout(f.workload)
	timer := a.cfg.Clock.Timer(timeout) // before the request shows as held: a mock clock sees it
	defer timer.Stop()
	f.deadline = f.start.Add(timeout)

	a.mu.Lock()
	q := a.queues[f.target]
	if (q == nil || q.n == 0) && !checked { // nobody ahead: it may go at once
		a.mu.Unlock()
		if addrs, _ := a.cfg.Endpoints.Ready(f.target.Namespace, f.target.Service, f.target.Port); len(addrs) > 0 {
			f.addrs = addrs
			return true
		}
		a.mu.Lock()
		q = a.queues[f.target]
	}
	h := a.workloads[f.workload]
	if h != nil && h.n >= a.cfg.MaxPending {
		a.mu.Unlock()
		a.reject(rw, f, reasonOverflow, "holds "+strconv.Itoa(a.cfg.MaxPending)+" requests, the most it may")
		return false
	}
	if a.total >= a.cfg.MaxPendingTotal {
		a.mu.Unlock()
		a.reject(rw, f, reasonOverflow, "the activator holds "+strconv.Itoa(a.cfg.MaxPendingTotal)+" requests, the most it may")
		return false
	}
	if q == nil {
		q = &queue{target: f.target, kick: make(chan struct{}, 1)}
		a.queues[f.target] = q
		go a.dispatch(q)
	}
	w := &waiter{f: f, granted: make(chan struct{})}
	q.push(w)
	if h == nil {
		h = &holding{episode: &episode{since: f.start, m: f.m}}
		a.workloads[f.workload] = h
		f.m.coldStarts.Inc()
		a.cfg.Logger.Info("holding requests", "workload", f.workload.String(), "service", f.target.String())
	}
	f.episode = h.episode
	a.changeHeld(f.workload, h, +1)
	f.m.held.Inc()
	q.poke()
	a.mu.Unlock()

	hungUp, stop := hangup(r)
	defer stop()
	var reason, why string
	select {
	case <-w.granted:
		return true
	case <-timer.C:
		reason, why = reasonTimeout, "no endpoint became ready within "+timeout.String()
	case <-r.Context().Done():
		reason, why = reasonClientGone, "the client went away"
	case <-hungUp:
		reason, why = reasonClientGone, "the client went away"
	}
	a.mu.Lock()
	if w.state == granted { // released as it timed out: go
		a.mu.Unlock()
		return true
	}
	w.state = gone
	q.remove(w)
	a.changeHeld(f.workload, h, -1)
	q.poke()
	a.mu.Unlock()
	a.reject(rw, f, reason, why)
	return false
}

// changeHeld adds d to w's held count and tells everyone who counts, under a.mu.
func (a *Activator) changeHeld(wl queries.WorkloadKey, h *holding, d int) {
	h.n += d
	a.total += d
	a.held.Store(int64(a.total))
	h.episode.m.pending.Set(float64(h.n))
	if a.cfg.Demand != nil {
		a.cfg.Demand.Pending(wl, h.n)
	}
	if h.n == 0 {
		delete(a.workloads, wl)
		a.cfg.Logger.Info("stopped holding requests", "workload", wl.String(),
			"held_for", a.cfg.Clock.Since(h.episode.since).String())
	}
}

// dispatch releases q's waiters in arrival order while the Service has
// ready addresses, at most WakeConcurrency in flight, and waits on the
// Endpoints' change channel otherwise.
func (a *Activator) dispatch(q *queue) {
	t := q.target
	for {
		addrs, changed := a.cfg.Endpoints.Ready(t.Namespace, t.Service, t.Port)
		a.mu.Lock()
		if q.n == 0 && q.inflight == 0 {
			delete(a.queues, t)
			a.mu.Unlock()
			return
		}
		for len(addrs) > 0 && q.n > 0 && q.inflight < a.cfg.WakeConcurrency {
			w := q.head
			q.remove(w)
			w.state = granted
			w.f.addrs = addrs
			w.f.q = q
			q.inflight++
			a.changeHeld(w.f.workload, a.workloads[w.f.workload], -1)
			close(w.granted)
		}
		a.mu.Unlock()
		select {
		case <-changed:
		case <-q.kick:
		}
	}
}
