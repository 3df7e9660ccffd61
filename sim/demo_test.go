package sim

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

func TestDemoSpecs(t *testing.T) {
	specs := DemoSpecs()
	ws := DemoCluster(midnight, 1).Workloads()
	if len(specs) != 10 || len(ws) != len(specs) {
		t.Fatalf("got %d specs and %d workloads, want 10 of each", len(specs), len(ws))
	}
	namespaces := map[string]bool{}
	for i, s := range specs {
		namespaces[s.Key.Namespace] = true
		if ws[i].Key != s.Key {
			t.Errorf("spec %d is for %s, workload %d is %s, want the same order", i, s.Key, i, ws[i].Key)
		}
		if ws[i].GPUsPerReplica != s.GPUsPerReplica {
			t.Errorf("%s: cluster has %d GPUs per replica, spec %d", s.Key, ws[i].GPUsPerReplica, s.GPUsPerReplica)
		}
		if s.Signal != queries.SignalRequests && s.Signal != queries.SignalGPU && !s.Signal.ModelServer() {
			t.Errorf("%s: signal %q, want requests, gpu or a model server's", s.Key, s.Signal)
		}
		if (s.Signal == queries.SignalGPU || s.Signal.ModelServer()) && (s.GPUsPerReplica == 0 || s.MinReplicas == 0) {
			t.Errorf("%s: %s signal with %d GPUs and %d min replicas, want GPUs and min >= 1 (no series at zero replicas)",
				s.Key, s.Signal, s.GPUsPerReplica, s.MinReplicas)
		}
		if s.Signal.ModelServer() != (s.Server != "") || (s.Server != "" && ws[i].Server == nil) {
			t.Errorf("%s: %s signal with server %q and model %v, want a server exactly with a model-server signal", s.Key, s.Signal, s.Server, ws[i].Server)
		}
		if s.SameTraceAs != (queries.WorkloadKey{}) && ws[i].Server == nil {
			t.Errorf("%s: compared with %s but no batching server", s.Key, s.SameTraceAs)
		}
		if s.Target <= 0 || s.Window <= 0 || s.MinReplicas < 0 || s.MaxReplicas < max(1, s.MinReplicas) || s.About == "" {
			t.Errorf("%s: got %+v, want target, window, about and 0 <= min <= max, max >= 1", s.Key, s)
		}
		if (s.MinReplicas == 0) != (s.IdleAfter > 0) {
			t.Errorf("%s: min replicas %d with idle after %v, want idle after exactly when min is 0", s.Key, s.MinReplicas, s.IdleAfter)
		}
	}
	if len(namespaces) != 3 {
		t.Errorf("got namespaces %v, want 3", namespaces)
	}
	if !slices.IsSortedFunc(specs, func(a, b DemoSpec) int { return compareKeys(a.Key, b.Key) }) {
		t.Errorf("specs are not sorted by key")
	}
}

// TestDemoTimeline checks what the demo shows at a few instants after start.
func TestDemoTimeline(t *testing.T) {
	start := midnight.Add(10 * time.Hour)
	c := DemoCluster(start, 1)
	m := time.Minute
	tests := []struct {
		name   string
		shape  queries.Shape
		at     time.Duration
		key    string
		want   float64 // NaN: no series
		replic int     // set before the query; 0: leave
	}{
		{"alice works at first", requests1m, 5 * m, "notebooks/alice-notebook", 0.5, 0},
		{"alice stops after 20m", requests1m, 25 * m, "notebooks/alice-notebook", 0, 0},
		{"alice is back after 2h", requests1m, 125 * m, "notebooks/alice-notebook", 0.5, 0},
		{"bob never has a series", requests1m, 5 * m, "notebooks/bob-notebook", math.NaN(), 0},
		{"dev-llm quiet at first", requests1m, 5 * m, "ml/dev-llm", 0, 0},
		{"dev-llm used at 30-35m", requests1m, 32 * m, "ml/dev-llm", 0.2, 0},
		// 0.2 req/s × 2 s of GPU.
		{"dev-llm GPU in use", gpu1m, 32 * m, "ml/dev-llm", 40, 0},
		{"cart", requests1m, 5 * m, "shop/cart", 25, 0},
		// 40 + 30 cos(2π (10h - 14h)/24h) = 40 + 30 cos(-π/3) = 55 at 10:00,
		// the middle of the window.
		{"checkout by day", queries.Shape{Signal: queries.SignalRequests, Window: time.Second}, 500 * time.Millisecond, "shop/checkout", 55, 0},
		// The conversation trace's first minute: 190 arrivals after the first.
		{"chat first minute", requests1m, m, "ml/llm-chat", 190.0 / 60, 0},
		// Over an hour the chat trace averages 19,366 req/h: 3 replicas at 2.5.
		{"chat hour", queries.Shape{Signal: queries.SignalRequests, Window: time.Hour}, 60 * m, "ml/llm-chat", 19366.0 / 3600, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := queries.WorkloadKey{}
			for _, s := range DemoSpecs() {
				if s.Key.String() == tt.key {
					k = s.Key
				}
			}
			if tt.replic > 0 {
				if err := c.SetReplicas(k, tt.replic); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := values(t, c, tt.shape, start.Add(tt.at))[tt.key]
			switch {
			case math.IsNaN(tt.want) && ok:
				t.Errorf("got %v, want no series", got)
			case !math.IsNaN(tt.want) && !ok:
				t.Errorf("got no series, want %v", tt.want)
			case ok && math.Abs(got-tt.want) > 1e-5*max(1, tt.want):
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDemoSeeded(t *testing.T) {
	a, b, other := DemoCluster(midnight, 7), DemoCluster(midnight, 7), DemoCluster(midnight, 8)
	differ := false
	for i := range 60 {
		at := midnight.Add(time.Duration(i) * time.Minute)
		va, vb, vo := values(t, a, requests1m, at), values(t, b, requests1m, at), values(t, other, requests1m, at)
		if !sameValues(va, vb) {
			t.Fatalf("at %v: same seed, got %v and %v", at, va, vb)
		}
		if !sameValues(va, vo) {
			differ = true
		}
	}
	if !differ {
		t.Errorf("seeds 7 and 8 gave the same hour of traffic, want different bursts")
	}
	if _, err := a.Instant(context.Background(), gpu1m, midnight); err != nil {
		t.Fatal(err)
	}
}

// TestDemoTwins checks that the workloads compared in the demo's summary
// replay the same trace on the same server: with the same replicas they
// show the same values, and a batching server's GPU is busy at low load.
func TestDemoTwins(t *testing.T) {
	start := midnight.Add(10 * time.Hour)
	c := DemoCluster(start, 1)
	for _, s := range DemoSpecs() {
		if s.SameTraceAs == (queries.WorkloadKey{}) {
			continue
		}
		for _, sig := range []queries.Signal{queries.SignalQueue, queries.SignalRunning, queries.SignalKVCache, queries.SignalGPU} {
			shape := queries.Shape{Signal: sig, Server: queries.ServerAuto, Window: time.Minute}
			if sig == queries.SignalGPU {
				shape.Server = ""
			}
			v := values(t, c, shape, start.Add(20*time.Minute))
			a, okA := v[s.Key.String()]
			b, okB := v[s.SameTraceAs.String()]
			if !okA || !okB || a != b {
				t.Errorf("%s of %s = %v (%v), of %s = %v (%v); want the same", sig, s.Key, a, okA, s.SameTraceAs, b, okB)
			}
		}
	}
	// The chat server on 3 replicas averages about 29 requests in flight:
	// under half its KV cache, its GPUs look nearly saturated.
	at := start.Add(30 * time.Minute)
	kv := values(t, c, queries.Shape{Signal: queries.SignalKVCache, Server: queries.ServerVLLM, Window: 10 * time.Minute}, at)["ml/llm-chat"]
	gpu := values(t, c, queries.Shape{Signal: queries.SignalGPU, Window: 10 * time.Minute}, at)["ml/llm-chat"]
	if kv/3 > 50 || gpu/3 < 99 {
		t.Errorf("chat on 3 replicas: KV cache %.1f%% and GPU %.1f%% per replica; want under 50%% and over 99%%", kv/3, gpu/3)
	}
}
