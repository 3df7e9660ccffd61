package autopilot

import (
	"math"
	"slices"
)

// binSamples bounds the values a binSampler keeps per chart bin.
const binSamples = 64

// binSampler keeps a bounded, evenly thinned sample of the values of each
// chart bin, for the bin's percentiles: once a bin holds binSamples values
// it drops every other one and keeps every second value from then on, then
// every fourth, and so on. Its size does not grow with the history.
type binSampler struct {
	vals   [][]float32
	stride []uint32
	seen   []uint32
}

func newBinSampler(bins int) *binSampler {
	return &binSampler{vals: make([][]float32, bins), stride: make([]uint32, bins), seen: make([]uint32, bins)}
}

func (s *binSampler) add(i int, v float64) {
	if i < 0 {
		return
	}
	if s.stride[i] == 0 {
		s.stride[i] = 1
	}
	s.seen[i]++
	if (s.seen[i]-1)%s.stride[i] != 0 {
		return
	}
	if len(s.vals[i]) == binSamples {
		kept := s.vals[i][:0]
		for j := 0; j < binSamples; j += 2 {
			kept = append(kept, s.vals[i][j])
		}
		s.vals[i] = kept
		s.stride[i] *= 2
		if (s.seen[i]-1)%s.stride[i] != 0 {
			return
		}
	}
	s.vals[i] = append(s.vals[i], float32(v))
}

// percentile returns each bin's p (in [0, 1]) by the nearest rank, NaN for
// a bin without values.
func (s *binSampler) percentile(p float64) []float64 {
	out := make([]float64, len(s.vals))
	buf := make([]float64, 0, binSamples)
	for i, vs := range s.vals {
		out[i] = math.NaN()
		if len(vs) == 0 {
			continue
		}
		buf = buf[:0]
		for _, v := range vs {
			buf = append(buf, float64(v))
		}
		slices.Sort(buf)
		out[i] = buf[max(int(math.Ceil(p*float64(len(buf))))-1, 0)]
	}
	return out
}

// addBin adds n to bin i of a sparse count, making it when nil.
func addBin(m map[int]int, i, n int) map[int]int {
	if i < 0 || n <= 0 {
		return m
	}
	if m == nil {
		m = map[int]int{}
	}
	m[i] += n
	return m
}

// meanBins returns sum/n per bin, NaN where n is 0.
func meanBins(sum, n []float64) []float64 {
	out := make([]float64, len(sum))
	for i := range sum {
		out[i] = math.NaN()
		if n[i] > 0 {
			out[i] = sum[i] / n[i]
		}
	}
	return out
}
