package storetest

import (
	"maps"
	"time"
)

// Pod is a model server's pod as Prometheus scrapes it: the target labels a
// PodMonitor of kube-prometheus-stack writes (namespace, pod, container,
// endpoint, instance, job), and the history's timeline. The series builders
// below add the server's own metric names and labels, as each server writes
// them on /metrics (see queries/modelserver.go for the sources).
type Pod struct {
	Namespace, Name string
	// IP is the pod's address, for the instance label.
	IP string
	// Start, Step and N place the samples: N samples Step apart from Start.
	Start time.Time
	Step  time.Duration
	N     int
}

// Bucket is one bucket of a histogram whose count grows by PerSecond
// observations at or below Le every second ("+Inf" for the last).
type Bucket struct {
	Le        string
	PerSecond float64
}

func (p Pod) labels(container, port string, own map[string]string) map[string]string {
	l := map[string]string{
		"namespace": p.Namespace, "pod": p.Name, "container": container,
		"endpoint": "metrics", "instance": p.IP + ":" + port, "job": p.Namespace + "/" + container,
	}
	maps.Copy(l, own)
	return l
}

func (p Pod) gauge(metric string, labels map[string]string, v float64) Series {
	return Series{Metric: metric, Labels: labels, Samples: Constant(p.Start, p.Step, p.N, v)}
}

// histogram returns the _bucket counters of a histogram. They start at 100
// per bucket (times the bucket's rate plus one), so that Prometheus does not
// shorten its extrapolation toward a zero crossing, and grow linearly, so
// that rate is exact.
func (p Pod) histogram(metric string, labels map[string]string, buckets []Bucket) []Series {
	out := make([]Series, 0, len(buckets))
	for _, b := range buckets {
		l := maps.Clone(labels)
		l["le"] = b.Le
		out = append(out, Series{Metric: metric + "_bucket", Labels: l,
			Samples: Linear(p.Start, p.Step, p.N, 100*(b.PerSecond+1), b.PerSecond*p.Step.Seconds())})
	}
	return out
}

// VLLMEngine is one engine of a vLLM server (its v1 engine's
// PrometheusStatLogger): waiting and running requests, KV-cache usage as a
// ratio, under the new name (vllm:kv_cache_usage_perc, v0.10 on), the old one
// (vllm:gpu_cache_usage_perc, up to v0.10) or both (v0.10 writes both), and
// its time-to-first-token histogram in seconds. Labels: model_name, engine.
type VLLMEngine struct {
	Model, Engine    string
	Waiting, Running float64
	KVCache          float64
	NewKVName        bool
	OldKVName        bool
	TTFT             []Bucket
}

// VLLM returns the series of a vLLM pod with the given engines.
func (p Pod) VLLM(engines ...VLLMEngine) []Series {
	var out []Series
	for _, e := range engines {
		l := p.labels("vllm", "8000", map[string]string{"model_name": e.Model, "engine": e.Engine})
		out = append(out,
			p.gauge("vllm:num_requests_waiting", l, e.Waiting),
			p.gauge("vllm:num_requests_running", l, e.Running))
		if e.NewKVName {
			out = append(out, p.gauge("vllm:kv_cache_usage_perc", l, e.KVCache))
		}
		if e.OldKVName {
			out = append(out, p.gauge("vllm:gpu_cache_usage_perc", l, e.KVCache))
		}
		out = append(out, p.histogram("vllm:time_to_first_token_seconds", l, e.TTFT)...)
	}
	return out
}

// TGI returns the series of a Hugging Face TGI router: tgi_queue_size and
// tgi_batch_current_size, without labels of its own.
func (p Pod) TGI(queue, batch float64) []Series {
	l := p.labels("text-generation-inference", "80", nil)
	return []Series{p.gauge("tgi_queue_size", l, queue), p.gauge("tgi_batch_current_size", l, batch)}
}

// SGLang returns the series of an SGLang server (label model_name): queued
// and running requests, token usage as a ratio, and its time-to-first-token
// histogram in seconds.
func (p Pod) SGLang(model string, queue, running, tokenUsage float64, ttft []Bucket) []Series {
	l := p.labels("sglang", "30000", map[string]string{"model_name": model})
	return append([]Series{
		p.gauge("sglang:num_queue_reqs", l, queue),
		p.gauge("sglang:num_running_reqs", l, running),
		p.gauge("sglang:token_usage", l, tokenUsage),
	}, p.histogram("sglang:time_to_first_token_seconds", l, ttft)...)
}

// TritonTRTLLM returns the series of a Triton server running a
// TensorRT-LLM model (labels model, version): the server's pending request
// count, the backend's active and waiting requests and KV-cache block
// fraction, and the server's first-response histogram in milliseconds.
func (p Pod) TritonTRTLLM(model string, pending, active, waiting, kvFraction float64, firstResponseMs []Bucket) []Series {
	l := p.labels("triton", "8002", map[string]string{"model": model, "version": "1"})
	with := func(k, v string) map[string]string {
		c := maps.Clone(l)
		c[k] = v
		return c
	}
	return append([]Series{
		p.gauge("nv_inference_pending_request_count", l, pending),
		p.gauge("nv_trt_llm_request_metrics", with("request_type", "active"), active),
		p.gauge("nv_trt_llm_request_metrics", with("request_type", "waiting"), waiting),
		p.gauge("nv_trt_llm_request_metrics", with("request_type", "max"), 256),
		p.gauge("nv_trt_llm_kv_cache_block_metrics", with("kv_cache_block_type", "fraction"), kvFraction),
		p.gauge("nv_trt_llm_kv_cache_block_metrics", with("kv_cache_block_type", "max"), 6240),
		p.gauge("nv_trt_llm_kv_cache_block_metrics", with("kv_cache_block_type", "used"), kvFraction*6240),
	}, p.histogram("nv_inference_first_response_histogram_ms", l, firstResponseMs)...)
}
