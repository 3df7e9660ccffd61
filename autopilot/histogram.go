package autopilot

import (
	"fmt"
	"math"
	"time"
)

// HistogramOptions shape a Histogram's buckets and the decay of its weights.
//
// Bucket i covers [start(i), start(i+1)) with
// start(i) = FirstBucket * (Growth^i - 1) / (Growth - 1): the first bucket is
// FirstBucket wide and each next one Growth times wider, so the relative error
// of a percentile is bounded by Growth-1 whatever the value's size.
type HistogramOptions struct {
	// FirstBucket is the width of the first bucket, > 0.
	FirstBucket float64
	// MaxValue is the start of the last bucket, which holds every larger
	// value; it fixes the number of buckets.
	MaxValue float64
	// Growth is the ratio of a bucket's width to the previous one's, > 1.
	Growth float64
	// HalfLife is the age at which a sample weighs half as much as a new
	// one; zero means no decay.
	HalfLife time.Duration
}

// Validate reports the first option out of range.
func (o HistogramOptions) Validate() error {
	switch {
	case !(o.FirstBucket > 0) || math.IsInf(o.FirstBucket, 0):
		return fmt.Errorf("first bucket = %v, must be > 0", o.FirstBucket)
	case !(o.MaxValue > o.FirstBucket) || math.IsInf(o.MaxValue, 0):
		return fmt.Errorf("max value = %v, must be > first bucket (%v)", o.MaxValue, o.FirstBucket)
	case !(o.Growth > 1) || o.Growth > 10:
		return fmt.Errorf("growth = %v, must be in (1, 10]", o.Growth)
	case o.HalfLife < 0:
		return fmt.Errorf("half-life = %v, must not be negative", o.HalfLife)
	}
	return nil
}

// maxExponent is how many half-lives the weights' reference time may lag
// before the buckets are rescaled, keeping weights far from overflow.
const maxExponent = 64

// Histogram is a decaying histogram with exponentially growing buckets.
// Every sample carries its time: a sample one half-life older than another
// weighs half as much. Its size is fixed by its options, not by the number of
// samples. The zero Histogram is not usable; see NewHistogram.
type Histogram struct {
	opts    HistogramOptions
	buckets []float64 // weights relative to ref
	ref     time.Time // the instant at which a sample's weight is its own
	total   float64
	max     float64 // the largest value added, or -Inf
	n       int
	first   time.Time
	last    time.Time
}

// NewHistogram returns an empty histogram whose weights are relative to ref.
func NewHistogram(o HistogramOptions, ref time.Time) (*Histogram, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	n := bucketIndex(o, o.MaxValue) + 1
	return &Histogram{opts: o, buckets: make([]float64, n), ref: ref, max: math.Inf(-1)}, nil
}

// bucketIndex returns the index of the bucket holding v, not capped.
func bucketIndex(o HistogramOptions, v float64) int {
	if v < o.FirstBucket {
		return 0
	}
	i := int(math.Floor(math.Log(1+v*(o.Growth-1)/o.FirstBucket) / math.Log(o.Growth)))
	// Floating point may put a value on a boundary into the bucket before.
	if bucketStart(o, i+1) <= v {
		i++
	}
	return i
}

// bucketStart returns the lower bound of bucket i.
func bucketStart(o HistogramOptions, i int) float64 {
	return o.FirstBucket * (math.Pow(o.Growth, float64(i)) - 1) / (o.Growth - 1)
}

// Add records value v observed at t with weight w (1 for one sample).
// Negative, NaN and infinite values and weights <= 0 are ignored.
func (h *Histogram) Add(v, w float64, t time.Time) {
	if !(v >= 0) || math.IsInf(v, 0) || !(w > 0) || math.IsInf(w, 0) {
		return
	}
	i := min(bucketIndex(h.opts, v), len(h.buckets)-1)
	dw := w * h.decay(t)
	h.buckets[i] += dw
	h.total += dw
	h.max = max(h.max, v)
	h.n++
	if h.first.IsZero() || t.Before(h.first) {
		h.first = t
	}
	if t.After(h.last) {
		h.last = t
	}
}

// decay returns the factor of a sample at t relative to ref, moving ref
// forward and rescaling the buckets when the factor grows too large.
func (h *Histogram) decay(t time.Time) float64 {
	if h.opts.HalfLife == 0 {
		return 1
	}
	e := float64(t.Sub(h.ref)) / float64(h.opts.HalfLife)
	if e > maxExponent {
		shift := math.Floor(e)
		scale := math.Exp2(-shift)
		for i := range h.buckets {
			h.buckets[i] *= scale
		}
		h.total *= scale
		h.ref = h.ref.Add(time.Duration(shift * float64(h.opts.HalfLife)))
		e -= shift
	}
	return math.Exp2(e)
}

// Percentile returns the smallest value at or below which a share p (in
// [0, 1]) of the weight lies: the upper bound of the bucket where the
// cumulative weight first reaches p of the total, but never more than the
// largest value added. It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) float64 {
	if h.total <= 0 {
		return 0
	}
	p = min(max(p, 0), 1)
	threshold := p * h.total
	// A relative epsilon keeps p = 1 from missing the last bucket on
	// rounding errors in the sum.
	threshold -= h.total * 1e-12
	cum := 0.0
	last := 0
	for i, b := range h.buckets {
		if b <= 0 {
			continue
		}
		last = i
		cum += b
		if cum >= threshold {
			return h.bucketEnd(i)
		}
	}
	return h.bucketEnd(last)
}

// bucketEnd returns the upper bound of bucket i, capped at the largest value
// added; the last bucket has no upper bound of its own.
func (h *Histogram) bucketEnd(i int) float64 {
	if i == len(h.buckets)-1 {
		return h.max
	}
	return min(bucketStart(h.opts, i+1), h.max)
}

// Max returns the largest value added, 0 if none.
func (h *Histogram) Max() float64 {
	if h.n == 0 {
		return 0
	}
	return h.max
}

// Samples returns how many samples were added.
func (h *Histogram) Samples() int { return h.n }

// Span returns the time between the first and the last sample.
func (h *Histogram) Span() time.Duration { return h.last.Sub(h.first) }

// Buckets returns the number of buckets, which bounds the histogram's size.
func (h *Histogram) Buckets() int { return len(h.buckets) }

// eachBucket calls f with the upper bound (capped at the largest value) and
// the weight of every bucket that holds any, from the lowest.
func (h *Histogram) eachBucket(f func(end, weight float64)) {
	for i, b := range h.buckets {
		if b > 0 {
			f(h.bucketEnd(i), b)
		}
	}
}
