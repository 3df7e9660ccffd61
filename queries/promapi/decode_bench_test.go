package promapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
)

var sinkInstant []queries.Sample

// instantSizes are the workload counts of the Instant benchmarks; -short
// leaves out 100,000.
func instantSizes() []int {
	if testing.Short() {
		return []int{100, 1_000, 10_000}
	}
	return []int{100, 1_000, 10_000, 100_000}
}

// BenchmarkInstant measures one batched query end to end without a network:
// the request is built, the answer (N series, generated) is read into the
// pooled buffer, decoded and turned into samples; gpu also maps pods to
// workloads and sorts. SetBytes makes MB/s the decoding throughput.
func BenchmarkInstant(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, sig := range []queries.Signal{queries.SignalRequests, queries.SignalGPU} {
		for _, n := range instantSizes() {
			b.Run(fmt.Sprintf("%s/%d", sig, n), func(b *testing.B) {
				store := &promdata.Store{Requests: promdata.RequestsVector(n, at), GPU: promdata.GPUVector(n, at)}
				p, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://prometheus.invalid:9090", Client: &http.Client{Transport: store}})
				if err != nil {
					b.Fatal(err)
				}
				shape := queries.Shape{Signal: sig, Window: time.Minute}
				body := store.Requests
				if sig == queries.SignalGPU {
					body = store.GPU
				}
				// Check once that every workload came back with its value.
				got, err := p.Instant(context.Background(), shape, at)
				if err != nil {
					b.Fatal(err)
				}
				checkBenchSamples(b, sig, got, n)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					s, err := p.Instant(context.Background(), shape, at)
					if err != nil {
						b.Fatal(err)
					}
					sinkInstant = s
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/series")
			})
		}
	}
}

// checkBenchSamples fails unless got holds workloads 0..n-1 with their values.
func checkBenchSamples(b *testing.B, sig queries.Signal, got []queries.Sample, n int) {
	b.Helper()
	if len(got) != n {
		b.Fatalf("%d samples, want %d", len(got), n)
	}
	want := make(map[queries.WorkloadKey]float64, n)
	for i := range n {
		v := promdata.RequestRate(i)
		if sig == queries.SignalGPU {
			v = promdata.GPUUtil(i)
		}
		want[queries.WorkloadKey{Namespace: promdata.Namespace(i), Name: promdata.Name(i)}] = v
	}
	for _, s := range got {
		if w, ok := want[s.Workload]; !ok || w != s.Value {
			b.Fatalf("sample %v = %g, want %g (known: %v)", s.Workload, s.Value, w, ok)
		}
	}
}
