package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/bench/promdata"
)

// LoadConfig is one run of KEDA's call pattern against an ebb server.
type LoadConfig struct {
	// Addr is the server's gRPC address.
	Addr string
	// Workloads is how many ScaledObjects (one requests trigger each) KEDA
	// polls; they must be workloads 0..Workloads-1 of the server's source.
	Workloads int
	// Streams is how many of them also hold a StreamIsActive stream open,
	// as an external-push trigger does.
	Streams int
	// Conns is how many client connections carry the calls; KEDA keeps one
	// per scaler address, so 1 is faithful.
	Conns int
	// Workers is how many polls run at once. KEDA runs one loop per
	// ScaledObject, each polling every pollingInterval.
	Workers int
	// Rate is the polls per second the workers keep to in total; 0 polls as
	// fast as the server answers (closed loop), to find the throughput.
	Rate float64
	// Duration is how long polls are measured, after the warm-up.
	Duration time.Duration
	// Pid, when not 0, is the server's process, whose CPU time and memory
	// are read from /proc before and after.
	Pid int
	// Measured, when set, is called after the measurement while the
	// connections and streams are still open (to profile the server's heap).
	Measured func()
}

// A poll is what KEDA does for one trigger each pollingInterval (and the HPA
// through KEDA's metrics adapter): GetMetricSpec, GetMetrics and IsActive.
var pollMethods = []string{"GetMetricSpec", "GetMetrics", "IsActive"}

// Latency summarises the latencies of a set of calls.
type Latency struct {
	Calls                int
	Mean, P50, P99, P999 time.Duration
	Max                  time.Duration
}

func summarise(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(math.Ceil(p*float64(len(d))))-1)] }
	return Latency{Calls: len(d), Mean: sum / time.Duration(len(d)), P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: d[len(d)-1]}
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Config  LoadConfig
	Elapsed time.Duration
	// RPCs is the unary calls answered OK; Throughput is RPCs per second.
	RPCs       int
	Throughput float64
	// All is every unary call's latency; ByMethod per method.
	All      Latency
	ByMethod map[string]Latency
	// Lag is how late polls started against the Rate schedule (p99); it
	// shows when the load generator itself could not keep up.
	LagP99 time.Duration
	// StreamMsgs is the messages the open streams received while measuring.
	StreamMsgs int64
	// Server is the server's CPU time over the measurement, its CPU use in
	// cores, its CPU time per RPC, and its resident memory at the end.
	ServerCPU        time.Duration
	ServerCores      float64
	ServerCPUPerRPC  time.Duration
	ServerRSS        int64
	ServerPeakRSS    int64
	LoadCPU          time.Duration // this process's CPU time over the measurement
	WarmupRegistered time.Duration // time to register every workload and see its first value
}

func (r LoadResult) String() string {
	var b strings.Builder
	mode := "closed loop"
	if r.Config.Rate > 0 {
		mode = fmt.Sprintf("%.0f polls/s", r.Config.Rate)
	}
	fmt.Fprintf(&b, "%d workloads, %d streams, %d conns, %d workers, %s, %s: %d RPCs, %.0f RPC/s, p50 %s p99 %s p99.9 %s max %s",
		r.Config.Workloads, r.Config.Streams, r.Config.Conns, r.Config.Workers, mode, r.Elapsed.Round(time.Millisecond),
		r.RPCs, r.Throughput, us(r.All.P50), us(r.All.P99), us(r.All.P999), us(r.All.Max))
	if r.Config.Pid != 0 {
		fmt.Fprintf(&b, "; server CPU %.2f cores, %.1f µs/RPC, RSS %.1f MiB (peak %.1f MiB)",
			r.ServerCores, float64(r.ServerCPUPerRPC.Nanoseconds())/1e3, float64(r.ServerRSS)/(1<<20), float64(r.ServerPeakRSS)/(1<<20))
	}
	fmt.Fprintf(&b, "; load CPU %.2f cores; stream msgs %d; schedule lag p99 %s", r.LoadCPU.Seconds()/r.Elapsed.Seconds(), r.StreamMsgs, us(r.LagP99))
	return b.String()
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1e3) }

// loadRef is the ScaledObjectRef KEDA sends for workload i.
func loadRef(i int) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: promdata.Name(i), Namespace: promdata.Namespace(i), ScalerMetadata: map[string]string{
		"scalerAddress": "ebb.ebb-system.svc:9090", "signal": "requests", "target": "10",
	}}
}

// RunLoad registers cfg.Workloads ScaledObjects, opens cfg.Streams streams,
// waits until every workload has a value, and then polls for cfg.Duration.
// Any failed call or wrong value fails the run.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	res := LoadResult{Config: cfg, ByMethod: map[string]Latency{}}
	if cfg.Workloads < 1 || cfg.Streams > cfg.Workloads || cfg.Conns < 1 || cfg.Workers < 1 || cfg.Duration <= 0 {
		return res, fmt.Errorf("bad load config %+v", cfg)
	}
	p, closeConns, err := newLoadPlan(cfg)
	if err != nil {
		return res, err
	}
	defer closeConns()

	// Warm-up: KEDA asks for the spec when it creates the HPA, opens the
	// streams, and the first tick after registration brings the values.
	began := time.Now()
	sctx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	streams, err := p.warmUp(ctx, sctx)
	if err != nil {
		return res, err
	}
	res.WarmupRegistered = time.Since(began)

	// Measurement.
	var before, after ProcStats
	if cfg.Pid != 0 {
		if before, err = ReadProc(cfg.Pid); err != nil {
			return res, err
		}
	}
	msgs0 := streams.msgs.Load()
	cpu0 := SelfCPU()
	start := time.Now()
	results := p.measure(ctx, start)
	res.Elapsed = time.Since(start)
	res.LoadCPU = SelfCPU() - cpu0
	res.StreamMsgs = streams.msgs.Load() - msgs0
	if cfg.Pid != 0 {
		if after, err = ReadProc(cfg.Pid); err != nil {
			return res, err
		}
		res.ServerCPU = after.CPU - before.CPU
		res.ServerRSS, res.ServerPeakRSS = after.RSS, after.HWM
	}
	if cfg.Measured != nil {
		cfg.Measured()
	}
	errs := res.add(results)
	select {
	case err := <-streams.err:
		errs = append(errs, err)
	default:
	}
	res.rates()
	return res, errors.Join(errs...)
}

// loadPlan is what a run asks: the connections and, per workload, its
// ScaledObject and its GetMetrics request.
type loadPlan struct {
	cfg     LoadConfig
	clients []pb.ExternalScalerClient
	refs    []*pb.ScaledObjectRef
	reqs    []*pb.GetMetricsRequest
}

// newLoadPlan dials cfg.Conns connections; closeConns closes them.
func newLoadPlan(cfg LoadConfig) (p *loadPlan, closeConns func(), err error) {
	p = &loadPlan{cfg: cfg, clients: make([]pb.ExternalScalerClient, cfg.Conns)}
	var conns []*grpc.ClientConn
	closeConns = func() {
		for _, conn := range slices.Backward(conns) {
			conn.Close()
		}
	}
	for i := range p.clients {
		conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeConns()
			return nil, nil, err
		}
		conns = append(conns, conn)
		p.clients[i] = pb.NewExternalScalerClient(conn)
	}
	p.refs = make([]*pb.ScaledObjectRef, cfg.Workloads)
	p.reqs = make([]*pb.GetMetricsRequest, cfg.Workloads)
	for i := range p.refs {
		p.refs[i] = loadRef(i)
		p.reqs[i] = &pb.GetMetricsRequest{ScaledObjectRef: p.refs[i], MetricName: "s0-ebb-requests-" + p.refs[i].Name}
	}
	return p, closeConns, nil
}

// loadStreams counts the messages of the open StreamIsActive streams and
// holds the first error of one, if any.
type loadStreams struct {
	msgs atomic.Int64
	err  chan error
}

// warmUp registers every workload (GetMetricSpec), opens the streams on
// sctx, which ends them, and waits until every workload has its first
// value.
func (p *loadPlan) warmUp(ctx, sctx context.Context) (*loadStreams, error) {
	cfg := p.cfg
	if err := forEach(ctx, cfg.Workers, cfg.Workloads, func(i int) error {
		_, err := p.clients[i%cfg.Conns].GetMetricSpec(ctx, p.refs[i])
		return err
	}); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	streams := &loadStreams{err: make(chan error, 1)}
	var opened sync.WaitGroup
	for i := range cfg.Streams {
		stream, err := p.clients[i%cfg.Conns].StreamIsActive(sctx, p.refs[i])
		if err != nil {
			return nil, fmt.Errorf("open stream %d: %w", i, err)
		}
		opened.Add(1)
		go func() {
			first := true
			for {
				_, err := stream.Recv()
				if first {
					opened.Done()
					first = false
				}
				if err != nil {
					if sctx.Err() == nil {
						select {
						case streams.err <- fmt.Errorf("stream %d: %w", i, err):
						default:
						}
					}
					return
				}
				streams.msgs.Add(1)
			}
		}()
	}
	opened.Wait()
	if err := forEach(ctx, cfg.Workers, cfg.Workloads, func(i int) error {
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, err := p.clients[i%cfg.Conns].GetMetrics(ctx, p.reqs[i])
			if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}); err != nil {
		return nil, fmt.Errorf("first values: %w", err)
	}
	return streams, nil
}

// workerResult is what one worker of the measurement saw.
type workerResult struct {
	lat  [3][]time.Duration
	lag  []time.Duration
	err  error
	rpcs int
}

// measure runs cfg.Workers workers from start for cfg.Duration, each
// polling the next workload in turn, at cfg.Rate in total when it is set.
func (p *loadPlan) measure(ctx context.Context, start time.Time) []workerResult {
	cfg := p.cfg
	results := make([]workerResult, cfg.Workers)
	var next atomic.Int64
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			var every time.Duration
			if cfg.Rate > 0 {
				every = time.Duration(float64(cfg.Workers) / cfg.Rate * float64(time.Second))
			}
			due := start.Add(time.Duration(w) * every / time.Duration(cfg.Workers))
			for {
				now := time.Now()
				if every > 0 {
					wait := due.Sub(now)
					if wait > 0 {
						time.Sleep(wait)
						now = time.Now()
					}
					r.lag = append(r.lag, max(0, -wait))
					due = due.Add(every)
				}
				if now.After(end) {
					return
				}
				i := int(next.Add(1)-1) % cfg.Workloads
				if r.err = p.poll(ctx, r, i); r.err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return results
}

// poll is one poll of workload i, KEDA's three calls, timed into r.
func (p *loadPlan) poll(ctx context.Context, r *workerResult, i int) error {
	c := p.clients[i%p.cfg.Conns]
	for m := range pollMethods {
		t0 := time.Now()
		var err error
		switch m {
		case 0:
			var spec *pb.GetMetricSpecResponse
			if spec, err = c.GetMetricSpec(ctx, p.refs[i]); err == nil && spec.MetricSpecs[0].TargetSizeFloat != 10 {
				err = fmt.Errorf("GetMetricSpec(%s) target %g, want 10", p.refs[i].Name, spec.MetricSpecs[0].TargetSizeFloat)
			}
		case 1:
			var m *pb.GetMetricsResponse
			if m, err = c.GetMetrics(ctx, p.reqs[i]); err == nil {
				if v := m.MetricValues[0].MetricValueFloat; v != 0 && v != SyntheticValue(i) {
					err = fmt.Errorf("GetMetrics(%s) = %g, want %g or 0", p.refs[i].Name, v, SyntheticValue(i))
				}
			}
		case 2:
			_, err = c.IsActive(ctx, p.refs[i])
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pollMethods[m], err)
		}
		r.lat[m] = append(r.lat[m], time.Since(t0))
		r.rpcs++
	}
	return nil
}

// add summarises the workers' latencies, lags and calls into r, and
// returns their errors.
func (r *LoadResult) add(results []workerResult) (errs []error) {
	var all, lags []time.Duration
	for m, name := range pollMethods {
		var d []time.Duration
		for _, w := range results {
			d = append(d, w.lat[m]...)
		}
		all = append(all, d...)
		r.ByMethod[name] = summarise(d)
	}
	for _, w := range results {
		r.RPCs += w.rpcs
		lags = append(lags, w.lag...)
		if w.err != nil {
			errs = append(errs, w.err)
		}
	}
	r.All = summarise(all)
	r.LagP99 = summarise(lags).P99
	return errs
}

// rates derives the throughput and the server's CPU from the counts.
func (r *LoadResult) rates() {
	r.Throughput = float64(r.RPCs) / r.Elapsed.Seconds()
	r.ServerCores = r.ServerCPU.Seconds() / r.Elapsed.Seconds()
	if r.RPCs > 0 {
		r.ServerCPUPerRPC = r.ServerCPU / time.Duration(r.RPCs)
	}
}

// forEach calls fn for 0..n-1 on workers goroutines and returns the first
// error.
func forEach(ctx context.Context, workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = fmt.Errorf("%d: %w", i, err) })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
