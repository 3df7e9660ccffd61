package externalscaler

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

var (
	sinkActive  *pb.IsActiveResponse
	sinkMetrics *pb.GetMetricsResponse
	sinkSpec    *pb.GetMetricSpecResponse
	sinkTrigger Trigger
	sinkEntry   *entry
)

// handlerSizes are the workload counts of the handler benchmarks; -short
// leaves out 100,000.
func handlerSizes() []int {
	if testing.Short() {
		return []int{100, 1_000, 10_000}
	}
	return []int{100, 1_000, 10_000, 100_000}
}

// benchRef returns the ScaledObjectRef KEDA sends for workload i's trigger,
// with strings of its own, as gRPC's decoder would make them.
func benchRef(i int, md map[string]string) *pb.ScaledObjectRef {
	m := make(map[string]string, len(md)+1)
	for k, v := range md {
		m[strings.Clone(k)] = strings.Clone(v)
	}
	return &pb.ScaledObjectRef{Name: strings.Clone(promdata.Name(i)), Namespace: strings.Clone(promdata.Namespace(i)), ScalerMetadata: m}
}

// benchMetadata is a typical requests trigger as KEDA passes it on.
var benchMetadata = map[string]string{"scalerAddress": "ebb.ebb-system.svc:9090", "signal": "requests", "target": "10", "activation": "1"}

// benchServer is a Server answering for n workloads after one tick, on the
// real clock as in production, and the refs KEDA would send for them.
type benchServer struct {
	src       *queriestest.FakeSource
	collector *scaler.Collector
	server    *Server
	refs      []*pb.ScaledObjectRef
}

func newBenchServer(b *testing.B, n int, md map[string]string, cfg scaler.Config, opts Config) *benchServer {
	b.Helper()
	bs := &benchServer{src: &queriestest.FakeSource{}}
	cfg.Source = bs.src
	var err error
	if bs.collector, err = scaler.NewCollector(cfg); err != nil {
		b.Fatal(err)
	}
	bs.server = NewServer(bs.collector, opts)
	bs.setValues(n, func(i int) float64 { return promdata.RequestRate(i) })
	bs.refs = make([]*pb.ScaledObjectRef, n)
	for i := range bs.refs {
		bs.refs[i] = benchRef(i, md)
		if _, _, err := bs.server.resolve(bs.refs[i]); err != nil {
			b.Fatal(err)
		}
	}
	bs.collector.Refresh(context.Background())
	return bs
}

// setValues makes the source answer value(i) for workloads 0..n-1.
func (bs *benchServer) setValues(n int, value func(i int) float64) {
	s := make([]queries.Sample, n)
	for i := range s {
		s[i] = queries.Sample{Workload: queries.WorkloadKey{Namespace: promdata.Namespace(i), Name: promdata.Name(i)}, Value: value(i)}
	}
	bs.src.Set(reqShape, s...)
}

// stride walks through refs in an order that defeats the caches, as KEDA's
// independent polling loops do.
const stride = 7919

// BenchmarkParseTrigger is the cost of a metadata miss: parsing and
// validating a trigger KEDA sends for the first time (or after an edit).
func BenchmarkParseTrigger(b *testing.B) {
	for _, tt := range []struct {
		name string
		md   map[string]string
	}{
		{"requests", benchMetadata},
		{"query", map[string]string{"scalerAddress": "ebb:9090", "signal": "query", "target": "5",
			"query": `sum(rate(http_requests_total{job="cart", code=~"5.."}[2m])) / sum(rate(http_requests_total{job="cart"}[2m]))`}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t, err := ParseTrigger("cart", "shop", tt.md, ParseOptions{})
				if err != nil {
					b.Fatal(err)
				}
				sinkTrigger = t
			}
		})
	}
}

// BenchmarkResolve is the metadata path every call takes: find the
// ScaledObject's cached trigger by its metadata and touch its interest.
func BenchmarkResolve(b *testing.B) {
	for _, n := range handlerSizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bs := newBenchServer(b, n, benchMetadata, scaler.Config{}, Config{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e, _, err := bs.server.resolve(bs.refs[i%n])
				if err != nil {
					b.Fatal(err)
				}
				sinkEntry = e
				i += stride
			}
		})
	}
}

// decodedBatch is how many requests BenchmarkHandlers decodes, with the
// timer stopped, before it answers them. gRPC calls a handler right after
// decoding its request, so the request is in the CPU's cache and ebb's own
// state for the workload (cache entry, interest, observation) is not; built
// all at once before timing, 100,000 requests would be as cold as ebb's
// state and charge the handler for gRPC's misses. 256 decoded requests fit
// in the L2 cache; the stride still spreads them over every workload.
const decodedBatch = 256

// decoded hands out requests decoded from their wire bytes, decodedBatch at
// a time with the timer stopped, walking the workloads by stride.
type decoded[T any, P interface {
	*T
	proto.Message
}] struct {
	wire  [][]byte
	batch []P
	next  int // the batch's next request
	i     int // the next workload to decode
}

func newDecoded[T any, P interface {
	*T
	proto.Message
}](b *testing.B, reqs []P) *decoded[T, P] {
	d := &decoded[T, P]{wire: make([][]byte, len(reqs)), batch: make([]P, decodedBatch), next: decodedBatch}
	for i, r := range reqs {
		var err error
		if d.wire[i], err = proto.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// get returns the next request, decoding a batch first when it is used up.
func (d *decoded[T, P]) get(b *testing.B) P {
	if d.next == len(d.batch) {
		b.StopTimer()
		for j := range d.batch {
			d.batch[j] = new(T)
			if err := proto.Unmarshal(d.wire[d.i%len(d.wire)], d.batch[j]); err != nil {
				b.Fatal(err)
			}
			d.i += stride
		}
		d.next = 0
		b.StartTimer()
	}
	d.next++
	return d.batch[d.next-1]
}

// answerDecoded times call on reqs decoded just before (see decoded), in
// stride order, until the benchmark has run long enough.
func answerDecoded[T any, P interface {
	*T
	proto.Message
}](b *testing.B, reqs []P, call func(P) error) {
	d := newDecoded(b, reqs)
	b.ReportAllocs()
	for b.Loop() {
		if err := call(d.get(b)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlers calls the unary handlers in process, as gRPC would
// right after decoding a request (see decodedBatch): the whole cost of an
// answer apart from the transport.
func BenchmarkHandlers(b *testing.B) {
	ctx := context.Background()
	for _, n := range handlerSizes() {
		// One server per size, built by the first sub-benchmark that runs.
		var bs *benchServer
		var reqs []*pb.GetMetricsRequest
		setup := func(b *testing.B) {
			if bs != nil {
				return
			}
			bs = newBenchServer(b, n, benchMetadata, scaler.Config{}, Config{})
			reqs = make([]*pb.GetMetricsRequest, n)
			for i, r := range bs.refs {
				reqs[i] = &pb.GetMetricsRequest{ScaledObjectRef: r, MetricName: "s0-ebb-requests-" + r.Name}
				// Every workload answers its value before timing starts.
				m, err := bs.server.GetMetrics(ctx, reqs[i])
				if err != nil {
					b.Fatal(err)
				}
				if got, want := m.MetricValues[0].MetricValueFloat, promdata.RequestRate(i); got != want {
					b.Fatalf("GetMetrics(%s) = %g, want %g", r.Name, got, want)
				}
			}
			b.ResetTimer()
		}
		b.Run(fmt.Sprintf("IsActive/%d", n), func(b *testing.B) {
			setup(b)
			answerDecoded(b, bs.refs, func(r *pb.ScaledObjectRef) (err error) {
				sinkActive, err = bs.server.IsActive(ctx, r)
				return err
			})
		})
		b.Run(fmt.Sprintf("GetMetrics/%d", n), func(b *testing.B) {
			setup(b)
			answerDecoded(b, reqs, func(r *pb.GetMetricsRequest) (err error) {
				sinkMetrics, err = bs.server.GetMetrics(ctx, r)
				return err
			})
		})
		b.Run(fmt.Sprintf("GetMetricSpec/%d", n), func(b *testing.B) {
			setup(b)
			answerDecoded(b, bs.refs, func(r *pb.ScaledObjectRef) (err error) {
				sinkSpec, err = bs.server.GetMetricSpec(ctx, r)
				return err
			})
		})
		// KEDA's loops run in parallel: the same handler on every core. The
		// requests are built before timing (RunParallel cannot stop the
		// timer), so each call also pays for its request's cache misses.
		b.Run(fmt.Sprintf("IsActiveParallel/%d", n), func(b *testing.B) {
			setup(b)
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 104729
				for pb.Next() {
					r, err := bs.server.IsActive(ctx, bs.refs[i%n])
					if err != nil {
						b.Error(err)
						return
					}
					_ = r
					i += stride
				}
			})
		})
	}
}

// fakeStream is the server side of one StreamIsActive stream: it reports
// every message to sent. Only Context and Send are implemented; the handler
// uses nothing else.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent func(active bool)
}

var _ pb.ExternalScaler_StreamIsActiveServer = (*fakeStream)(nil)

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Send(r *pb.IsActiveResponse) error {
	f.sent(r.Result)
	return nil
}

// BenchmarkStreamIsActiveFanout measures one collector tick delivered to N
// open StreamIsActive streams: from the tick's start until every stream
// whose answer changed has sent it.
//
//   - all: every workload's activity flips, so every stream wakes and sends.
//   - one: one workload flips; only its stream wakes (each waits on its own
//     interest), so this is the cost of a tick with N streams open.
//
// The triggers set idleAfter 1ns and the collector a 1ns min-uptime, so a
// value of 0 is idle at the next tick and activity flips with the value.
func BenchmarkStreamIsActiveFanout(b *testing.B) {
	md := map[string]string{"scalerAddress": "ebb:9090", "signal": "requests", "target": "10", "idleAfter": "1ns"}
	for _, mode := range []string{"all", "one"} {
		for _, n := range handlerSizes() {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				clk := clock.New()
				// The collector's own 1ns min-uptime lets activity follow the value.
				bs := newBenchServer(b, n, md, scaler.Config{Policy: shutdown.Policy{MinUptime: time.Nanosecond}}, Config{Clock: clk})
				bs.setValues(n, func(i int) float64 { return value(true, i) })
				bs.collector.Refresh(context.Background()) // every workload active
				var sent sync.WaitGroup
				var sends atomic.Int64
				ctx, cancel := context.WithCancel(context.Background())
				var done sync.WaitGroup
				sent.Add(n)
				for _, r := range bs.refs {
					st := &fakeStream{ctx: ctx, sent: func(bool) { sends.Add(1); sent.Done() }}
					done.Add(1)
					go func() {
						defer done.Done()
						if err := bs.server.StreamIsActive(r, st); err != nil {
							b.Error(err)
						}
					}()
				}
				sent.Wait() // every stream sent its first answer
				defer func() { cancel(); done.Wait() }()

				high := true // the values are above activation now
				flip := func() {
					high = !high
					if mode == "all" {
						bs.setValues(n, func(i int) float64 { return value(high, i) })
						return
					}
					bs.setValues(n, func(i int) float64 { return value(i != 0 || high, i) })
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					b.StopTimer()
					flip()
					want := int64(1)
					if mode == "all" {
						want = int64(n)
					}
					sends.Store(0)
					sent.Add(int(want))
					b.StartTimer()

					bs.collector.Refresh(context.Background())
					sent.Wait() // a stream sending more than once panics the WaitGroup
					b.StopTimer()
					if got := sends.Load(); got != want {
						b.Fatalf("%d streams sent after the tick, want %d", got, want)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/stream")
			})
		}
	}
}

// value is workload i's value: above activation (0) when high, else 0.
func value(high bool, i int) float64 {
	if high {
		return 1 + promdata.RequestRate(i)
	}
	return 0
}

// BenchmarkHeapPerWorkload reports the heap ebb keeps per tracked workload
// (one ScaledObject with one trigger) after KEDA asked about it and a tick
// ran: the server's metadata cache entry with its copy of the metadata, the
// collector's interest and registry entries, and the snapshot's observation.
// The requests are made inside the measurement, as gRPC would decode them,
// and dropped after the call, so what stays is what ebb retains.
func BenchmarkHeapPerWorkload(b *testing.B) {
	for _, n := range handlerSizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			src := &queriestest.FakeSource{}
			samples := make([]queries.Sample, n)
			for i := range samples {
				samples[i] = queries.Sample{Workload: queries.WorkloadKey{Namespace: promdata.Namespace(i), Name: promdata.Name(i)}, Value: promdata.RequestRate(i)}
			}
			src.Set(reqShape, samples...)
			var perWorkload float64
			for b.Loop() {
				before := liveHeap()
				c, err := scaler.NewCollector(scaler.Config{Source: src})
				if err != nil {
					b.Fatal(err)
				}
				s := NewServer(c, Config{})
				for i := range n {
					if _, err := s.IsActive(context.Background(), benchRef(i, benchMetadata)); err != nil {
						b.Fatal(err)
					}
				}
				c.Refresh(context.Background())
				after := liveHeap()
				perWorkload = float64(after-before) / float64(n)
				if got := len(c.Snapshot().Observations()); got != n {
					b.Fatalf("snapshot holds %d workloads, want %d", got, n)
				}
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perWorkload, "B/workload")
		})
	}
}

// liveHeap returns the live heap after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkRegisterBurst counts the batched queries the collector sends
// while KEDA registers N triggers at once (a restart of KEDA or ebb): 8
// callers, each registering a trigger every millisecond, against a
// collector that runs on the real clock with the default 5 s interval. A
// new trigger asks for a refresh at once, so the count shows how far the
// burst multiplies the one query per shape per tick.
func BenchmarkRegisterBurst(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var queriesPerBurst, burst float64
			for b.Loop() {
				src := &queriestest.FakeSource{}
				samples := make([]queries.Sample, n)
				for i := range samples {
					samples[i] = queries.Sample{Workload: queries.WorkloadKey{Namespace: promdata.Namespace(i), Name: promdata.Name(i)}, Value: promdata.RequestRate(i)}
				}
				src.Set(reqShape, samples...)
				c, err := scaler.NewCollector(scaler.Config{Source: src})
				if err != nil {
					b.Fatal(err)
				}
				s := NewServer(c, Config{})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { c.Run(ctx); close(done) }()
				<-c.Changed() // the first tick, with nothing registered
				before := len(src.Calls())
				start := time.Now()
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
							if _, err := s.IsActive(ctx, benchRef(i, benchMetadata)); err != nil {
								b.Error(err)
								return
							}
							time.Sleep(time.Millisecond)
						}
					}()
				}
				wg.Wait()
				burst = time.Since(start).Seconds()
				queriesPerBurst = float64(len(src.Calls()) - before)
				cancel()
				<-done
			}
			b.ReportMetric(queriesPerBurst, "queries/burst")
			b.ReportMetric(burst, "s/burst")
		})
	}
}
