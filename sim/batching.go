package sim

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// BatchingServer models the replicas of a continuously batching LLM server
// (vLLM, TGI, SGLang, Triton with TensorRT-LLM), as a fluid: load is spread
// evenly over the replicas, and every second
//
//   - the requests running finish at the rate running / RequestSeconds;
//   - waiting and arriving requests join the batch while there is room:
//     each replica runs at most min(MaxRunning, KVCacheTokens /
//     KVTokensPerRequest) requests, the KV cache being the usual limit;
//   - the rest wait in the queue, which grows while arrivals exceed what
//     the batch can take. Removing replicas puts the requests they ran back
//     in the queue (a server that is stopped drops them; clients retry).
//
// It answers the model-server signals of its Kind (and auto): queue and
// running, their averages over the window summed over replicas; kvcache,
// the sum over replicas of each one's KV-cache usage in percent (tokens in
// flight × KVTokensPerRequest / KVCacheTokens); ttft, the mean time a
// request waited over the window (the queue's mean over the arrival rate,
// Little's law) plus PrefillSeconds: the fluid has no distribution, so the
// quantile is not modelled. The gpu signal of such a workload is what
// dcgm-exporter shows for a batching server: each replica's GPU is busy
// while any request runs on it, so its utilization is
// 100 × (1 - exp(-running per replica)), near 100% from a few requests on:
// the reason GPU utilization is a poor signal for these servers.
type BatchingServer struct {
	// Kind is the server whose metric names it exposes; not auto.
	Kind queries.Server
	// MaxRunning is the most requests a replica runs at once
	// (vLLM's max_num_seqs).
	MaxRunning int
	// KVCacheTokens is one replica's KV-cache capacity in tokens;
	// KVTokensPerRequest is a running request's mean footprint in it.
	KVCacheTokens      float64
	KVTokensPerRequest float64
	// RequestSeconds is how long a request runs once in the batch, on
	// average (its generated tokens over one sequence's decode speed);
	// PrefillSeconds is the part of it before the first token.
	RequestSeconds float64
	PrefillSeconds float64
}

func (b BatchingServer) validate() error {
	switch {
	case b.Kind == queries.ServerAuto:
		return fmt.Errorf("batching server kind auto: want the server it models")
	case b.Kind != "":
		if _, err := queries.ParseServer(string(b.Kind)); err != nil {
			return fmt.Errorf("batching server: %w", err)
		}
	default:
		return fmt.Errorf("batching server: no kind")
	}
	switch {
	case b.MaxRunning <= 0:
		return fmt.Errorf("batching server: max running = %d, must be > 0", b.MaxRunning)
	case !(b.KVCacheTokens > 0) || !(b.KVTokensPerRequest > 0):
		return fmt.Errorf("batching server: KV-cache tokens %g and per request %g, must be > 0", b.KVCacheTokens, b.KVTokensPerRequest)
	case !(b.RequestSeconds > 0) || b.PrefillSeconds < 0 || b.PrefillSeconds > b.RequestSeconds:
		return fmt.Errorf("batching server: request %gs with prefill %gs, want 0 <= prefill <= request, request > 0", b.RequestSeconds, b.PrefillSeconds)
	}
	return nil
}

// capacity is the requests one replica runs at once.
func (b BatchingServer) capacity() float64 {
	return min(float64(b.MaxRunning), math.Floor(b.KVCacheTokens/b.KVTokensPerRequest))
}

// batchStep is the state of a batching server after one second.
type batchStep struct {
	queue, running float64
	replicas       int
	arrived        float64
}

// batching is a workload's BatchingServer and its history, one step a
// second from origin, advanced lazily to the instants it is asked about.
type batching struct {
	BatchingServer
	mu     sync.Mutex
	origin time.Time
	steps  []batchStep // steps[i] ends at origin + i+1 seconds
	queue  float64
	run    float64
	// totals since origin was first set: seconds, arrivals, seconds with
	// at least one request waiting, and the queue's integral
	seconds, arrived, waitingSeconds, queuedRequestSeconds float64
}

// maxBatchHistory bounds the history kept: the longest window asked about.
const maxBatchHistory = 2 * 3600

// advance steps the server to at with replicas replicas.
func (b *batching) advance(traffic Traffic, replicas int, at time.Time) {
	if b.origin.IsZero() {
		b.origin = at
		return
	}
	end := b.origin.Add(time.Duration(len(b.steps)) * time.Second)
	perReplica := b.capacity()
	for !end.Add(time.Second).After(at) {
		next := end.Add(time.Second)
		a := traffic.Requests(end, next)
		room := float64(replicas) * perReplica
		b.run -= b.run / b.RequestSeconds
		if b.run > room { // replicas went away: their requests wait again
			b.queue += b.run - room
			b.run = room
		}
		admit := min(b.queue+a, room-b.run)
		b.run += admit
		b.queue += a - admit
		if b.queue < 1e-9 {
			b.queue = 0
		}
		if b.queue >= 1 {
			b.waitingSeconds++
		}
		b.queuedRequestSeconds += b.queue
		b.seconds++
		b.arrived += a
		b.steps = append(b.steps, batchStep{queue: b.queue, running: b.run, replicas: replicas, arrived: a})
		end = next
	}
	if len(b.steps) > 2*maxBatchHistory { // drop the oldest hour
		drop := len(b.steps) - maxBatchHistory
		b.steps = append(b.steps[:0], b.steps[drop:]...)
		b.origin = b.origin.Add(time.Duration(drop) * time.Second)
	}
}

// window returns the steps that end in (at-w, at].
func (b *batching) window(at time.Time, w time.Duration) []batchStep {
	hi := int(at.Sub(b.origin) / time.Second)
	lo := int(at.Add(-w).Sub(b.origin) / time.Second)
	hi, lo = min(hi, len(b.steps)), max(lo, 0)
	if lo >= hi {
		return nil
	}
	return b.steps[lo:hi]
}

// value returns the server's value of signal over steps (not empty).
func (b *batching) value(signal queries.Signal, steps []batchStep) float64 {
	var q, r, util, arrived float64
	for _, s := range steps {
		q += s.queue
		r += s.running
		arrived += s.arrived
		if s.replicas > 0 {
			util += 100 * float64(s.replicas) * (1 - math.Exp(-s.running/float64(s.replicas)))
		}
	}
	n := float64(len(steps))
	switch signal {
	case queries.SignalQueue:
		return q / n
	case queries.SignalRunning:
		return r / n
	case queries.SignalKVCache:
		return 100 * r / n * b.KVTokensPerRequest / b.KVCacheTokens
	case queries.SignalTTFT:
		if arrived == 0 {
			return 0
		}
		return q/arrived + b.PrefillSeconds // (q/n) / (arrived/n)
	}
	return util / n // gpu
}

// ServingStats is what a BatchingServer went through since it was first
// asked about.
type ServingStats struct {
	// Seconds is the time simulated; WaitingSeconds the part of it with at
	// least one request waiting.
	Seconds, WaitingSeconds float64
	// MeanWait is the mean time a request waited for the batch.
	MeanWait time.Duration
}

// Serving returns the stats of the workload key's BatchingServer, advanced
// to at, and whether it has one.
func (c *Cluster) Serving(key queries.WorkloadKey, at time.Time) (ServingStats, bool) {
	c.mu.RLock()
	w, ok := c.byKey[key]
	var replicas int
	if ok {
		replicas = w.Replicas
	}
	c.mu.RUnlock()
	if !ok || w.batch == nil {
		return ServingStats{}, false
	}
	b := w.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(w.Traffic, replicas, at)
	st := ServingStats{Seconds: b.seconds, WaitingSeconds: b.waitingSeconds}
	if b.arrived > 0 {
		st.MeanWait = time.Duration(b.queuedRequestSeconds / b.arrived * float64(time.Second))
	}
	return st, true
}
