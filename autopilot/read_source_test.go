package autopilot

import (
	"context"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// shapeSource answers each signal and window with a function of the time;
// a signal it has no function for has no series.
type shapeSource map[queries.Signal]func(window time.Duration, at time.Time) float64

func (s shapeSource) Instant(_ context.Context, shape queries.Shape, at time.Time) ([]queries.Sample, error) {
	f := s[shape.Signal]
	if f == nil {
		return nil, nil
	}
	return []queries.Sample{{Workload: chat, Value: f(shape.Window, at)}}, nil
}

var chat = queries.WorkloadKey{Namespace: "ml", Name: "chat"}

// SourceReader takes a model server's KV-cache usage and queue from the
// source's own signals, per replica, not from its GPU utilization; and
// each step's highest 1-minute request rate sizes maxReplicas.
//
// Two replicas on an H100 each, for two days of 5-minute steps: the gpu
// signal sums 2 x 90%, kvcache 2 x 30%, queue 4 in all. Requests: 4 req/s
// over every 5 minutes, but 12 req/s in the last minute of each step.
func TestSourceReaderServersAndPeaks(t *testing.T) {
	src := shapeSource{
		queries.SignalRequests: func(w time.Duration, _ time.Time) float64 {
			if w == time.Minute {
				return 12
			}
			return 4
		},
		queries.SignalGPU:     func(time.Duration, time.Time) float64 { return 180 },
		queries.SignalKVCache: func(time.Duration, time.Time) float64 { return 60 },
		queries.SignalQueue:   func(time.Duration, time.Time) float64 { return 4 },
	}
	h := newHistory(t, DefaultConfig(), 48*time.Hour, 5*time.Minute)
	r := &SourceReader{Source: src, Workloads: []SyntheticWorkload{{
		Key: chat, Replicas: 2, GPUsPerReplica: 1, GPUModel: "NVIDIA H100 80GB HBM3", FramebufferMiB: 70000, Server: VLLM,
		Current: Resources{CPURequest: 1, MemoryRequest: GiB}, CPUBase: 0.1, MemoryBase: 100 * MiB,
	}}}
	if err := r.Read(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	w := workloadOf(t, mustRecommend(t, h), chat)
	g := w.GPU
	if g == nil || g.UtilP95 != 90 || !g.KVCache || g.KVCacheSource != "vllm" || g.KVCacheP95 != 30 || g.KVCacheMax != 30 || g.RequestsWaitingMax != 4 {
		t.Errorf("gpu %+v; want utilization 90%%, KV cache 30%% from vllm, 4 waiting", g)
	}
	// Per replica the peaks are 6 req/s: target 6, max ceil(12 * 1.15 / 6)
	// = 3; the step's 4 req/s alone would have said target 2, max 3.
	s := w.Scaling
	if s == nil || s.TargetRPS != 6 || s.MaxReplicas != 3 || s.BurstRPS != 12 || s.BurstWindow != "1m" || s.RPSMax != 4 {
		t.Errorf("scaling %+v; want target 6, max 3, a 12 req/s burst over 1m, step rates up to 4", s)
	}
}
