package sim

import (
	"slices"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// DemoSpec is the scaling configuration `ebb demo` gives one workload of
// DemoCluster: what a ScaledObject's trigger metadata and an idle-after
// annotation would say.
type DemoSpec struct {
	Key queries.WorkloadKey
	// About says in a few words what the workload is, for the demo's output.
	About string
	// Signal, Target, Activation and Window are the trigger's metadata.
	Signal     queries.Signal
	Target     float64
	Activation float64
	Window     time.Duration
	// MinReplicas and MaxReplicas bound the HPA; MinReplicas 0 lets the
	// workload be shut down when idle.
	MinReplicas int
	MaxReplicas int
	// GPUsPerReplica is the GPUs each pod holds, as in the cluster.
	GPUsPerReplica int
	// IdleAfter is how long the workload stays up after its last activity
	// before it is shut down; 0 means it is never shut down.
	IdleAfter time.Duration
	// Server is the trigger's server key for the model-server signals.
	Server queries.Server
	// SameTraceAs names the workload that replays the same trace on the
	// same model server, scaled on another signal, for the demo's
	// comparison; zero for none.
	SameTraceAs queries.WorkloadKey
}

// demoWorkload is one row of the demo: the simulated workload and its spec.
type demoWorkload struct {
	spec     DemoSpec
	replicas int           // at the start
	perReq   time.Duration // GPUTimePerRequest
	traffic  func(start time.Time, seed int64) Traffic
	server   *BatchingServer
}

// The demo's LLM servers are continuously batching servers (BatchingServer)
// replaying the Azure traces, each twice: once scaled on the server's own
// signal, once on GPU utilization, for the summary's comparison.
//
// ml/llm-chat replays the conversation trace (5.5 req/s; 1,155 prompt and
// 211 generated tokens a request on average) on vLLM: a request runs
// 211/40 + 0.06 = 5.3 s (40 tokens/s per sequence, prefill at 20,000
// tokens/s) and holds 1,155 + 211/2 ≈ 1,260 KV tokens; a replica's
// 32,768-token KV cache holds 26 of them, so about 29 requests in flight
// need 2 replicas at a 70% KV-cache target, 3 in the trace's peaks.
// ml/llm-code replays the code trace (2.6 req/s in bursts; 2,048 prompt and
// 28 generated tokens) on TGI: 0.8 s and 2,062 KV tokens a request, 15 at
// once per replica; it scales on requests waiting, 4 per replica.
// On GPU utilization both keep more replicas: a batching server's GPU is
// busy as soon as a few requests run (see BatchingServer).
var (
	chatServer = BatchingServer{Kind: queries.ServerVLLM, MaxRunning: 256, KVCacheTokens: 32_768, KVTokensPerRequest: 1_260,
		RequestSeconds: 211.0/40 + 0.06, PrefillSeconds: 0.06}
	codeServer = BatchingServer{Kind: queries.ServerTGI, MaxRunning: 128, KVCacheTokens: 32_768, KVTokensPerRequest: 2_062,
		RequestSeconds: 28.0/40 + 0.1, PrefillSeconds: 0.1}
	chatTrace = func(start time.Time, _ int64) Traffic {
		return mustReplay(AzureConvTrace(), ReplayOptions{Start: start, Loop: true, PrefillTokensPerSec: 20_000, DecodeTokensPerSec: 1_000})
	}
	codeTrace = func(start time.Time, _ int64) Traffic {
		return mustReplay(AzureCodeTrace(), ReplayOptions{Start: start, Loop: true})
	}
)

var demo = []demoWorkload{
	{
		spec: DemoSpec{Key: key("ml", "llm-chat"), About: "chat LLM on vLLM, Azure trace, scaled on KV cache",
			Signal: queries.SignalKVCache, Server: queries.ServerVLLM, Target: 70, Window: time.Minute, MinReplicas: 1, MaxReplicas: 6, GPUsPerReplica: 2,
			SameTraceAs: key("ml", "llm-chat-gpu")},
		replicas: 3, traffic: chatTrace, server: &chatServer,
	},
	{
		spec: DemoSpec{Key: key("ml", "llm-chat-gpu"), About: "the same chat trace and server, scaled on GPU",
			Signal: queries.SignalGPU, Target: 70, Window: time.Minute, MinReplicas: 1, MaxReplicas: 6, GPUsPerReplica: 2,
			SameTraceAs: key("ml", "llm-chat")},
		replicas: 3, traffic: chatTrace, server: &chatServer,
	},
	{
		spec: DemoSpec{Key: key("ml", "llm-code"), About: "code LLM on TGI, Azure trace, scaled on queue",
			Signal: queries.SignalQueue, Server: queries.ServerTGI, Target: 4, Window: time.Minute, MinReplicas: 1, MaxReplicas: 13, GPUsPerReplica: 1,
			SameTraceAs: key("ml", "llm-code-gpu")},
		replicas: 3, traffic: codeTrace, server: &codeServer,
	},
	{
		spec: DemoSpec{Key: key("ml", "llm-code-gpu"), About: "the same code trace and server, scaled on GPU",
			Signal: queries.SignalGPU, Target: 70, Window: time.Minute, MinReplicas: 1, MaxReplicas: 13, GPUsPerReplica: 1,
			SameTraceAs: key("ml", "llm-code")},
		replicas: 3, traffic: codeTrace, server: &codeServer,
	},
	{
		spec: DemoSpec{Key: key("ml", "dev-llm"), About: "developer's model server, 5 minutes of use every 2 hours",
			Signal: queries.SignalRequests, Target: 1, Window: time.Minute, MinReplicas: 0, MaxReplicas: 1, GPUsPerReplica: 1,
			IdleAfter: 10 * time.Minute},
		replicas: 1,
		perReq:   2 * time.Second,
		traffic: func(start time.Time, _ int64) Traffic {
			return Anchor(Idle(5*time.Minute, 115*time.Minute, 0.2), start.Add(30*time.Minute))
		},
	},
	{
		spec: DemoSpec{Key: key("notebooks", "alice-notebook"), About: "GPU notebook, 20 minutes of work every 2 hours",
			Signal: queries.SignalRequests, Target: 1, Window: time.Minute, MinReplicas: 0, MaxReplicas: 1, GPUsPerReplica: 1,
			IdleAfter: 15 * time.Minute},
		replicas: 1,
		perReq:   500 * time.Millisecond,
		traffic: func(start time.Time, _ int64) Traffic {
			return Anchor(Idle(20*time.Minute, 100*time.Minute, 0.5), start)
		},
	},
	{
		spec: DemoSpec{Key: key("notebooks", "bob-notebook"), About: "GPU notebook left running, never used",
			Signal: queries.SignalRequests, Target: 1, Window: time.Minute, MinReplicas: 0, MaxReplicas: 1, GPUsPerReplica: 1,
			IdleAfter: 15 * time.Minute},
		replicas: 1,
		traffic:  func(time.Time, int64) Traffic { return Off() },
	},
	{
		spec: DemoSpec{Key: key("shop", "cart"), About: "web service, steady 25 req/s",
			Signal: queries.SignalRequests, Target: 10, Window: time.Minute, MinReplicas: 1, MaxReplicas: 5},
		replicas: 3,
		traffic:  func(time.Time, int64) Traffic { return Steady(25) },
	},
	{
		spec: DemoSpec{Key: key("shop", "checkout"), About: "web service, daily cycle of 10-70 req/s peaking at 14:00 UTC",
			Signal: queries.SignalRequests, Target: 10, Window: time.Minute, MinReplicas: 1, MaxReplicas: 10},
		replicas: 4,
		traffic: func(time.Time, int64) Traffic {
			return Diurnal(40, 30, 24*time.Hour, 14*time.Hour)
		},
	},
	{
		spec: DemoSpec{Key: key("shop", "search"), About: "web service, 5 req/s with a 2-minute burst to 60 every 10 minutes",
			Signal: queries.SignalRequests, Target: 20, Window: time.Minute, MinReplicas: 1, MaxReplicas: 5},
		replicas: 1,
		traffic: func(_ time.Time, seed int64) Traffic {
			return Bursty(5, 60, 10*time.Minute, 2*time.Minute, seed)
		},
	},
}

// DemoCluster returns the cluster `ebb demo` scales: ten workloads in the
// namespaces ml, notebooks and shop, covering trace replays on batching LLM
// servers (each trace twice: on the server's KV cache or queue, and on GPU
// utilization), steady, daily and bursty web traffic, a
// notebook and a model server that are mostly idle, and a notebook that is
// never used. The traces and the idle workloads' activity start at start;
// seed fixes the bursts. DemoSpecs gives each workload's scaling config.
func DemoCluster(start time.Time, seed int64) *Cluster {
	c, err := NewCluster()
	if err != nil {
		panic(err)
	}
	for _, d := range demo {
		w := Workload{
			Key:               d.spec.Key,
			Traffic:           d.traffic(start, seed),
			Replicas:          d.replicas,
			GPUsPerReplica:    d.spec.GPUsPerReplica,
			GPUTimePerRequest: d.perReq,
			Server:            d.server,
		}
		if err := c.Add(w); err != nil {
			panic("sim: demo: " + err.Error())
		}
		if d.server != nil {
			c.Serving(w.Key, start) // the servers' history starts at start
		}
	}
	return c
}

// DemoSpecs returns the scaling config of each workload of DemoCluster,
// sorted by key.
func DemoSpecs() []DemoSpec {
	out := make([]DemoSpec, len(demo))
	for i, d := range demo {
		out[i] = d.spec
	}
	slices.SortFunc(out, func(a, b DemoSpec) int { return compareKeys(a.Key, b.Key) })
	return out
}

func key(namespace, name string) queries.WorkloadKey {
	return queries.WorkloadKey{Namespace: namespace, Name: name}
}

func mustReplay(t *Trace, o ReplayOptions) *TraceReplay {
	r, err := Replay(t, o)
	if err != nil {
		panic("sim: demo: " + err.Error())
	}
	return r
}
