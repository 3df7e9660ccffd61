package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// The GPU speed Replay assumes unless told otherwise: one replica (one model
// server, however many GPUs it spans) serving one request at a time, reading
// the prompt at DefaultPrefillTokensPerSec and writing the answer at
// DefaultDecodeTokensPerSec. That is roughly a 7B-parameter model in 16-bit
// weights on one A100-class GPU without batching: prefill is compute-bound
// (~14 GFLOP a token against ~150 TFLOP/s delivered: ~10,000 tokens/s);
// decode is memory-bound (the ~14 GB of weights are read for every token:
// at most ~140 tokens/s at 2 TB/s, and 50 is a conservative single-stream
// figure once a real server's overheads are counted).
//
// They were chosen so that the code trace (AzureCodeTrace) needs a few
// replicas: it keeps 1.87 replicas busy on average, so it needs 3 at a 70%
// GPU target, 2 at its median minute and 13 in its busiest; its prompts
// cost 0.20 s and its completions 0.56 s of GPU per request on average.
// The conversation trace, with 7.6 times the generated tokens, would need
// 34 such replicas on average; replay it with a batching server's
// throughput instead (DemoCluster uses 20,000 and 1,000 tokens/s).
const (
	DefaultPrefillTokensPerSec = 10_000
	DefaultDecodeTokensPerSec  = 50
)

// ReplayOptions says how to replay a Trace. The zero value replays it once,
// at its own time, at its own speed.
type ReplayOptions struct {
	// Start is when the trace's first request is replayed; the zero
	// value replays the trace at its recorded time.
	Start time.Time
	// Speedup compresses time: 2 replays an hour of arrivals in 30 minutes,
	// doubling the rate. Each request's GPU time is not compressed. 0 means 1.
	Speedup float64
	// RateScale weights every request: 3 counts each arrival as three
	// requests (and three times its GPU work) at the same instants, 0.5 as
	// half of one. 0 means 1.
	RateScale float64
	// Loop repeats the trace every Period (before the speed-up) forever
	// after Start; requests still being served at the end of one repetition
	// spill into the next.
	Loop bool
	// Period is the length of one repetition, longer than the trace's Span;
	// 0 means the Span rounded up to a whole hour (one hour for the Azure
	// traces, whose quiet last minutes are part of the replay).
	Period time.Duration
	// PrefillTokensPerSec and DecodeTokensPerSec are one replica's speed
	// reading context tokens and writing generated tokens; each request
	// keeps a replica busy for ContextTokens/PrefillTokensPerSec +
	// GeneratedTokens/DecodeTokensPerSec seconds from its arrival. 0 means
	// DefaultPrefillTokensPerSec and DefaultDecodeTokensPerSec.
	PrefillTokensPerSec float64
	DecodeTokensPerSec  float64
}

// TraceReplay is Traffic that replays a Trace, made by Replay. Its request
// count and GPU busy time over any window are exact and cost O(log n) in the
// trace's length. It is safe for concurrent use.
type TraceReplay struct {
	idx    *replayIndex
	start  int64 // Unix nanoseconds of the first request
	period int64 // nanoseconds after the speed-up; 0 = no loop
	weight float64
}

var _ GPUWork = (*TraceReplay)(nil)

// Replay returns traffic that replays t as o says. Replays of the same
// trace with the same Speedup and token rates share one index.
func Replay(t *Trace, o ReplayOptions) (*TraceReplay, error) {
	if t == nil {
		return nil, errors.New("replay: no trace")
	}
	speedup, err := positiveOr(o.Speedup, 1, "speedup")
	if err != nil {
		return nil, err
	}
	scale, err := positiveOr(o.RateScale, 1, "rate scale")
	if err != nil {
		return nil, err
	}
	prefill, err := positiveOr(o.PrefillTokensPerSec, DefaultPrefillTokensPerSec, "prefill tokens/s")
	if err != nil {
		return nil, err
	}
	decode, err := positiveOr(o.DecodeTokensPerSec, DefaultDecodeTokensPerSec, "decode tokens/s")
	if err != nil {
		return nil, err
	}
	start := o.Start
	if start.IsZero() {
		start = t.Start()
	}
	r := &TraceReplay{idx: t.index(indexKey{speedup, prefill, decode}), start: start.UnixNano(), weight: scale}
	if o.Loop {
		period := o.Period
		if period == 0 {
			period = (t.Span()/time.Hour + 1) * time.Hour
		}
		if period <= t.Span() {
			return nil, fmt.Errorf("replay %s: period = %v, must be longer than the trace (%v)", t.Name(), period, t.Span())
		}
		r.period = int64(math.Round(float64(period) / speedup))
		if r.period <= r.idx.starts[len(r.idx.starts)-1] {
			return nil, fmt.Errorf("replay %s: period = %v at speed-up %v is too short", t.Name(), period, speedup)
		}
	} else if o.Period != 0 {
		return nil, fmt.Errorf("replay %s: period = %v without loop", t.Name(), o.Period)
	}
	return r, nil
}

func positiveOr(v, def float64, name string) (float64, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0 || math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("replay: %s = %v, must be > 0", name, v)
	}
	return v, nil
}

// Requests returns the number of requests, times RateScale, that arrive in
// (from, to].
func (r *TraceReplay) Requests(from, to time.Time) float64 {
	if !to.After(from) {
		return 0
	}
	return r.weight * float64(r.arrived(to.UnixNano())-r.arrived(from.UnixNano()))
}

// arrived returns the number of arrivals at or before t.
func (r *TraceReplay) arrived(t int64) int64 {
	d := t - r.start
	if d < 0 {
		return 0
	}
	n := int64(len(r.idx.starts))
	if r.period == 0 {
		return int64(r.idx.upTo(d))
	}
	k := d / r.period
	return k*n + int64(r.idx.upTo(d-k*r.period))
}

// BusySeconds returns the replica-seconds, times RateScale, that the
// replayed requests keep a replica busy in (from, to].
func (r *TraceReplay) BusySeconds(from, to time.Time) float64 {
	if !to.After(from) {
		return 0
	}
	fullTo, partTo := r.busy(to.UnixNano())
	fullFrom, partFrom := r.busy(from.UnixNano())
	return r.weight * (float64(fullTo-fullFrom)*r.idx.busyTotal + partTo - partFrom)
}

// busy returns the busy seconds between the start and t as the number of
// repetitions already fully served plus the seconds served of the others,
// so that differences stay precise long after the start.
func (r *TraceReplay) busy(t int64) (full int64, partial float64) {
	d := t - r.start
	if d <= 0 {
		return 0, 0
	}
	if r.period == 0 {
		return 0, r.idx.busyUpTo(d)
	}
	if d >= r.idx.lastEnd {
		full = (d-r.idx.lastEnd)/r.period + 1
	}
	for k := full; k <= d/r.period; k++ {
		partial += r.idx.busyUpTo(d - k*r.period)
	}
	return full, partial
}

type indexKey struct{ speedup, prefill, decode float64 }

// replayIndex holds one replay speed of a trace: arrivals and completions
// each sorted, with prefix sums, so that both the number of arrivals and
// the integral of requests in service up to any instant take two binary
// searches.
type replayIndex struct {
	starts   []int64   // arrival offsets, nanoseconds, sorted
	startSum []float64 // startSum[i] = Σ starts[:i], seconds
	ends     []int64   // completion offsets, nanoseconds, sorted
	endSum   []float64 // endSum[i] = Σ ends[:i], seconds

	busyTotal float64 // Σ service time, seconds
	lastEnd   int64   // the last completion
}

// index returns the replay index for k, building it on first use.
func (t *Trace) index(k indexKey) *replayIndex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if idx, ok := t.indexes[k]; ok {
		return idx
	}
	n := len(t.arrivals)
	idx := &replayIndex{
		starts:   make([]int64, n),
		startSum: make([]float64, n+1),
		ends:     make([]int64, n),
		endSum:   make([]float64, n+1),
	}
	var total int64
	for i, a := range t.arrivals {
		service := int64(math.Round(1e9 * (float64(a.ContextTokens)/k.prefill + float64(a.GeneratedTokens)/k.decode)))
		idx.starts[i] = int64(math.Round(float64(a.Offset) / k.speedup))
		idx.ends[i] = idx.starts[i] + service
		total += service
	}
	slices.Sort(idx.ends)
	for i := range n {
		idx.startSum[i+1] = idx.startSum[i] + float64(idx.starts[i])/1e9
		idx.endSum[i+1] = idx.endSum[i] + float64(idx.ends[i])/1e9
	}
	idx.lastEnd = idx.ends[n-1]
	idx.busyTotal = float64(total) / 1e9
	if t.indexes == nil {
		t.indexes = make(map[indexKey]*replayIndex)
	}
	t.indexes[k] = idx
	return idx
}

// upTo returns the number of arrivals at offsets <= d.
func (x *replayIndex) upTo(d int64) int {
	i, _ := slices.BinarySearch(x.starts, d+1)
	return i
}

// busyUpTo returns ∫₀^d (requests in service) dt in seconds: the sum over
// requests of the part of [start, end] before d, which is
// Σ_{start<=d} (d - start) - Σ_{end<=d} (d - end).
func (x *replayIndex) busyUpTo(d int64) float64 {
	if d >= x.lastEnd {
		return x.busyTotal
	}
	ns := x.upTo(d)
	ne, _ := slices.BinarySearch(x.ends, d+1)
	ds := float64(d) / 1e9
	return (float64(ns)*ds - x.startSum[ns]) - (float64(ne)*ds - x.endSum[ne])
}
