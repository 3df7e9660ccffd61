package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

var (
	requests1m = queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	gpu1m      = queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}
)

// values returns Instant's samples as a map, failing the test on an error.
func values(t *testing.T, c *Cluster, shape queries.Shape, at time.Time) map[string]float64 {
	t.Helper()
	samples, err := c.Instant(context.Background(), shape, at)
	if err != nil {
		t.Fatalf("instant %s: %v", shape, err)
	}
	out := make(map[string]float64, len(samples))
	for _, s := range samples {
		if _, dup := out[s.Workload.String()]; dup {
			t.Fatalf("instant %s: %s twice", shape, s.Workload)
		}
		out[s.Workload.String()] = s.Value
	}
	return out
}

func sameValues(got, want map[string]float64) bool {
	return maps.EqualFunc(got, want, approx)
}

func TestClusterRequests(t *testing.T) {
	c, err := NewCluster(
		Workload{Key: key("shop", "cart"), Traffic: Steady(25), Replicas: 3},
		Workload{Key: key("shop", "scaled-to-zero"), Traffic: Steady(2), Replicas: 0},
		Workload{Key: key("nb", "quiet"), Traffic: Idle(time.Minute, time.Hour, 5), Replicas: 1},
		Workload{Key: key("nb", "unused"), Traffic: Off(), Replicas: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	// A quiet workload has a series with 0, a scaled-to-zero one shows its
	// demand, one that never had traffic has no series.
	want := map[string]float64{"shop/cart": 25, "shop/scaled-to-zero": 2, "nb/quiet": 0}
	if got := values(t, c, requests1m, midnight.Add(30*time.Minute)); !sameValues(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Workloads are answered sorted by key.
	samples, _ := c.Instant(context.Background(), requests1m, midnight)
	var keys []string
	for _, s := range samples {
		keys = append(keys, s.Workload.String())
	}
	if got, want := fmt.Sprint(keys), "[nb/quiet shop/cart shop/scaled-to-zero]"; got != want {
		t.Errorf("order: got %s, want %s", got, want)
	}
}

// TestClusterGPU checks the gpu signal with 0, 1 and 3 replicas against
// hand-computed values: min(100·replicas, 100·busy), busy being the mean
// number of replicas' worth of GPU work over the window.
func TestClusterGPU(t *testing.T) {
	replay, err := Replay(tinyTrace(t), ReplayOptions{Start: midnight})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		w        Workload
		at       time.Time
		window   time.Duration
		want     [3]float64 // with 0, 1, 3 replicas; NaN = no series
		requests float64    // req/s, whatever the replicas
	}{
		// 2 req/s × 0.6 s = 1.2 replicas busy.
		{"steady overloaded", Workload{Traffic: Steady(2), GPUsPerReplica: 1, GPUTimePerRequest: 600 * time.Millisecond},
			midnight, time.Minute, [3]float64{math.NaN(), 100, 120}, 2},
		// 0.5 req/s × 0.6 s = 0.3 replicas busy.
		{"steady light", Workload{Traffic: Steady(0.5), GPUsPerReplica: 2, GPUTimePerRequest: 600 * time.Millisecond},
			midnight, time.Minute, [3]float64{math.NaN(), 30, 30}, 0.5},
		{"no GPU time", Workload{Traffic: Steady(1), GPUsPerReplica: 1},
			midnight, time.Minute, [3]float64{math.NaN(), 0, 0}, 1},
		{"no GPUs", Workload{Traffic: Steady(2), GPUTimePerRequest: time.Second},
			midnight, time.Minute, [3]float64{math.NaN(), math.NaN(), math.NaN()}, 2},
		// Tiny trace (0, 10s]: 2 + 2.5 busy seconds in 10.
		{"replay 10s", Workload{Traffic: replay, GPUsPerReplica: 1},
			midnight.Add(10 * time.Second), 10 * time.Second, [3]float64{math.NaN(), 45, 45}, 0.2},
		// Tiny trace (0, 2s]: 2 + 1 busy seconds in 2.
		{"replay 2s", Workload{Traffic: replay, GPUsPerReplica: 1},
			midnight.Add(2 * time.Second), 2 * time.Second, [3]float64{math.NaN(), 100, 150}, 0.5},
		// Tiny trace (5s, 15s]: 5 busy seconds in 10.
		{"replay 5-15s", Workload{Traffic: replay, GPUsPerReplica: 4},
			midnight.Add(15 * time.Second), 10 * time.Second, [3]float64{math.NaN(), 50, 50}, 0.1},
		{"idle", Workload{Traffic: Idle(time.Minute, time.Hour, 1), GPUsPerReplica: 1, GPUTimePerRequest: time.Second},
			midnight.Add(30 * time.Minute), time.Minute, [3]float64{math.NaN(), 0, 0}, 0},
	}
	for _, tt := range tests {
		for i, replicas := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/%d replicas", tt.name, replicas), func(t *testing.T) {
				w := tt.w
				w.Key = key("ml", "model")
				c, err := NewCluster(w)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.SetReplicas(w.Key, replicas); err != nil {
					t.Fatal(err)
				}
				shape := queries.Shape{Signal: queries.SignalGPU, Window: tt.window}
				got := values(t, c, shape, tt.at)
				want := map[string]float64{"ml/model": tt.want[i]}
				if math.IsNaN(tt.want[i]) {
					want = map[string]float64{}
				}
				if !sameValues(got, want) {
					t.Errorf("gpu: got %v, want %v", got, want)
				}
				shape.Signal = queries.SignalRequests
				if got := values(t, c, shape, tt.at)["ml/model"]; !approx(got, tt.requests) {
					t.Errorf("requests: got %v req/s, want %v", got, tt.requests)
				}
			})
		}
	}
}

func TestClusterBadShapes(t *testing.T) {
	c, _ := NewCluster(Workload{Key: key("a", "b"), Traffic: Steady(1), Replicas: 1})
	c.HandleQuery(`sum(up{namespace="a"})`, func(at time.Time) float64 { return float64(at.Minute()) })
	c.HandleQuery(`absent_series{namespace="a"}`, func(time.Time) float64 { return math.NaN() })
	at := midnight.Add(7 * time.Minute)

	tests := []struct {
		name    string
		shape   queries.Shape
		want    []queries.Sample
		wantErr string
	}{
		{"requests window 0", queries.Shape{Signal: queries.SignalRequests}, nil,
			"query requests[0s]: bad_data: window = 0s, must be > 0"},
		{"gpu negative window", queries.Shape{Signal: queries.SignalGPU, Window: -time.Second}, nil,
			"query gpu[0s]: bad_data: window = -1s, must be > 0"},
		{"unknown signal", queries.Shape{Signal: "cpu", Window: time.Minute}, nil,
			`query cpu[1m]: bad_data: unknown signal "cpu"`},
		{"unregistered query", queries.Shape{Signal: queries.SignalQuery, Expr: `rate(x[1m])`}, nil,
			"query query:rate(x[1m]): bad_data: the simulator evaluates only the requests and gpu signals and queries registered with HandleQuery"},
		{"registered query", queries.Shape{Signal: queries.SignalQuery, Expr: `sum(up{namespace="a"})`},
			[]queries.Sample{{Value: 7}}, ""},
		{"query without series", queries.Shape{Signal: queries.SignalQuery, Expr: `absent_series{namespace="a"}`}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Instant(context.Background(), tt.shape, at)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
				return
			}
			var qe *queries.QueryError
			if !errors.As(err, &qe) || qe.Kind != "bad_data" || qe.Shape != tt.shape {
				t.Fatalf("got error %#v, want a bad_data *queries.QueryError for %s", err, tt.shape)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("got error %q, want %q", err, tt.wantErr)
			}
		})
	}

	t.Run("handler removed", func(t *testing.T) {
		c.HandleQuery(`sum(up{namespace="a"})`, nil)
		_, err := c.Instant(context.Background(), queries.Shape{Signal: queries.SignalQuery, Expr: `sum(up{namespace="a"})`}, at)
		if qe := (*queries.QueryError)(nil); !errors.As(err, &qe) || qe.Kind != "bad_data" {
			t.Errorf("got error %v, want bad_data", err)
		}
	})
}

func TestClusterFault(t *testing.T) {
	c, _ := NewCluster(Workload{Key: key("a", "b"), Traffic: Steady(1), Replicas: 1})
	ctx := context.Background()
	boom := errors.New("connection refused")
	refused := &queries.QueryError{Kind: "http_status", Status: 503, Err: errors.New("overloaded")}
	shaped := &queries.QueryError{Shape: queries.Shape{Signal: queries.SignalGPU, Window: 5 * time.Minute}, Kind: "timeout", Err: errors.New("slow")}
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name     string
		ctx      context.Context
		fault    error
		wantKind string
		wantErr  error // errors.Is
		wantMsg  string
	}{
		{"plain error", ctx, boom, "unreachable", boom, "query requests[1m]: unreachable: connection refused"},
		{"deadline", ctx, fmt.Errorf("get: %w", context.DeadlineExceeded), "timeout", context.DeadlineExceeded,
			"query requests[1m]: timeout: get: context deadline exceeded"},
		{"query error with the shape filled in", ctx, refused, "http_status", refused.Err, "query requests[1m]: http_status (HTTP 503): overloaded"},
		{"query error as is", ctx, shaped, "timeout", shaped, "query gpu[5m]: timeout: slow"},
		{"canceled context", canceled, nil, "canceled", context.Canceled, "query requests[1m]: canceled: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.SetFault(tt.fault)
			defer c.SetFault(nil)
			got, err := c.Instant(tt.ctx, requests1m, midnight)
			if got != nil {
				t.Errorf("got samples %v with the error, want none", got)
			}
			var qe *queries.QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("got error %#v, want a *queries.QueryError", err)
			}
			if qe.Kind != tt.wantKind {
				t.Errorf("kind: got %q, want %q", qe.Kind, tt.wantKind)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want one that is %v", err, tt.wantErr)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("got error %q, want %q", err, tt.wantMsg)
			}
		})
	}

	t.Run("cleared", func(t *testing.T) {
		c.SetFault(boom)
		c.SetFault(nil)
		if got, want := values(t, c, requests1m, midnight), map[string]float64{"a/b": 1}; !sameValues(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestClusterQueries(t *testing.T) {
	c, _ := NewCluster(Workload{Key: key("a", "b"), Traffic: Steady(1), Replicas: 1})
	ctx := context.Background()
	query := queries.Shape{Signal: queries.SignalQuery, Expr: "x"}
	for range 3 {
		c.Instant(ctx, requests1m, midnight)
	}
	c.Instant(ctx, gpu1m, midnight)
	c.Instant(ctx, query, midnight) // fails: not registered
	c.SetFault(errors.New("down"))
	c.Instant(ctx, gpu1m, midnight)

	got := c.Queries()
	want := map[queries.Shape]int{requests1m: 3, gpu1m: 2, query: 1}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got[requests1m] = 100
	if n := c.Queries()[requests1m]; n != 3 {
		t.Errorf("after changing the returned map: got %d, want 3", n)
	}
}

func TestClusterWorkloads(t *testing.T) {
	c, err := NewCluster(
		Workload{Key: key("b", "x"), Traffic: Steady(1), Replicas: 2},
		Workload{Key: key("a", "y"), Traffic: Off(), GPUsPerReplica: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReplicas(key("a", "y"), 4); err != nil {
		t.Fatal(err)
	}
	ws := c.Workloads()
	if len(ws) != 2 || ws[0].Key != key("a", "y") || ws[0].Replicas != 4 || ws[1].Key != key("b", "x") || ws[1].Replicas != 2 {
		t.Errorf("got %+v, want a/y with 4 replicas, b/x with 2", ws)
	}
	if n, ok := c.Replicas(key("b", "x")); n != 2 || !ok {
		t.Errorf("replicas of b/x: got %d, %v, want 2, true", n, ok)
	}
	if n, ok := c.Replicas(key("b", "nope")); n != 0 || ok {
		t.Errorf("replicas of b/nope: got %d, %v, want 0, false", n, ok)
	}

	errs := []struct {
		name string
		err  error
		want string
	}{
		{"unknown workload", c.SetReplicas(key("b", "nope"), 1), "set replicas of b/nope: no such workload"},
		{"negative replicas", c.SetReplicas(key("b", "x"), -1), "set replicas of b/x: -1, must be >= 0"},
		{"duplicate", c.Add(Workload{Key: key("b", "x"), Traffic: Steady(1)}), "add workload b/x: already exists"},
		{"no traffic", c.Add(Workload{Key: key("b", "z")}), "add workload b/z: no traffic"},
		{"no name", c.Add(Workload{Key: key("b", ""), Traffic: Steady(1)}), `add workload "b/": namespace and name must not be empty`},
		{"negative replicas on add", c.Add(Workload{Key: key("b", "z"), Traffic: Steady(1), Replicas: -1}), "add workload b/z: replicas = -1, must be >= 0"},
		{"negative GPUs", c.Add(Workload{Key: key("b", "z"), Traffic: Steady(1), GPUsPerReplica: -1}), "add workload b/z: GPUs per replica = -1, must be >= 0"},
		{"negative GPU time", c.Add(Workload{Key: key("b", "z"), Traffic: Steady(1), GPUTimePerRequest: -time.Second}), "add workload b/z: GPU time per request = -1s, must be >= 0"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || tt.err.Error() != tt.want {
				t.Errorf("got error %v, want %q", tt.err, tt.want)
			}
		})
	}
	if _, err := NewCluster(Workload{Key: key("a", "a")}); err == nil || err.Error() != "add workload a/a: no traffic" {
		t.Errorf("NewCluster: got error %v, want %q", err, "add workload a/a: no traffic")
	}
}

// TestClusterConcurrent runs queries, scaling, faults and additions at once;
// run it with -race.
func TestClusterConcurrent(t *testing.T) {
	c := DemoCluster(midnight, 1)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				at := midnight.Add(time.Duration(g*200+i) * time.Second)
				for _, shape := range []queries.Shape{requests1m, gpu1m} {
					if _, err := c.Instant(ctx, shape, at); err != nil {
						var qe *queries.QueryError
						if !errors.As(err, &qe) {
							t.Errorf("got error %v, want a *queries.QueryError", err)
						}
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			_ = c.SetReplicas(key("ml", "llm-code"), i%5)
			c.Replicas(key("ml", "llm-code"))
			c.Workloads()
			c.Queries()
		}
	})
	wg.Go(func() {
		for i := range 50 {
			c.SetFault(errors.New("flaky"))
			c.SetFault(nil)
			c.HandleQuery("q", func(time.Time) float64 { return float64(i) })
			_ = c.Add(Workload{Key: key("extra", fmt.Sprint(i)), Traffic: Steady(1), Replicas: 1})
		}
	})
	wg.Wait()
	if got, want := c.Queries()[requests1m], 8*200; got != want {
		t.Errorf("requests queries: got %d, want %d", got, want)
	}
	if got, want := len(c.Workloads()), len(DemoSpecs())+50; got != want {
		t.Errorf("workloads: got %d, want %d", got, want)
	}
}
