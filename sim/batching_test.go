package sim

import (
	"math"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// TestBatchingServer steps a server by hand: one replica runs at most 4
// requests (MaxRunning 4; its KV cache would hold 10), each for 2 s, and
// 3 arrive every second.
//
//	second 1: 3 admitted: running 3, queue 0
//	second 2: 1.5 finish, 2.5 admitted: running 4, queue 0.5
//	second 3: 2 finish, 2 admitted: running 4, queue 1.5
//	second 4: the same: running 4, queue 2.5 (it grows by 1 a second)
//	second 5, on 2 replicas: 2 finish, 5.5 admitted: running 7.5, queue 0
func TestBatchingServer(t *testing.T) {
	t.Parallel()
	srv := &BatchingServer{Kind: queries.ServerVLLM, MaxRunning: 4, KVCacheTokens: 1000, KVTokensPerRequest: 100,
		RequestSeconds: 2, PrefillSeconds: 0.5}
	k := key("ml", "llm")
	c, err := NewCluster(Workload{Key: k, Traffic: Steady(3), Replicas: 1, GPUsPerReplica: 1, Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Serving(k, midnight); !ok { // history starts here
		t.Fatal("no batching server")
	}
	shape := func(sig queries.Signal, srv queries.Server) queries.Shape {
		return queries.Shape{Signal: sig, Server: srv, Window: 2 * time.Second, Quantile: 0.9}
	}
	at := midnight.Add(4 * time.Second)
	for _, tt := range []struct {
		shape queries.Shape
		want  float64
	}{
		{shape(queries.SignalQueue, queries.ServerAuto), 2},   // (1.5 + 2.5) / 2
		{shape(queries.SignalRunning, queries.ServerVLLM), 4}, // (4 + 4) / 2
		{shape(queries.SignalKVCache, queries.ServerAuto), 40},
		{shape(queries.SignalTTFT, queries.ServerAuto), 4.0/6 + 0.5}, // queue 4 request-seconds over 6 arrivals
		{queries.Shape{Signal: queries.SignalGPU, Window: 2 * time.Second}, 100 * (1 - math.Exp(-4))},
		{queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerAuto, Window: 4 * time.Second}, (0 + 0.5 + 1.5 + 2.5) / 4},
	} {
		got := values(t, c, tt.shape, at)["ml/llm"]
		if math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s at +4s = %v, want %v", tt.shape, got, tt.want)
		}
	}
	if got := values(t, c, shape(queries.SignalQueue, queries.ServerTGI), at); len(got) != 0 {
		t.Errorf("queue of tgi servers = %v, want none (the server is vLLM)", got)
	}
	if err := c.SetReplicas(k, 2); err != nil {
		t.Fatal(err)
	}
	at = at.Add(time.Second)
	if q, r := values(t, c, queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerAuto, Window: time.Second}, at)["ml/llm"],
		values(t, c, queries.Shape{Signal: queries.SignalRunning, Server: queries.ServerAuto, Window: time.Second}, at)["ml/llm"]; q != 0 || r != 7.5 {
		t.Errorf("on 2 replicas: queue %v, running %v; want 0 and 7.5", q, r)
	}
	st, _ := c.Serving(k, at)
	// Seconds 3 and 4 had a queue of 1 or more; 4.5 request-seconds waited
	// over 15 arrivals.
	if st.Seconds != 5 || st.WaitingSeconds != 2 || st.MeanWait != 300*time.Millisecond {
		t.Errorf("stats = %+v, want 5 s, 2 s waiting, mean wait 300ms", st)
	}
	// A server without pods has no metrics.
	if err := c.SetReplicas(k, 0); err != nil {
		t.Fatal(err)
	}
	if got := values(t, c, shape(queries.SignalQueue, queries.ServerAuto), at.Add(time.Second)); len(got) != 0 {
		t.Errorf("at zero replicas: %v, want no series", got)
	}
}

func TestBatchingServerInvalid(t *testing.T) {
	t.Parallel()
	f := func(s BatchingServer, want string) {
		t.Helper()
		_, err := NewCluster(Workload{Key: key("ml", "llm"), Traffic: Steady(1), Replicas: 1, Server: &s})
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	ok := BatchingServer{Kind: queries.ServerTGI, MaxRunning: 8, KVCacheTokens: 1000, KVTokensPerRequest: 10, RequestSeconds: 1}
	bad := ok
	bad.Kind = queries.ServerAuto
	f(bad, "add workload ml/llm: batching server kind auto: want the server it models")
	bad = ok
	bad.Kind = "ollama"
	f(bad, `add workload ml/llm: batching server: unknown server "ollama", want auto, vllm, tgi, sglang or triton`)
	bad = ok
	bad.MaxRunning = 0
	f(bad, "add workload ml/llm: batching server: max running = 0, must be > 0")
	bad = ok
	bad.PrefillSeconds = 2
	f(bad, "add workload ml/llm: batching server: request 1s with prefill 2s, want 0 <= prefill <= request, request > 0")
}
