package main

import (
	"context"
	"testing"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries/storetest"
)

// TestServeModelServers runs ebb serve on a real Prometheus holding a vLLM
// Deployment and a TGI StatefulSet side by side in namespace ml, and asks
// it through KEDA's generated client, as KEDA does, for triggers on the
// model servers' own metrics. By hand: ml/llama (two pods) waits 3 + 1 = 4
// requests, runs 8 + 6 = 14, uses 50% + 25% = 75 of KV cache and its p90
// time to first token is 0.9 s (bucket rates added: le 0.1: 1, 0.25: 2,
// 0.5: 4, 1: 8, +Inf: 8; rank 7.2 in (0.5, 1]); ml/mistral waits 4 + 0 and
// runs 10 + 12 = 22; shop/idle-llm's server has no request at all.
func TestServeModelServers(t *testing.T) {
	pod := func(ns, name, ip string) storetest.Pod {
		return storetest.Pod{Namespace: ns, Name: name, IP: ip, Start: dataStart, Step: step, N: nSamples}
	}
	buckets := func(rates ...float64) []storetest.Bucket {
		out := []storetest.Bucket{}
		for i, le := range []string{"0.1", "0.25", "0.5", "1.0", "+Inf"} {
			out = append(out, storetest.Bucket{Le: le, PerSecond: rates[i]})
		}
		return out
	}
	var history []storetest.Series
	history = append(history, pod("ml", "llama-7c9d8f6b5-x2k4z", "10.42.0.11").VLLM(storetest.VLLMEngine{
		Model: "meta-llama/Llama-3.1-8B-Instruct", Engine: "0", Waiting: 3, Running: 8, KVCache: 0.5, NewKVName: true, TTFT: buckets(1, 2, 3, 4, 4)})...)
	history = append(history, pod("ml", "llama-7c9d8f6b5-q9w8r", "10.42.1.12").VLLM(storetest.VLLMEngine{
		Model: "meta-llama/Llama-3.1-8B-Instruct", Engine: "0", Waiting: 1, Running: 6, KVCache: 0.25, NewKVName: true, TTFT: buckets(0, 0, 1, 4, 4)})...)
	history = append(history, pod("ml", "mistral-0", "10.42.2.20").TGI(4, 10)...)
	history = append(history, pod("ml", "mistral-1", "10.42.2.21").TGI(0, 12)...)
	history = append(history, pod("shop", "idle-llm-0", "10.42.3.30").VLLM(storetest.VLLMEngine{
		Model: "Qwen/Qwen2.5-7B-Instruct", Engine: "0", NewKVName: true, TTFT: buckets(0, 0, 0, 0, 0)})...)

	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: history})
	clk := clock.NewMock()
	clk.Set(evalAt) // every query is evaluated inside the data
	e := startServe(t, prom.URL, clk, "--interval=5s", "--max-staleness=30s", "--query-timeout=5s")
	ctx := context.Background()

	tests := []struct {
		ref    *pb.ScaledObjectRef
		want   float64
		active bool
	}{
		{soRef("ml", "llama", map[string]string{"signal": "queue", "target": "4"}), 4, true},
		{soRef("ml", "llama-kv", map[string]string{"signal": "kvcache", "target": "70", "server": "vllm", "workload": "llama"}), 75, true},
		{soRef("ml", "llama-ttft", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "workload": "llama", "activation": "1"}), 0.9, false},
		{soRef("ml", "mistral", map[string]string{"signal": "running", "target": "16", "server": "tgi"}), 22, true},
		{soRef("ml", "mistral-queue", map[string]string{"signal": "queue", "target": "4", "workload": "mistral"}), 4, true},
		{soRef("shop", "idle-llm", map[string]string{"signal": "ttft", "target": "0.5", "window": "5m", "quantile": "0.99"}), 0, false},
	}
	for _, tt := range tests {
		if got := e.value(t, tt.ref); got != tt.want {
			t.Errorf("%s/%s %s: got %v, want %v", tt.ref.Namespace, tt.ref.Name, tt.ref.ScalerMetadata["signal"], got, tt.want)
		}
		act, err := e.client.IsActive(ctx, tt.ref)
		if err != nil || act.Result != tt.active {
			t.Errorf("IsActive %s/%s: %v, %v; want %v", tt.ref.Namespace, tt.ref.Name, act, err, tt.active)
		}
	}
	spec, err := e.client.GetMetricSpec(ctx, tests[0].ref)
	if err != nil || spec.MetricSpecs[0].TargetSizeFloat != 4 || spec.MetricSpecs[0].MetricName != "ebb-queue-llama" {
		t.Errorf("GetMetricSpec: %v, %v", spec, err)
	}
	_, err = e.client.GetMetricSpec(ctx, soRef("ml", "mistral", map[string]string{"signal": "kvcache", "target": "70", "server": "tgi"}))
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "metadata server: tgi exposes no metric for signal kvcache" {
		t.Errorf("kvcache on tgi: %v, want InvalidArgument: metadata server: tgi exposes no metric for signal kvcache", err)
	}
}
