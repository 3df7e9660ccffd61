package autopilot

import (
	"fmt"
	"math"
	"strings"
)

// GPU actions, in GPURecommendation.Action.
const (
	GPUKeep         = "keep"
	GPUFewer        = "fewer-gpus"
	GPUMIG          = "mig"
	GPUTimeSlicing  = "time-slicing"
	GPUSmaller      = "smaller-gpu"
	GPUNotEnough    = "not-enough-data"
	gpuMemoryMargin = 1.15
)

// GPURecommendation is what a workload's GPUs should be, with the numbers
// behind it.
type GPURecommendation struct {
	Model          string `json:"model"`
	Class          string `json:"class"`
	GPUsPerReplica int    `json:"gpusPerReplica"`
	// Utilization per GPU in percent: DCGM_FI_PROF_GR_ENGINE_ACTIVE where
	// the GPU has it, else DCGM_FI_DEV_GPU_UTIL.
	UtilP50 float64 `json:"utilP50"`
	UtilP95 float64 `json:"utilP95"`
	UtilMax float64 `json:"utilMax"`
	Samples int     `json:"samples"`
	// Framebuffer of one GPU, MiB: the highest in use, and its size.
	FramebufferUsedMiB  float64 `json:"framebufferUsedMiB"`
	FramebufferTotalMiB float64 `json:"framebufferTotalMiB"`
	// KV-cache usage in percent where vLLM or TGI reports it; then the
	// framebuffer is preallocated and says nothing about need.
	// KVCacheSource says which server the figure comes from: "vllm",
	// "tgi", or "vllm,tgi" for a workload with pods of both.
	KVCache            bool    `json:"kvCache"`
	KVCacheSource      string  `json:"kvCacheSource,omitempty"`
	KVCacheP95         float64 `json:"kvCacheP95,omitempty"`
	KVCacheMax         float64 `json:"kvCacheMax,omitempty"`
	RequestsWaitingMax float64 `json:"requestsWaitingMax,omitempty"`
	// Action is keep, fewer-gpus, mig, time-slicing, smaller-gpu or
	// not-enough-data; Recommended says what to run, e.g. "MIG 3g.40gb".
	Action      string `json:"action"`
	Recommended string `json:"recommended"`
	// GPUs is the GPUs per replica recommended, fractional for a MIG
	// profile (slices/7) or a time-sliced share; RecommendedClass prices it.
	GPUs             float64 `json:"gpus"`
	RecommendedClass string  `json:"recommendedClass"`
	Reason           string  `json:"reason"`
}

// gpuSpec is what the recommender knows of a GPU class: its memory, rough
// dense FP16 tensor TFLOPS to compare compute across classes, and its MIG
// profiles (none if it has no MIG).
type gpuSpec struct {
	class  string
	memMiB float64
	tflops float64
	mig    []migProfile
}

// migProfile is a MIG profile: compute slices of 7, and memory in MiB,
// taken as 95% of the nominal GB to stay on the safe side.
type migProfile struct {
	name   string
	slices int
	memMiB float64
}

func mig(name string, slices int, gb float64) migProfile {
	return migProfile{name: name, slices: slices, memMiB: gb * 950}
}

var gpuSpecs = []gpuSpec{
	{"T4", 15360, 65, nil},
	{"L4", 23034, 121, nil},
	{"A10G", 23028, 70, nil},
	{"V100", 16384, 112, nil},
	{"A100-40GB", 40960, 312, []migProfile{mig("1g.5gb", 1, 5), mig("2g.10gb", 2, 10), mig("3g.20gb", 3, 20), mig("4g.20gb", 4, 20), mig("7g.40gb", 7, 40)}},
	{"A100-80GB", 81920, 312, []migProfile{mig("1g.10gb", 1, 10), mig("2g.20gb", 2, 20), mig("3g.40gb", 3, 40), mig("4g.40gb", 4, 40), mig("7g.80gb", 7, 80)}},
	{"H100-80GB", 81559, 989, []migProfile{mig("1g.10gb", 1, 10), mig("1g.20gb", 1, 20), mig("2g.20gb", 2, 20), mig("3g.40gb", 3, 40), mig("4g.40gb", 4, 40), mig("7g.80gb", 7, 80)}},
}

// smallerGPUs are the classes proposed as a smaller GPU, cheapest first.
var smallerGPUs = []string{"T4", "L4", "A10G"}

// GPUClass maps dcgm-exporter's modelName to a price-table class:
// "NVIDIA A100-SXM4-40GB" is "A100-40GB", "NVIDIA H100 80GB HBM3" is
// "H100-80GB", "Tesla T4" is "T4". An unknown model is returned as it is.
func GPUClass(model string) string {
	m := strings.ToUpper(model)
	switch {
	case strings.Contains(m, "H100"):
		return "H100-80GB"
	case strings.Contains(m, "A100") && strings.Contains(m, "80G"):
		return "A100-80GB"
	case strings.Contains(m, "A100"):
		return "A100-40GB"
	case strings.Contains(m, "A10G"):
		return "A10G"
	case strings.Contains(m, "L4"):
		return "L4"
	case strings.Contains(m, "T4"):
		return "T4"
	case strings.Contains(m, "V100"):
		return "V100"
	}
	return model
}

func specOf(class string) (gpuSpec, bool) {
	for _, s := range gpuSpecs {
		if s.class == class {
			return s, true
		}
	}
	return gpuSpec{}, false
}

// recommendGPU right-sizes a workload's GPUs: fewer GPUs per replica when
// the busy ones and the memory fit in fewer; for one GPU used below the
// target, a MIG profile (A100, H100), else a smaller GPU, else a
// time-sliced share, each only where memory and compute both fit.
func recommendGPU(cfg Config, g *gpuHistory, minHistory float64, tgiAssumed int64) *GPURecommendation {
	r := &GPURecommendation{Model: g.model, Class: GPUClass(g.model)}
	for _, s := range g.gpusOfPod {
		r.GPUsPerReplica = max(r.GPUsPerReplica, len(s))
	}
	r.FramebufferUsedMiB, r.FramebufferTotalMiB = g.fbUsed, g.fbTotal
	spec, known := specOf(r.Class)
	if r.FramebufferTotalMiB == 0 && known {
		r.FramebufferTotalMiB = spec.memMiB
	}
	if g.kv.Samples() > 0 {
		r.KVCache = true
		r.KVCacheP95, r.KVCacheMax = round(g.kv.Percentile(0.95), 2), round(g.kvMax, 2)
		var from []string
		for _, s := range []ModelServer{VLLM, TGI} {
			if g.kvFrom[s] {
				from = append(from, string(s))
			}
		}
		r.KVCacheSource = strings.Join(from, ",")
	}
	r.RequestsWaitingMax = g.waiting
	r.Action, r.GPUs, r.RecommendedClass = GPUKeep, float64(r.GPUsPerReplica), r.Class
	r.Recommended = fmt.Sprintf("%d x %s", r.GPUsPerReplica, r.Class)
	r.Samples = g.util.Samples()
	if r.Samples == 0 {
		r.Action, r.Reason = GPUNotEnough, "no GPU utilization samples"
		return r
	}
	if h := g.util.Span().Hours(); h < minHistory {
		r.Action, r.Reason = GPUNotEnough, fmt.Sprintf("GPU history covers %sh, need %sh", number(h), number(minHistory))
		return r
	}
	r.UtilP50, r.UtilP95, r.UtilMax = round(g.util.Percentile(0.5), 2), round(g.util.Percentile(0.95), 2), round(g.util.Max(), 2)
	n := max(r.GPUsPerReplica, 1)
	u := r.UtilP95
	if g.util.Max() == 0 && !r.KVCache {
		r.Action, r.GPUs, r.Recommended = GPUFewer, 0, "no GPU"
		r.Reason = fmt.Sprintf("the %d GPUs were never used in %d samples", n, r.Samples)
		return r
	}
	// Memory one replica needs on one GPU, MiB; unknown (0) with a KV cache,
	// whose preallocation fills the framebuffer whatever the load.
	need := r.FramebufferUsedMiB * gpuMemoryMargin
	memNote := fmt.Sprintf("framebuffer peak %s of %s MiB", number(r.FramebufferUsedMiB), number(r.FramebufferTotalMiB))
	servers, lower := kvServers(g)
	switch {
	case r.KVCache:
		need = 0
		verb := "preallocates"
		if g.kvFrom[VLLM] && g.kvFrom[TGI] {
			verb = "preallocate"
		}
		memNote = fmt.Sprintf("%s %s the framebuffer (%s of %s MiB in use), so KV-cache usage is the measure: p95 %s%%, peak %s%%",
			servers, verb, number(r.FramebufferUsedMiB), number(r.FramebufferTotalMiB), number(r.KVCacheP95), number(r.KVCacheMax))
		if g.kvFrom[TGI] {
			memNote += " (TGI's: tokens held by the running batch over its max batch total tokens"
			if tgiAssumed > 0 {
				memNote += fmt.Sprintf(", %d where a pod does not export them", tgiAssumed)
			}
			memNote += ")"
		}
	case g.tgi:
		memNote += "; TGI preallocates the framebuffer too, but without its max batch total tokens (tgi_batch_max_total_tokens, or an assumed value) its KV-cache usage is unknown, so the framebuffer overstates the need"
	}
	utilNote := fmt.Sprintf("utilization p95 %s%% (p50 %s%%, max %s%%) per GPU", number(u), number(r.UtilP50), number(r.UtilMax))
	busy := float64(n) * u / cfg.GPUTargetUtil // GPUs' worth of work at the target

	if n > 1 {
		k := int(math.Ceil(busy - 1e-9))
		if need > 0 && r.FramebufferTotalMiB > 0 {
			k = max(k, int(math.Ceil(float64(n)*need/r.FramebufferTotalMiB-1e-9)))
		}
		k = max(k, 1)
		if k < n {
			r.Action, r.GPUs = GPUFewer, float64(k)
			r.Recommended = fmt.Sprintf("%d x %s", k, r.Class)
			r.Reason = fmt.Sprintf("%s over %d GPUs is %s GPUs' work at %s%%; %s", utilNote, n, number(busy), number(cfg.GPUTargetUtil), memNote)
			return r
		}
		r.Reason = fmt.Sprintf("%s: all %d GPUs are needed; %s", utilNote, n, memNote)
		return r
	}
	if busy >= 0.6 || r.KVCache && r.KVCacheP95 >= 50 {
		r.Reason = fmt.Sprintf("%s: the GPU is well used; %s", utilNote, memNote)
		return r
	}
	if r.KVCache {
		memNote += "; lower " + lower + " to free memory before sharing the GPU"
		need = r.FramebufferTotalMiB // cannot shrink until the preallocation does
	}
	if known && len(spec.mig) > 0 {
		for _, p := range spec.mig {
			if p.slices == 7 {
				break
			}
			if float64(p.slices)/7 >= busy && p.memMiB >= need {
				r.Action, r.GPUs = GPUMIG, float64(p.slices)/7
				r.Recommended = "MIG " + p.name
				r.Reason = fmt.Sprintf("%s needs %s of the GPU's compute; MIG %s gives %d/7 and %s MiB; %s",
					utilNote, number(busy), p.name, p.slices, number(p.memMiB), memNote)
				return r
			}
		}
	}
	if known && need > 0 {
		for _, c := range smallerGPUs {
			s, _ := specOf(c)
			if s.tflops >= spec.tflops || s.memMiB < need {
				continue
			}
			if busy*spec.tflops/s.tflops <= 1 {
				r.Action, r.GPUs, r.RecommendedClass = GPUSmaller, 1, c
				r.Recommended = "1 x " + c
				r.Reason = fmt.Sprintf("%s is %s TFLOPS of work at %s%%, within a %s (%s TFLOPS, %s MiB); %s",
					utilNote, number(busy*spec.tflops), number(cfg.GPUTargetUtil), c, number(s.tflops), number(s.memMiB), memNote)
				return r
			}
		}
	}
	share := int(math.Floor(1 / max(busy, 0.01)))
	if need > 0 && r.FramebufferTotalMiB > 0 {
		share = min(share, int(math.Floor(r.FramebufferTotalMiB/need)))
	} else {
		share = 1
	}
	if share >= 2 {
		r.Action, r.GPUs = GPUTimeSlicing, 1/float64(share)
		r.Recommended = fmt.Sprintf("time-slicing, %d replicas per %s", share, r.Class)
		r.Reason = fmt.Sprintf("%s: %d such replicas fit on one GPU in compute and memory; %s", utilNote, share, memNote)
		return r
	}
	r.Reason = fmt.Sprintf("%s: no smaller share fits its memory; %s", utilNote, memNote)
	return r
}

// kvServers names the servers a workload's KV-cache figure comes from, and
// the setting of each that sizes its preallocation.
func kvServers(g *gpuHistory) (names, settings string) {
	switch {
	case g.kvFrom[VLLM] && g.kvFrom[TGI]:
		return "vLLM and TGI", "vLLM's --gpu-memory-utilization and TGI's --cuda-memory-fraction"
	case g.kvFrom[TGI]:
		return "TGI", "TGI's --cuda-memory-fraction"
	}
	return "vLLM", "vLLM's --gpu-memory-utilization"
}
