package autopilot

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// Buckets of FirstBucket 0.01 and Growth 1.05 start at
// 0.2 * (1.05^i - 1): bucket 25 is [0.477271, 0.511135), bucket 14 is
// [0.195864, 0.225657), bucket 0 is [0, 0.01).
func TestHistogramPercentileHandComputed(t *testing.T) {
	o := HistogramOptions{FirstBucket: 0.01, MaxValue: 100, Growth: 1.05}
	b25 := 0.2 * (math.Pow(1.05, 26) - 1) // end of bucket 25 = 0.5111354...
	b14 := 0.2 * (math.Pow(1.05, 15) - 1) // end of bucket 14 = 0.2156571...
	tests := []struct {
		name   string
		values []float64
		p      float64
		want   float64
	}{
		{"constant: the value itself, not the bucket's end", []float64{0.5, 0.5, 0.5}, 0.9, 0.5},
		{"p50 of 9 x 0.2 and 1 x 0.5 is bucket 14's end", []float64{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5}, 0.5, b14},
		{"p90 of the same is still bucket 14", []float64{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5}, 0.9, b14},
		{"p95 reaches 0.5, capped at the max", []float64{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5}, 0.95, 0.5},
		{"p90 of 8 x 0.2 and 2 x 0.48 reaches bucket 25, max 0.49", []float64{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.48, 0.49}, 0.9, 0.49},
		{"p80 of 8 x 0.2, 0.48 and 0.6 is bucket 14", []float64{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.48, 0.6}, 0.8, b14},
		{"p90 of 8 x 0.2, 0.48 and 0.6 is bucket 25's end", []float64{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.48, 0.6}, 0.9, b25},
		{"zeros land in bucket 0", []float64{0, 0, 0, 0.5}, 0.5, 0.01},
		{"p0 is the first bucket's end", []float64{0.2, 0.5}, 0, b14},
		{"beyond MaxValue: the last bucket, capped at the max", []float64{500}, 0.5, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHistogram(o, t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.values {
				h.Add(v, 1, t0)
			}
			if got := h.Percentile(tt.p); !near(got, tt.want) {
				t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestHistogramDecay(t *testing.T) {
	o := HistogramOptions{FirstBucket: 0.01, MaxValue: 100, Growth: 1.05, HalfLife: 24 * time.Hour}
	h, _ := NewHistogram(o, t0)
	// Two samples of 1.0 two days old weigh 2 * 1/4 = 0.5; one new sample
	// of 0.2 weighs 1: 0.2 holds 2/3 of the weight.
	h.Add(1.0, 1, t0)
	h.Add(1.0, 1, t0)
	h.Add(0.2, 1, t0.Add(48*time.Hour))
	b14 := 0.2 * (math.Pow(1.05, 15) - 1)
	if got := h.Percentile(0.6); !near(got, b14) {
		t.Errorf("p60 = %v, want %v (0.2 holds 2/3 of the decayed weight)", got, b14)
	}
	if got := h.Percentile(0.7); got != 1.0 {
		t.Errorf("p70 = %v, want 1", got)
	}
	// Without decay 1.0 holds 2/3 and p60 is 1.0.
	o.HalfLife = 0
	h, _ = NewHistogram(o, t0)
	h.Add(1.0, 1, t0)
	h.Add(1.0, 1, t0)
	h.Add(0.2, 1, t0.Add(48*time.Hour))
	if got := h.Percentile(0.6); got != 1.0 {
		t.Errorf("no decay: p60 = %v, want 1", got)
	}
}

func TestHistogramRescalesFarFuture(t *testing.T) {
	o := HistogramOptions{FirstBucket: 0.01, MaxValue: 100, Growth: 1.05, HalfLife: time.Hour}
	h, _ := NewHistogram(o, t0)
	h.Add(1, 1, t0)
	// 1000 half-lives later the weights would overflow without rescaling.
	later := t0.Add(1000 * time.Hour)
	h.Add(0.2, 1, later)
	h.Add(0.2, 1, later)
	if math.IsInf(h.total, 0) || math.IsNaN(h.total) {
		t.Fatalf("total = %v", h.total)
	}
	b14 := 0.2 * (math.Pow(1.05, 15) - 1)
	if got := h.Percentile(0.99); !near(got, b14) {
		t.Errorf("p99 = %v, want %v: the old sample weighs nothing", got, b14)
	}
}

func TestHistogramBoundedSize(t *testing.T) {
	cfg := DefaultConfig()
	h, _ := NewHistogram(cfg.CPU, t0)
	n := h.Buckets()
	for i := range 100000 {
		h.Add(float64(i%5000)/10, 1, t0.Add(time.Duration(i)*time.Minute))
	}
	if h.Buckets() != n || len(h.buckets) != n {
		t.Errorf("buckets grew from %d to %d", n, len(h.buckets))
	}
	if n > 300 {
		t.Errorf("%d buckets for CPU, want a few hundred at most", n)
	}
	if h.Samples() != 100000 {
		t.Errorf("samples = %d", h.Samples())
	}
}

func TestHistogramIgnoresBadValues(t *testing.T) {
	h, _ := NewHistogram(HistogramOptions{FirstBucket: 1, MaxValue: 10, Growth: 2}, t0)
	for _, v := range []float64{-1, math.NaN(), math.Inf(1)} {
		h.Add(v, 1, t0)
	}
	h.Add(1, 0, t0)
	if h.Samples() != 0 || h.Percentile(0.5) != 0 || h.Max() != 0 {
		t.Errorf("bad values were counted: samples %d", h.Samples())
	}
}

func TestHistogramOptionsValidate(t *testing.T) {
	tests := []struct {
		o    HistogramOptions
		want string
	}{
		{HistogramOptions{FirstBucket: 0, MaxValue: 1, Growth: 1.05}, "first bucket = 0, must be > 0"},
		{HistogramOptions{FirstBucket: 1, MaxValue: 1, Growth: 1.05}, "max value = 1, must be > first bucket (1)"},
		{HistogramOptions{FirstBucket: 1, MaxValue: 10, Growth: 1}, "growth = 1, must be in (1, 10]"},
		{HistogramOptions{FirstBucket: 1, MaxValue: 10, Growth: 1.05, HalfLife: -time.Hour}, "half-life = -1h0m0s, must not be negative"},
	}
	for _, tt := range tests {
		if _, err := NewHistogram(tt.o, t0); err == nil || err.Error() != tt.want {
			t.Errorf("%+v: got %v, want %q", tt.o, err, tt.want)
		}
	}
}
