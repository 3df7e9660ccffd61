package sim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

var sinkSamples []queries.Sample

// benchCluster returns n workloads of every traffic shape, a third of them
// with GPUs; the replays share the two traces' indexes, as a demo's would.
func benchCluster(b *testing.B, n int) *Cluster {
	b.Helper()
	c, err := NewCluster()
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		var tr Traffic
		switch i % 7 {
		case 0:
			tr = Steady(float64(i % 50))
		case 1:
			tr = Diurnal(40, 30, 24*time.Hour, time.Duration(i)*time.Minute)
		case 2:
			tr = Bursty(5, 60, 10*time.Minute, 2*time.Minute, int64(i))
		case 3:
			tr = Anchor(Idle(20*time.Minute, 100*time.Minute, 0.5), midnight.Add(time.Duration(i)*time.Second))
		case 4:
			tr = Off()
		case 5, 6:
			trace := AzureCodeTrace()
			if i%7 == 6 {
				trace = AzureConvTrace()
			}
			r, err := Replay(trace, ReplayOptions{Start: midnight.Add(-time.Duration(i) * time.Second), Loop: true})
			if err != nil {
				b.Fatal(err)
			}
			tr = r
		}
		w := Workload{Key: key(fmt.Sprint("ns", i%20), fmt.Sprint("w", i)), Traffic: tr, Replicas: 1 + i%4}
		if i%3 == 0 {
			w.GPUsPerReplica, w.GPUTimePerRequest = 1, 300*time.Millisecond
		}
		if err := c.Add(w); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

func BenchmarkInstant(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100, 1_000, 10_000} {
		c := benchCluster(b, n)
		for _, shape := range []queries.Shape{requests1m, gpu1m} {
			b.Run(fmt.Sprintf("%s/workloads=%d", shape.Signal, n), func(b *testing.B) {
				b.ReportAllocs()
				at := midnight.Add(90 * time.Minute)
				for b.Loop() {
					at = at.Add(time.Second)
					s, err := c.Instant(ctx, shape, at)
					if err != nil {
						b.Fatal(err)
					}
					sinkSamples = s
				}
			})
		}
	}
}
