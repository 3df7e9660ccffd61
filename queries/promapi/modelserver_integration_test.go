package promapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/storetest"
)

// The model-server stores hold 10 minutes of samples of the pods below, one
// every 15 s, queried at the last one (as the request and GPU stores).
var msStores struct {
	once     sync.Once
	prom, vm *storetest.Server
	promErr  error
	vmErr    error
}

func msPod(ns, name, ip string) storetest.Pod {
	return storetest.Pod{Namespace: ns, Name: name, IP: ip, Start: storetest.Epoch, Step: step, N: n}
}

// vLLM's bucket bounds (a subset of its time_to_first_token buckets).
func vllmBuckets(rates ...float64) []storetest.Bucket {
	les := []string{"0.1", "0.25", "0.5", "1.0", "+Inf"}
	out := make([]storetest.Bucket, len(les))
	for i, le := range les {
		out[i] = storetest.Bucket{Le: le, PerSecond: rates[i]}
	}
	return out
}

// modelServerHistory is a cluster where vLLM and TGI workloads sit side by
// side in namespace ml, with SGLang in chat and Triton in vision. Per
// workload, by hand:
//
//	ml/llama (vLLM Deployment, pod 1 with engines 0 and 1 writing both KV
//	  names, pod 2 an older release writing only gpu_cache_usage_perc):
//	  queue 3+2+1 = 6, running 8+7+6 = 21, kvcache mean(50, 70) + 25 = 85;
//	  ttft bucket rates added: le 0.1: 1, 0.25: 2, 0.5: 4, 1: 8, +Inf: 8;
//	  p90: rank 7.2 in (0.5, 1]: 0.5 + 0.5 × (7.2-4)/(8-4) = 0.9;
//	  p50: rank 4 is le 0.5's count: 0.25 + 0.25 × (4-2)/(4-2) = 0.5.
//	ml/idle-llm (vLLM StatefulSet, no request in the window): 0 everywhere,
//	  ttft 0 (its histogram is flat), not absent.
//	ml/mistral (TGI StatefulSet, pods -0 and -1): queue 4+0 = 4, running
//	  10+12 = 22; no kvcache, no ttft (TGI has neither).
//	chat/qwen (SGLang): queue 5, running 30, kvcache 80; ttft le 0.1: 0,
//	  0.25: 2, ...: p90 rank 1.8 in (0.1, 0.25]: 0.1 + 0.15 × 1.8/2 = 0.235.
//	vision/triton (Triton, TensorRT-LLM): queue 2 (pending_request_count,
//	  preferred over the backend's 7 waiting), running 9, kvcache 40; ttft
//	  in ms, le 100: 0, 500: 1, 2000: 2, +Inf: 2: p90 rank 1.8 in (500, 2000]:
//	  500 + 1500 × 0.8 = 1700 ms = 1.7 s.
func modelServerHistory() []storetest.Series {
	var out []storetest.Series
	add := func(s []storetest.Series) { out = append(out, s...) }
	add(msPod("ml", "llama-7c9d8f6b5-x2k4z", "10.42.0.11").VLLM(
		storetest.VLLMEngine{Model: "meta-llama/Llama-3.1-8B-Instruct", Engine: "0", Waiting: 3, Running: 8, KVCache: 0.5, NewKVName: true, OldKVName: true, TTFT: vllmBuckets(1, 2, 3, 4, 4)},
		storetest.VLLMEngine{Model: "meta-llama/Llama-3.1-8B-Instruct", Engine: "1", Waiting: 2, Running: 7, KVCache: 0.7, NewKVName: true, OldKVName: true, TTFT: vllmBuckets(0, 0, 0, 0, 0)},
	))
	add(msPod("ml", "llama-7c9d8f6b5-q9w8r", "10.42.1.12").VLLM(
		storetest.VLLMEngine{Model: "meta-llama/Llama-3.1-8B-Instruct", Engine: "0", Waiting: 1, Running: 6, KVCache: 0.25, OldKVName: true, TTFT: vllmBuckets(0, 0, 1, 4, 4)},
	))
	add(msPod("ml", "idle-llm-0", "10.42.1.13").VLLM(
		storetest.VLLMEngine{Model: "Qwen/Qwen2.5-7B-Instruct", Engine: "0", NewKVName: true, TTFT: vllmBuckets(0, 0, 0, 0, 0)},
	))
	add(msPod("ml", "mistral-0", "10.42.2.20").TGI(4, 10))
	add(msPod("ml", "mistral-1", "10.42.2.21").TGI(0, 12))
	add(msPod("chat", "qwen-5d4f8b7c9d-bbbbb", "10.42.3.30").SGLang("Qwen/Qwen2.5-32B-Instruct", 5, 30, 0.8,
		[]storetest.Bucket{{Le: "0.1", PerSecond: 0}, {Le: "0.25", PerSecond: 2}, {Le: "0.5", PerSecond: 2}, {Le: "+Inf", PerSecond: 2}}))
	add(msPod("vision", "triton-6b7c8d-x2k4z", "10.42.4.40").TritonTRTLLM("tensorrt_llm", 2, 9, 7, 0.4,
		[]storetest.Bucket{{Le: "100", PerSecond: 0}, {Le: "500", PerSecond: 1}, {Le: "2000", PerSecond: 2}, {Le: "+Inf", PerSecond: 2}}))
	// ml/burst-llm (TGI) had 2 requests waiting until busyUntil, none
	// after: see TestIntegrationModelServerLastActive.
	waiting := storetest.Constant(storetest.Epoch, step, n, 2)
	for i := range waiting {
		if waiting[i].T.After(busyUntil) {
			waiting[i].V = 0
		}
	}
	burst := msPod("ml", "burst-llm-0", "10.42.2.22").TGI(0, 0)
	burst[0].Samples = waiting // tgi_queue_size
	add(burst)
	// One TGI pod per name of WorkloadOfPod's cases, each in a namespace of
	// its own, with its index as queue size: see TestIntegrationPodNames.
	for i, pod := range podNames {
		add(msPod(fmt.Sprintf("names-%d", i), pod, "10.42.9.9").TGI(float64(i+1), 0))
	}
	return out
}

// podNames are pod names of every form WorkloadOfPod tells apart.
var podNames = []string{
	"web-7c9d8f6b5-x2k4z", "checkout-api-5d4f8b7c9d-q9w8r", "web-6b7c8d-x2k4z", "web-2456789-22222", "a-bcdfgh-bbbbb",
	"trainer-0", "db-primary-12", "kafka-100",
	"notebook-alice", "web-7c9d8-x2k4z", "web-7c9d8f6b5c2-x2k4z", "web-7c9d8f6b5-x2k4", "web-7c9d8f6b5-x2k4zz",
	"web-7c9d8f6b5-x2a4z", "web-7c9d8f6b3-x2k4z", "daemon-x2k4z", "db-01", "db--1", "web--7c9d8f6b5-x2k4z",
	"-7c9d8f6b5-x2k4z", "-0", "0", "web-", "web", "trainer-0-7c9d8f6b5-x2k4z", "llm-7c9d8f6b5-24567",
}

func eachModelServerStore(t *testing.T, fn func(t *testing.T, src *promapi.Prometheus)) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs real stores; skipped with -short")
	}
	msStores.once.Do(func() {
		var wg sync.WaitGroup
		var promStop, vmStop func()
		wg.Add(2)
		go func() {
			defer wg.Done()
			msStores.prom, promStop, msStores.promErr = storetest.LaunchPrometheus(storetest.PromOptions{History: modelServerHistory()})
		}()
		go func() {
			defer wg.Done()
			msStores.vm, vmStop, msStores.vmErr = storetest.LaunchVictoriaMetrics(storetest.VMOptions{History: modelServerHistory()})
		}()
		wg.Wait()
		for _, stop := range []func(){promStop, vmStop} {
			if stop != nil {
				stores.stops = append(stores.stops, stop) // TestMain stops them
			}
		}
	})
	for _, s := range []struct {
		srv  *storetest.Server
		err  error
		name string
	}{{msStores.prom, msStores.promErr, "prometheus"}, {msStores.vm, msStores.vmErr, "victoriametrics"}} {
		t.Run(s.name, func(t *testing.T) {
			srv := storetest.Require(t, s.srv, s.err)
			src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			fn(t, src)
		})
	}
}

func TestIntegrationModelServers(t *testing.T) {
	shape := func(sig queries.Signal, srv queries.Server) queries.Shape {
		s := queries.Shape{Signal: sig, Server: srv, Window: time.Minute}
		if sig == queries.SignalTTFT {
			s.Window, s.Quantile = 5*time.Minute, 0.9
		}
		return s
	}
	tests := []struct {
		name  string
		shape queries.Shape
		want  []queries.Sample
	}{
		{"queue auto", shape(queries.SignalQueue, queries.ServerAuto), []queries.Sample{
			sample("ml", "llama", 6), sample("ml", "idle-llm", 0), sample("ml", "mistral", 4), sample("ml", "burst-llm", 0),
			sample("chat", "qwen", 5), sample("vision", "triton", 2)}},
		{"queue vllm", shape(queries.SignalQueue, queries.ServerVLLM), []queries.Sample{
			sample("ml", "llama", 6), sample("ml", "idle-llm", 0)}},
		{"running auto", shape(queries.SignalRunning, queries.ServerAuto), []queries.Sample{
			sample("ml", "llama", 21), sample("ml", "idle-llm", 0), sample("ml", "mistral", 22), sample("ml", "burst-llm", 0),
			sample("chat", "qwen", 30), sample("vision", "triton", 9)}},
		{"kvcache auto", shape(queries.SignalKVCache, queries.ServerAuto), []queries.Sample{
			sample("ml", "llama", 85), sample("ml", "idle-llm", 0),
			sample("chat", "qwen", 80), sample("vision", "triton", 40)}},
		{"kvcache triton", shape(queries.SignalKVCache, queries.ServerTriton), []queries.Sample{
			sample("vision", "triton", 40)}},
		{"ttft auto p90", shape(queries.SignalTTFT, queries.ServerAuto), []queries.Sample{
			sample("ml", "llama", 0.9), sample("ml", "idle-llm", 0),
			sample("chat", "qwen", 0.235), sample("vision", "triton", 1.7)}},
		{"ttft vllm p50", queries.Shape{Signal: queries.SignalTTFT, Server: queries.ServerVLLM, Window: 5 * time.Minute, Quantile: 0.5}, []queries.Sample{
			sample("ml", "llama", 0.5), sample("ml", "idle-llm", 0)}},
	}
	eachModelServerStore(t, func(t *testing.T, src *promapi.Prometheus) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := src.Instant(context.Background(), tt.shape, at)
				if err != nil {
					t.Fatal(err)
				}
				var mine []queries.Sample // leave out TestIntegrationPodNames' pods
				for _, s := range got {
					if len(s.Workload.Namespace) < 6 || s.Workload.Namespace[:6] != "names-" {
						mine = append(mine, s)
					}
				}
				checkSamples(t, mine, tt.want)
			})
		}
	})
}

// TestIntegrationPodNames checks that the model-server queries map pods to
// workloads in the store exactly as WorkloadOfPod does in Go.
func TestIntegrationPodNames(t *testing.T) {
	var want []queries.Sample
	for i, pod := range podNames {
		want = append(want, sample(fmt.Sprintf("names-%d", i), queries.WorkloadOfPod(pod), float64(i+1)))
	}
	eachModelServerStore(t, func(t *testing.T, src *promapi.Prometheus) {
		got, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerTGI, Window: time.Minute}, at)
		if err != nil {
			t.Fatal(err)
		}
		var names []queries.Sample
		for _, s := range got {
			if len(s.Workload.Namespace) >= 6 && s.Workload.Namespace[:6] == "names-" {
				names = append(names, s)
			}
		}
		checkSamples(t, names, want)
	})
}

// TestIntegrationModelServerLastActive recovers a model server's last
// activity from the store's history, as ebb does after a restart: the last
// step whose value was above 0, workload by workload. ml/burst-llm's queue
// of 2 is 0 from 4m15s on; avg_over_time holds the sample at 4m while it is
// in the window: up to 5m in Prometheus 2.x's [t-1m, t], 4m45s in
// VictoriaMetrics' (t-1m, t]. ml/mistral (4 waiting) is active at the last
// step; workloads never above 0 are absent.
func TestIntegrationModelServerLastActive(t *testing.T) {
	shape := queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerTGI, Window: time.Minute}
	want := map[string]time.Time{"prometheus": busyUntil.Add(time.Minute), "victoriametrics": busyUntil.Add(45 * time.Second)}
	eachModelServerStore(t, func(t *testing.T, src *promapi.Prometheus) {
		got, err := src.LastActive(context.Background(), shape, 0, 10*time.Minute, step, at)
		if err != nil {
			t.Fatal(err)
		}
		last := map[queries.WorkloadKey]time.Time{}
		for _, l := range got {
			last[l.Workload] = l.At
		}
		store := strings.TrimPrefix(t.Name(), "TestIntegrationModelServerLastActive/")
		if g := last[queries.WorkloadKey{Namespace: "ml", Name: "burst-llm"}]; !g.Equal(want[store]) {
			t.Errorf("ml/burst-llm last active %v, want %v", g, want[store])
		}
		if g := last[queries.WorkloadKey{Namespace: "ml", Name: "mistral"}]; !g.Equal(at) {
			t.Errorf("ml/mistral last active %v, want %v (active now)", g, at)
		}
		if g, ok := last[queries.WorkloadKey{Namespace: "ml", Name: "idle-llm"}]; ok {
			t.Errorf("ml/idle-llm (vLLM, not read by server tgi) last active %v, want absent", g)
		}
	})
}

// TestIntegrationModelServerHistory: History reads a model-server signal
// per workload, as LastActive does (the two share stepSums): ml/burst-llm
// and ml/mistral apart, never summed into one row.
func TestIntegrationModelServerHistory(t *testing.T) {
	shape := queries.Shape{Signal: queries.SignalQueue, Server: queries.ServerTGI, Window: time.Minute}
	eachModelServerStore(t, func(t *testing.T, src *promapi.Prometheus) {
		got, err := src.History(context.Background(), shape, 10*time.Minute, step, at)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[queries.WorkloadKey{}]; ok {
			t.Errorf("history has a row of no workload: %v", got)
		}
		for _, w := range []queries.WorkloadKey{{Namespace: "ml", Name: "burst-llm"}, {Namespace: "ml", Name: "mistral"}} {
			if len(got[w]) == 0 {
				t.Errorf("no history of %s; got workloads %v", w, keysOf(got))
			}
		}
	})
}

func keysOf[V any](m map[queries.WorkloadKey]V) []queries.WorkloadKey {
	var out []queries.WorkloadKey
	for k := range m {
		out = append(out, k)
	}
	return out
}
