package scaler

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/queriestest"
)

// benchSizesFor returns benchSizes, without 100,000 under -short (make bench).
func benchSizesFor() []int {
	if testing.Short() {
		return benchSizes[:len(benchSizes)-1]
	}
	return benchSizes
}

// promCollector returns a collector on a Prometheus source that answers from
// memory, and the 2n interests of n workloads that each have a requests and
// a gpu trigger.
func promCollector(b *testing.B, n int, at time.Time) (*Collector, []*Interest) {
	b.Helper()
	store := &promdata.Store{Requests: promdata.RequestsVector(n, at), GPU: promdata.GPUVector(n, at)}
	src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://prometheus.invalid:9090", Client: &http.Client{Transport: store}})
	if err != nil {
		b.Fatal(err)
	}
	clk := clock.NewMock()
	clk.Set(at)
	c, err := NewCollector(Config{Source: src, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	ins := make([]*Interest, 0, 2*n)
	for i := range n {
		w := wk(promdata.Namespace(i), promdata.Name(i))
		ins = append(ins, c.Register(reqShape, w, 0, 0), c.Register(gpuShape, w, 0, 0))
	}
	return c, ins
}

// BenchmarkRefreshPrometheus is one collector tick over n workloads × 2
// signals against a Prometheus source: two batched queries whose answers
// (n series each, generated) are read, decoded and indexed, every interest
// observed and decided, and the snapshot swapped. Only the HTTP round trip
// is missing: the answers come from memory.
func BenchmarkRefreshPrometheus(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, n := range benchSizesFor() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, ins := promCollector(b, n, at)
			ctx := context.Background()
			c.Refresh(ctx) // recovers the idle clocks (one range query per shape)
			snap := c.Snapshot()
			for i, in := range ins {
				want := promdata.RequestRate(i / 2)
				if in.shape == gpuShape {
					want = promdata.GPUUtil(i / 2)
				}
				if o, ok := snap.Lookup(in); !ok || !o.OK || o.Value != want {
					b.Fatalf("%s %s: observed %+v (found %v), want %g", in.workload, in.shape, o, ok, want)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.Refresh(ctx)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ins)), "ns/interest")
		})
	}
}

// BenchmarkHeapPerInterest reports the heap the collector keeps per
// registered interest after a tick: the Interest, the registry and plan
// maps, and the snapshot's observation. The server's metadata cache comes on
// top (see externalscaler's BenchmarkHeapPerWorkload).
func BenchmarkHeapPerInterest(b *testing.B) {
	for _, n := range benchSizesFor() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			keys := make([]queries.WorkloadKey, n)
			samples := make([]queries.Sample, n)
			for i := range keys {
				keys[i] = wk(promdata.Namespace(i), promdata.Name(i))
				samples[i] = queries.Sample{Workload: keys[i], Value: promdata.RequestRate(i)}
			}
			src := &queriestest.FakeSource{}
			src.Set(reqShape, samples...)
			var perInterest float64
			for b.Loop() {
				before := heapInUse()
				c, err := NewCollector(Config{Source: src})
				if err != nil {
					b.Fatal(err)
				}
				for _, k := range keys {
					c.Register(reqShape, k, 0, 0)
				}
				c.Refresh(context.Background())
				after := heapInUse()
				perInterest = float64(after-before) / float64(n)
				if got := c.Snapshot().size(); got != n {
					b.Fatalf("snapshot holds %d interests, want %d", got, n)
				}
				runtime.KeepAlive(c)
			}
			b.ReportMetric(perInterest, "B/interest")
		})
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
