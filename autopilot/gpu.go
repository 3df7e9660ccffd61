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

// recommendGPU right-sizes a workload's GPUs: it measures them
// (gpuFacts), decides (decideGPU), and explains the decision (gpuReason).
func recommendGPU(cfg Config, g *gpuHistory, minHistory float64, tgiAssumed int64) *GPURecommendation {
	r := gpuFacts(g)
	u95 := 0.0
	if r.Samples > 0 {
		u95 = round(g.util.Percentile(0.95), 2)
	}
	d := decideGPU(cfg, r, u95, g.util.Max(), g.util.Span().Hours(), minHistory)
	if d.action != GPUNotEnough {
		r.UtilP50, r.UtilP95, r.UtilMax = round(g.util.Percentile(0.5), 2), u95, round(g.util.Max(), 2)
	}
	r.Action, r.GPUs, r.RecommendedClass = d.action, d.gpus, d.class
	r.Recommended = gpuRecommended(r, d)
	r.Reason = gpuReason(cfg, r, d, g, minHistory, tgiAssumed)
	return r
}

// gpuFacts measures a workload's GPUs: model, GPUs per replica,
// framebuffer, KV cache and queue, samples; the action is to keep them.
func gpuFacts(g *gpuHistory) *GPURecommendation {
	r := &GPURecommendation{Model: g.model, Class: GPUClass(g.model)}
	for _, s := range g.gpusOfPod {
		r.GPUsPerReplica = max(r.GPUsPerReplica, len(s))
	}
	r.FramebufferUsedMiB, r.FramebufferTotalMiB = g.fbUsed, g.fbTotal
	if spec, known := specOf(r.Class); r.FramebufferTotalMiB == 0 && known {
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
	r.Samples = g.util.Samples()
	return r
}

// gpuVerdict is the rule that decided a GPU recommendation.
type gpuVerdict int

const (
	gpuNoSamples    gpuVerdict = iota // not enough data: no samples
	gpuShortHistory                   // not enough data: too short a history
	gpuNeverUsed                      // no GPU: never used, no KV cache
	gpuFewerFit                       // fewer GPUs carry the work and the memory
	gpuAllNeeded                      // several GPUs, all needed
	gpuWellUsed                       // one GPU, well used
	gpuMIGFits                        // a MIG profile fits compute and memory
	gpuSmallerFits                    // a smaller GPU fits compute and memory
	gpuTimeSliced                     // several replicas share one GPU
	gpuNoShare                        // one GPU, lightly used, but nothing smaller fits its memory
)

// gpuDecision is a GPU recommendation in numbers, before any words.
type gpuDecision struct {
	verdict gpuVerdict
	action  string
	gpus    float64 // GPUs per replica recommended
	class   string  // the class that prices them
	n       int     // GPUs per replica now, at least 1
	busy    float64 // GPUs' worth of work at the target utilization
	need    float64 // framebuffer MiB a replica needs on one GPU; 0 if unknown
	spec    gpuSpec // the current class, when known
	fewer   int     // gpuFewerFit: the GPUs kept
	mig     migProfile
	smaller gpuSpec // gpuSmallerFits
	share   int     // gpuTimeSliced: replicas per GPU
}

// decideGPU decides from r's measurements and the utilization's p95 (u95)
// and max per GPU: fewer GPUs per replica when the busy ones and the memory
// fit in fewer; for one GPU used below the target, a MIG profile (A100,
// H100), else a smaller GPU, else a time-sliced share, each only where
// memory and compute both fit.
func decideGPU(cfg Config, r *GPURecommendation, u95, utilMax, spanHours, minHistory float64) gpuDecision {
	d := gpuDecision{action: GPUKeep, gpus: float64(r.GPUsPerReplica), class: r.Class, n: max(r.GPUsPerReplica, 1)}
	switch {
	case r.Samples == 0:
		d.verdict, d.action = gpuNoSamples, GPUNotEnough
		return d
	case spanHours < minHistory:
		d.verdict, d.action = gpuShortHistory, GPUNotEnough
		return d
	case utilMax == 0 && !r.KVCache:
		d.verdict, d.action, d.gpus = gpuNeverUsed, GPUFewer, 0
		return d
	}
	spec, known := specOf(r.Class)
	d.spec = spec
	// Memory one replica needs on one GPU, MiB; unknown (0) with a KV cache,
	// whose preallocation fills the framebuffer whatever the load.
	d.need = r.FramebufferUsedMiB * gpuMemoryMargin
	if r.KVCache {
		d.need = 0
	}
	d.busy = float64(d.n) * u95 / cfg.GPUTargetUtil

	if d.n > 1 {
		k := int(math.Ceil(d.busy - 1e-9))
		if d.need > 0 && r.FramebufferTotalMiB > 0 {
			k = max(k, int(math.Ceil(float64(d.n)*d.need/r.FramebufferTotalMiB-1e-9)))
		}
		k = max(k, 1)
		if k < d.n {
			d.verdict, d.action, d.gpus, d.fewer = gpuFewerFit, GPUFewer, float64(k), k
			return d
		}
		d.verdict = gpuAllNeeded
		return d
	}
	if d.busy >= 0.6 || r.KVCache && r.KVCacheP95 >= 50 {
		d.verdict = gpuWellUsed
		return d
	}
	need := d.need
	if r.KVCache {
		need = r.FramebufferTotalMiB // cannot shrink until the preallocation does
	}
	if known {
		for _, p := range spec.mig {
			if p.slices == 7 {
				break
			}
			if float64(p.slices)/7 >= d.busy && p.memMiB >= need {
				d.verdict, d.action, d.gpus, d.mig = gpuMIGFits, GPUMIG, float64(p.slices)/7, p
				return d
			}
		}
	}
	if known && need > 0 {
		for _, c := range smallerGPUs {
			s, _ := specOf(c)
			if s.tflops >= spec.tflops || s.memMiB < need {
				continue
			}
			if d.busy*spec.tflops/s.tflops <= 1 {
				d.verdict, d.action, d.gpus, d.class, d.smaller = gpuSmallerFits, GPUSmaller, 1, c, s
				return d
			}
		}
	}
	share := 1
	if need > 0 && r.FramebufferTotalMiB > 0 {
		share = min(int(math.Floor(1/max(d.busy, 0.01))), int(math.Floor(r.FramebufferTotalMiB/need)))
	}
	if share >= 2 {
		d.verdict, d.action, d.gpus, d.share = gpuTimeSliced, GPUTimeSlicing, 1/float64(share), share
		return d
	}
	d.verdict = gpuNoShare
	return d
}

// gpuRecommended names what d recommends running: "2 x A100-80GB",
// "MIG 3g.40gb", "time-slicing, 3 replicas per L4".
func gpuRecommended(r *GPURecommendation, d gpuDecision) string {
	switch d.verdict {
	case gpuNeverUsed:
		return "no GPU"
	case gpuFewerFit:
		return fmt.Sprintf("%d x %s", d.fewer, r.Class)
	case gpuMIGFits:
		return "MIG " + d.mig.name
	case gpuSmallerFits:
		return "1 x " + d.smaller.class
	case gpuTimeSliced:
		return fmt.Sprintf("time-slicing, %d replicas per %s", d.share, r.Class)
	}
	return fmt.Sprintf("%d x %s", r.GPUsPerReplica, r.Class)
}

// gpuReason explains d: the utilization, the memory, and the rule that
// decided.
func gpuReason(cfg Config, r *GPURecommendation, d gpuDecision, g *gpuHistory, minHistory float64, tgiAssumed int64) string {
	switch d.verdict {
	case gpuNoSamples:
		return "no GPU utilization samples"
	case gpuShortHistory:
		return fmt.Sprintf("GPU history covers %sh, need %sh", number(g.util.Span().Hours()), number(minHistory))
	case gpuNeverUsed:
		if d.n == 1 {
			return fmt.Sprintf("its GPU was never used in %d samples", r.Samples)
		}
		return fmt.Sprintf("its %d GPUs were never used in %d samples", d.n, r.Samples)
	}
	mem := gpuMemoryNote(r, g, tgiAssumed)
	switch d.verdict {
	case gpuMIGFits, gpuSmallerFits, gpuTimeSliced, gpuNoShare: // one GPU, lightly used
		if r.KVCache { // its memory all preallocated
			_, settings := kvServers(g)
			mem += "; lower " + settings + " to free memory before sharing the GPU"
		}
	}
	util := fmt.Sprintf("utilization p95 %s%% (p50 %s%%, max %s%%) per GPU", number(r.UtilP95), number(r.UtilP50), number(r.UtilMax))
	target := number(cfg.GPUTargetUtil)
	switch d.verdict {
	case gpuFewerFit:
		return fmt.Sprintf("%s over %d GPUs is %s GPUs' work at %s%%; %s", util, d.n, number(d.busy), target, mem)
	case gpuAllNeeded:
		return fmt.Sprintf("%s: all %d GPUs are needed; %s", util, d.n, mem)
	case gpuWellUsed:
		return fmt.Sprintf("%s: the GPU is well used; %s", util, mem)
	case gpuMIGFits:
		return fmt.Sprintf("%s needs %s of the GPU's compute; MIG %s gives %d/7 and %s MiB; %s",
			util, number(d.busy), d.mig.name, d.mig.slices, number(d.mig.memMiB), mem)
	case gpuSmallerFits:
		return fmt.Sprintf("%s is %s TFLOPS of work at %s%%, within a %s (%s TFLOPS, %s MiB); %s",
			util, number(d.busy*d.spec.tflops), target, d.smaller.class, number(d.smaller.tflops), number(d.smaller.memMiB), mem)
	case gpuTimeSliced:
		return fmt.Sprintf("%s: %d such replicas fit on one GPU in compute and memory; %s", util, d.share, mem)
	}
	return fmt.Sprintf("%s: no smaller share fits its memory; %s", util, mem)
}

// gpuMemoryNote says what the framebuffer tells of the memory a replica
// needs: its peak, or, where a model server preallocates it, the KV cache.
func gpuMemoryNote(r *GPURecommendation, g *gpuHistory, tgiAssumed int64) string {
	switch {
	case r.KVCache:
		servers, _ := kvServers(g)
		verb := "preallocates"
		if g.kvFrom[VLLM] && g.kvFrom[TGI] {
			verb = "preallocate"
		}
		note := fmt.Sprintf("%s %s the framebuffer (%s of %s MiB in use), so KV-cache usage is the measure: p95 %s%%, peak %s%%",
			servers, verb, number(r.FramebufferUsedMiB), number(r.FramebufferTotalMiB), number(r.KVCacheP95), number(r.KVCacheMax))
		if g.kvFrom[TGI] {
			note += " (TGI's: tokens held by the running batch over its max batch total tokens"
			if tgiAssumed > 0 {
				note += fmt.Sprintf(", %d where a pod does not export them", tgiAssumed)
			}
			note += ")"
		}
		return note
	case g.tgi:
		return fmt.Sprintf("framebuffer peak %s of %s MiB", number(r.FramebufferUsedMiB), number(r.FramebufferTotalMiB)) +
			"; TGI preallocates the framebuffer too, but without its max batch total tokens (tgi_batch_max_total_tokens, or an assumed value) its KV-cache usage is unknown, so the framebuffer overstates the need"
	}
	return fmt.Sprintf("framebuffer peak %s of %s MiB", number(r.FramebufferUsedMiB), number(r.FramebufferTotalMiB))
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
