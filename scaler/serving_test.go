package scaler

import (
	"context"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/shutdown"
)

// A model server with requests waiting or running is never idle, whatever
// its request rate says: a long generation's requests complete (and are
// counted by Istio) only at the end.
func TestServingModelServerIsNeverIdle(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("ml", "vllm-llama")
	queue := queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerAuto, Window: time.Minute}
	running := queries.Shape{Signal: queries.SignalRunning, Server: queries.ServerVLLM, Window: time.Minute}
	src.Set(reqShape, queries.Sample{Workload: w, Value: 0})
	src.Set(queue, queries.Sample{Workload: w, Value: 0})
	src.Set(running, queries.Sample{Workload: w, Value: 2}) // two long generations
	c, clk := policyCollector(t, src, nil)
	inReq := c.Register(reqShape, w, 0, 0)
	inQueue := c.Register(queue, w, 5, 0) // activation 5: 4 waiting would not be traffic
	inRun := c.Register(running, w, 8, 0)
	c.Refresh(context.Background())
	stepTo(c, clk, t0.Add(30*time.Minute))
	if d := decision(t, c, inRun); !d.Active || d.Reason != shutdown.ReasonServing {
		t.Errorf("running 2 below activation 8 for 30m: %v, want active (serving)", d)
	}
	if d := decision(t, c, inReq); d.Active {
		t.Errorf("requests at 0 for 30m: %v, want idle (its own trigger)", d)
	}
	if d := decision(t, c, inQueue); d.Active {
		t.Errorf("queue at 0 for 30m: %v, want idle", d)
	}
	// The generations finish; 4 requests wait: the queue trigger serves.
	src.Set(running, queries.Sample{Workload: w, Value: 0})
	src.Set(queue, queries.Sample{Workload: w, Value: 4})
	stepTo(c, clk, t0.Add(31*time.Minute))
	if d := decision(t, c, inQueue); !d.Active || d.Reason != shutdown.ReasonServing {
		t.Errorf("4 waiting below activation 5: %v, want active (serving)", d)
	}
	// Nothing in flight: the running trigger was last active at 30m, so it
	// stays up for its idle-after, then goes idle.
	src.Set(queue, queries.Sample{Workload: w, Value: 0})
	stepTo(c, clk, t0.Add(44*time.Minute))
	if d := decision(t, c, inRun); !d.Active || d.Reason != shutdown.ReasonRecent {
		t.Errorf("14m after the last running request: %v, want active (recent)", d)
	}
	stepTo(c, clk, t0.Add(45*time.Minute))
	if d := decision(t, c, inRun); d.Active || d.Reason != shutdown.ReasonIdle {
		t.Errorf("15m after the last running request: %v, want idle", d)
	}
	stepTo(c, clk, t0.Add(47*time.Minute))
	if d := decision(t, c, inQueue); d.Active || d.Reason != shutdown.ReasonIdle {
		t.Errorf("16m after the last waiting request: %v, want idle", d)
	}
}

// activation applies to every model-server signal as to requests and gpu:
// kvcache and ttft are active while their value is above it.
func TestModelServerActivation(t *testing.T) {
	src := &queriestest.FakeSource{}
	w := wk("ml", "vllm-llama")
	kv := queries.Shape{Signal: queries.SignalKVCache, Server: queries.ServerAuto, Window: time.Minute}
	ttft := queries.Shape{Signal: queries.SignalTTFT, Server: queries.ServerSGLang, Window: 5 * time.Minute, Quantile: 0.9}
	src.Set(kv, queries.Sample{Workload: w, Value: 40})
	src.Set(ttft, queries.Sample{Workload: w, Value: 0.1})
	c, clk := policyCollector(t, src, nil)
	inKV := c.Register(kv, w, 50, 0)
	inTTFT := c.Register(ttft, w, 0.2, 0)
	c.Refresh(context.Background())
	stepTo(c, clk, t0.Add(20*time.Minute))
	for _, in := range []*Interest{inKV, inTTFT} {
		if d := decision(t, c, in); d.Active || d.Reason != shutdown.ReasonIdle {
			t.Errorf("%s below its activation for 20m: %v, want idle", in.shape, d)
		}
	}
	src.Set(kv, queries.Sample{Workload: w, Value: 60})
	src.Set(ttft, queries.Sample{Workload: w, Value: 0.3})
	stepTo(c, clk, t0.Add(21*time.Minute))
	for _, in := range []*Interest{inKV, inTTFT} {
		if d := decision(t, c, in); !d.Active || d.Reason != shutdown.ReasonTraffic {
			t.Errorf("%s above its activation: %v, want active (traffic)", in.shape, d)
		}
	}
}

// After a restart, a queue or running trigger's idle clock is recovered
// from any request in flight (activation 0), as observing counts them; a
// kvcache trigger's from its activation.
func TestModelServerRecoveryActivation(t *testing.T) {
	src := &queriestest.FakeLastActive{}
	w := wk("ml", "vllm-llama")
	queue := queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerAuto, Window: time.Minute}
	kv := queries.Shape{Signal: queries.SignalKVCache, Server: queries.ServerAuto, Window: time.Minute}
	src.Set(queue, queries.Sample{Workload: w, Value: 0})
	src.Set(kv, queries.Sample{Workload: w, Value: 0})
	c, _ := policyCollector(t, src, nil)
	c.Register(queue, w, 5, 0)
	c.Register(kv, w, 50, 0)
	c.Refresh(context.Background())
	got := map[queries.Signal]float64{}
	for _, l := range src.Lookbacks() {
		got[l.Shape.Signal] = l.Activation
	}
	if len(got) != 2 || got[queries.SignalQueue] != 0 || got[queries.SignalKVCache] != 50 {
		t.Errorf("recovered with activations %v, want queue 0 and kvcache 50", got)
	}
}
