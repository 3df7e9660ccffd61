package scaler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
)

var sinkObservation Observation

var benchSizes = []int{100, 1_000, 10_000, 100_000}

func benchCollector(b *testing.B, n int) (*Collector, []*Interest, *queriestest.FakeSource) {
	b.Helper()
	src := &queriestest.FakeSource{}
	c, err := NewCollector(Config{Source: src})
	if err != nil {
		b.Fatal(err)
	}
	ins := make([]*Interest, 0, n)
	reqs := make([]queries.Sample, 0, n/2)
	gpus := make([]queries.Sample, 0, n/2)
	for i := range n {
		w := wk(fmt.Sprintf("ns%d", i%50), fmt.Sprintf("workload-%d", i))
		if i%2 == 0 {
			ins = append(ins, c.Register(reqShape, w, 0, 0))
			reqs = append(reqs, queries.Sample{Workload: w, Value: float64(i)})
		} else {
			ins = append(ins, c.Register(gpuShape, w, 0, 0))
			gpus = append(gpus, queries.Sample{Workload: w, Value: float64(i)})
		}
	}
	src.Set(reqShape, reqs...)
	src.Set(gpuShape, gpus...)
	return c, ins, src
}

// BenchmarkSnapshotLookup copies a whole observation out: diagnostics and
// tests; KEDA's calls use Active and Value below.
func BenchmarkSnapshotLookup(b *testing.B) {
	for _, n := range benchSizesFor() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, ins, _ := benchCollector(b, n)
			c.Refresh(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				o, _ := c.Snapshot().Lookup(ins[i%len(ins)])
				sinkObservation = o
				i += 7919 // stride through memory rather than hit one cache line
			}
		})
	}
}

// BenchmarkRefresh measures distributing two batched results (requests and
// gpu) over N interests and swapping the snapshot; decoding is measured in
// queries.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range benchSizesFor() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, _, _ := benchCollector(b, n)
			b.ReportAllocs()
			for b.Loop() {
				c.Refresh(context.Background())
			}
		})
	}
}

var sinkActive Activity

// BenchmarkSnapshotActive is the lookup of IsActive and StreamIsActive.
func BenchmarkSnapshotActive(b *testing.B) {
	for _, n := range benchSizesFor() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, ins, _ := benchCollector(b, n)
			c.Refresh(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				sinkActive = c.Snapshot().Activity(ins[i%len(ins)])
				i += 7919
			}
		})
	}
}

var sinkValue float64

// BenchmarkSnapshotValue is GetMetrics' lookup: the value, checked for
// staleness.
func BenchmarkSnapshotValue(b *testing.B) {
	for _, n := range benchSizesFor() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, ins, _ := benchCollector(b, n)
			c.Refresh(context.Background())
			now := c.Snapshot().At
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				v, err := c.Snapshot().Value(ins[i%len(ins)], now, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				sinkValue = v
				i += 7919
			}
		})
	}
}
