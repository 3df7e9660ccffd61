package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/common/config"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/scaler"
)

// SideBySideConfig is one comparison against a store loaded with History.
type SideBySideConfig struct {
	// URL is the store's base URL.
	URL     string
	History History
	// Concurrency is how many per-object queries are in flight at once;
	// default 16.
	Concurrency int
	// PerObjectRounds and BatchedRounds are how many measured evaluation
	// rounds each side runs; defaults 3 and 20.
	PerObjectRounds, BatchedRounds int
	// Idle is how long the store's idle CPU use is measured; default 3s.
	Idle time.Duration
	// Uncompressed also measures the per-object side with compression off,
	// which KEDA cannot do: most of the store's CPU per query goes into
	// starting a gzip stream, so this bounds the ratio from below.
	Uncompressed bool
}

func (c *SideBySideConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.PerObjectRounds == 0 {
		c.PerObjectRounds = 3
	}
	if c.BatchedRounds == 0 {
		c.BatchedRounds = 20
	}
	if c.Idle == 0 {
		c.Idle = 3 * time.Second
	}
}

// Phase is what one side cost per evaluation round, averaged over Rounds.
type Phase struct {
	Rounds int
	// Per round: HTTP queries, bytes written and read on the wire, and
	// response body bytes.
	Queries, Sent, Received, Body float64
	// Wall is the mean wall time of a round; WallMax the slowest.
	Wall, WallMax time.Duration
	// StoreCPU is the store's CPU seconds per round (process_cpu_seconds_total
	// before and after, divided by Rounds); StoreCPUNet subtracts what the
	// store used idle over the same wall time.
	StoreCPU, StoreCPUNet float64
}

// SideBySideResult compares both sides for one store and workload count.
type SideBySideResult struct {
	Workloads int
	PerObject Phase
	Batched   Phase
	// PerObjectUncompressed is PerObject without gzip, when asked for.
	PerObjectUncompressed Phase
	// FirstTick is the batched collector's first tick, which also recovers
	// idle clocks from history with one range query per shape.
	FirstTick Phase
	// IdleCPU is the store's CPU seconds per second while nobody queries it.
	IdleCPU float64
	// Checked is the number of workloads whose values matched on both sides
	// and the expected rate, in every round.
	Checked int
}

// Ratio returns per-object over batched, for queries, store CPU (net of
// idle), bytes on the wire and wall time per round.
func (r SideBySideResult) Ratio() (queries, cpu, bytes, wall float64) {
	return r.PerObject.Queries / r.Batched.Queries,
		r.PerObject.StoreCPUNet / r.Batched.StoreCPUNet,
		(r.PerObject.Sent + r.PerObject.Received) / (r.Batched.Sent + r.Batched.Received),
		r.PerObject.Wall.Seconds() / r.Batched.Wall.Seconds()
}

// RunSideBySide evaluates every workload of cfg.History at its last sample,
// per object as KEDA does and batched as ebb's collector does, checks that
// both give every workload its expected value, and measures each side.
func RunSideBySide(ctx context.Context, cfg SideBySideConfig) (SideBySideResult, error) {
	cfg.setDefaults()
	n := cfg.History.Workloads
	at := cfg.History.At()
	res := SideBySideResult{Workloads: n}
	want := make([]float64, n)
	perObjectQueries := make([]string, n)
	for i := range n {
		want[i] = ExpectedRate(i)
		perObjectQueries[i] = KEDAQuery(promdata.Namespace(i), promdata.Name(i))
	}

	// ebb: the real collector on the real Prometheus source, its clock
	// stopped at the evaluation time.
	// Its HTTP client is the one `ebb serve` builds, dialing through the
	// counter.
	batchedTraffic := &Traffic{}
	client, err := config.NewClientFromConfig(config.DefaultHTTPClientConfig, "ebb_prometheus", config.WithDialContextFunc(batchedTraffic.Dial))
	if err != nil {
		return res, err
	}
	client.Transport = batchedTraffic.Wrap(client.Transport)
	src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: cfg.URL, Client: client})
	if err != nil {
		return res, err
	}
	clk := clock.NewMock()
	clk.Set(at)
	collector, err := scaler.NewCollector(scaler.Config{Source: src, Clock: clk})
	if err != nil {
		return res, err
	}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	interests := make([]*scaler.Interest, n)
	for i := range interests {
		interests[i] = collector.Register(shape, queries.WorkloadKey{Namespace: promdata.Namespace(i), Name: promdata.Name(i)}, 0, 0)
	}
	tick := func() ([]float64, error) {
		collector.Refresh(ctx)
		snap := collector.Snapshot()
		if err, _ := snap.ShapeErr(shape); err != nil {
			return nil, err
		}
		got := make([]float64, n)
		for i, in := range interests {
			o, ok := snap.Lookup(in)
			if !ok || !o.OK {
				return nil, fmt.Errorf("batched: %s: no value (%+v)", in.Workload(), o)
			}
			got[i] = o.Value
		}
		return got, nil
	}

	// KEDA: one query per workload with KEDA's timeout, through a transport
	// like the one KEDA's scaler builds (Go's defaults: keep-alive, and
	// responses gzip-compressed on request). KEDA builds one per
	// ScaledObject; here one is shared with an idle pool as large as the
	// concurrency, so connections are reused, which is kinder to the store
	// (see README.md).
	perObjectTraffic := &Traffic{}
	perObjectTransport := &http.Transport{DialContext: perObjectTraffic.Dial, MaxIdleConnsPerHost: cfg.Concurrency}
	perObject := &PerObject{URL: cfg.URL, Client: &http.Client{Timeout: KEDATimeout, Transport: perObjectTraffic.Wrap(perObjectTransport)}, Concurrency: cfg.Concurrency}
	round := func() ([]float64, error) { return perObject.Round(ctx, perObjectQueries, at) }

	// Warm up both sides: the collector's first tick recovers idle clocks
	// from history; the per-object side opens its connections.
	res.FirstTick, err = measure(ctx, cfg.URL, batchedTraffic, 1, 0, func() error {
		got, err := tick()
		if err != nil {
			return err
		}
		return compareValues("batched first tick", got, want)
	})
	if err != nil {
		return res, err
	}
	if got, err := round(); err != nil {
		return res, err
	} else if err := compareValues("per-object warm-up", got, want); err != nil {
		return res, err
	}

	cpu0, err := storeCPU(ctx, cfg.URL)
	if err != nil {
		return res, err
	}
	time.Sleep(cfg.Idle)
	cpu1, err := storeCPU(ctx, cfg.URL)
	if err != nil {
		return res, err
	}
	res.IdleCPU = (cpu1 - cpu0) / cfg.Idle.Seconds()

	var lastBatched, lastPerObject []float64
	res.Batched, err = measure(ctx, cfg.URL, batchedTraffic, cfg.BatchedRounds, res.IdleCPU, func() error {
		got, err := tick()
		if err != nil {
			return err
		}
		lastBatched = got
		return compareValues("batched", got, want)
	})
	if err != nil {
		return res, err
	}
	time.Sleep(time.Second)
	res.PerObject, err = measure(ctx, cfg.URL, perObjectTraffic, cfg.PerObjectRounds, res.IdleCPU, func() error {
		got, err := round()
		if err != nil {
			return err
		}
		lastPerObject = got
		return compareValues("per-object", got, want)
	})
	if err != nil {
		return res, err
	}
	if err := compareValues("batched against per-object", lastBatched, lastPerObject); err != nil {
		return res, err
	}
	if cfg.Uncompressed {
		plainTraffic := &Traffic{}
		plain := &PerObject{URL: cfg.URL, Concurrency: cfg.Concurrency, Client: &http.Client{Timeout: KEDATimeout, Transport: plainTraffic.Wrap(
			&http.Transport{DialContext: plainTraffic.Dial, MaxIdleConnsPerHost: cfg.Concurrency, DisableCompression: true})}}
		if _, err := plain.Round(ctx, perObjectQueries, at); err != nil { // opens the connections
			return res, err
		}
		time.Sleep(time.Second)
		res.PerObjectUncompressed, err = measure(ctx, cfg.URL, plainTraffic, cfg.PerObjectRounds, res.IdleCPU, func() error {
			got, err := plain.Round(ctx, perObjectQueries, at)
			if err != nil {
				return err
			}
			return compareValues("per-object uncompressed", got, want)
		})
		if err != nil {
			return res, err
		}
	}
	res.Checked = n
	return res, nil
}

// measure runs round rounds times and returns their mean cost.
func measure(ctx context.Context, storeURL string, t *Traffic, rounds int, idleCPU float64, round func() error) (Phase, error) {
	p := Phase{Rounds: rounds}
	cpu0, err := storeCPU(ctx, storeURL)
	if err != nil {
		return p, err
	}
	t0 := t.Snapshot()
	var total time.Duration
	for range rounds {
		start := time.Now()
		if err := round(); err != nil {
			return p, err
		}
		d := time.Since(start)
		total += d
		p.WallMax = max(p.WallMax, d)
	}
	cpu1, err := storeCPU(ctx, storeURL)
	if err != nil {
		return p, err
	}
	d := t.Snapshot().Sub(t0)
	r := float64(rounds)
	p.Queries, p.Sent, p.Received, p.Body = float64(d.Requests)/r, float64(d.Sent)/r, float64(d.Received)/r, float64(d.Body)/r
	p.Wall = total / time.Duration(rounds)
	p.StoreCPU = (cpu1 - cpu0) / r
	p.StoreCPUNet = max(0, p.StoreCPU-idleCPU*p.Wall.Seconds())
	return p, nil
}

// compareValues fails unless got[i] equals want[i] for every i, within a
// relative tolerance of 1e-9 (the two sides sum the same series in
// different orders).
func compareValues(what string, got, want []float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d values, want %d", what, len(got), len(want))
	}
	var examples []string
	mismatches := 0
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d <= 1e-9*max(1, math.Abs(want[i])) {
			continue // NaN fails this test too
		}
		mismatches++
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("%s/%s = %g, want %g", promdata.Namespace(i), promdata.Name(i), got[i], want[i]))
		}
	}
	if mismatches > 0 {
		return fmt.Errorf("%s: %d of %d workloads differ: %s", what, mismatches, len(want), strings.Join(examples, "; "))
	}
	return nil
}

// storeCPU scrapes the store's own /metrics for process_cpu_seconds_total.
func storeCPU(ctx context.Context, storeURL string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, storeURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(storeURL + "/metrics: no process_cpu_seconds_total")
}
