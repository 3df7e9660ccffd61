package autopilot

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// Sinks keep the compiler from optimising the benchmarks' work away.
var (
	sinkFloat  float64
	sinkReport *Report
)

// cpuSamples returns n CPU usages in cores, deterministic and spread over
// three orders of magnitude, as a cluster's containers are.
func cpuSamples(n int) []float64 {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]float64, n)
	for i := range out {
		out[i] = 0.005 * float64(int(1)<<r.IntN(10)) * (1 + r.Float64())
	}
	return out
}

// One sample a minute, so that the decay's rescaling (every 64 half-lives)
// is paid as often as a real read pays it.
func BenchmarkHistogramAdd(b *testing.B) {
	h, err := NewHistogram(DefaultConfig().CPU, t0)
	if err != nil {
		b.Fatal(err)
	}
	vs := cpuSamples(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Add(vs[i%len(vs)], 1, t0.Add(time.Duration(i)*time.Minute))
		i++
	}
	sinkFloat = h.total
}

func BenchmarkHistogramPercentile(b *testing.B) {
	h, err := NewHistogram(DefaultConfig().CPU, t0)
	if err != nil {
		b.Fatal(err)
	}
	for i, v := range cpuSamples(14 * 288) { // two weeks at 5m
		h.Add(v, 1, t0.Add(time.Duration(i)*5*time.Minute))
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkFloat = h.Percentile(0.9)
	}
}

// Recommend alone, on a day of history at 5m (CPU, memory and request
// rate) of each workload's one container, read beforehand.
func BenchmarkRecommend(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("workloads=%d", n), func(b *testing.B) {
			h, err := NewHistory(DefaultConfig(), t0, t0.Add(24*time.Hour), 5*time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			vs := cpuSamples(288)
			for w := range n {
				k := queries.WorkloadKey{Namespace: fmt.Sprintf("ns-%d", w%20), Name: fmt.Sprintf("app-%d", w)}
				ref := ContainerRef{Workload: k, Pod: k.Name + "-0", Container: "app"}
				h.SetResources(ref, Resources{CPURequest: 0.5, MemoryRequest: 512 * MiB, MemoryLimit: 512 * MiB})
				i := w
				for at := t0.Add(5 * time.Minute); !at.After(h.End()); at = at.Add(5 * time.Minute) {
					v := vs[i%len(vs)]
					h.CPU(ref, at, v)
					h.Memory(ref, at, 200*MiB+v*100*MiB)
					h.RequestRate(k, at, v*100)
					i++
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				r, err := Recommend(h, DefaultPrices(), "bench")
				if err != nil {
					b.Fatal(err)
				}
				sinkReport = r
			}
		})
	}
}
