package autopilot

import (
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

func gpuCase(t *testing.T, model string, gpus int, util, fbUsed float64, kv float64) *GPURecommendation {
	t.Helper()
	k := queries.WorkloadKey{Namespace: "ml", Name: "m"}
	h := newHistory(t, DefaultConfig(), 48*time.Hour, time.Hour)
	each(h, func(_ int, at time.Time) {
		for g := range gpus {
			ref := GPURef{Workload: k, Pod: "m-0", GPU: string(rune('0' + g)), Model: model}
			h.GPUUtil(ref, at, util)
			h.Framebuffer(ref, at, fbUsed, 0)
		}
		if kv >= 0 {
			h.KVCache(k, VLLM, at, kv)
		}
	})
	return workloadOf(t, mustRecommend(t, h), k).GPU
}

func TestRecommendGPU(t *testing.T) {
	tests := []struct {
		name                string
		model               string
		gpus                int
		util, fb, kv        float64
		action, recommended string
		share               float64
	}{
		// 20% / 80% target = 0.25 of a GPU; 1g.5gb (1/7 = 0.14) is too
		// small, 2g.10gb (2/7, 9500 MiB >= 6000 * 1.15) fits.
		{"A100 at 20% fits MIG 2g.10gb", "NVIDIA A100-SXM4-40GB", 1, 20, 6000, -1, GPUMIG, "MIG 2g.10gb", 2.0 / 7},
		// Same work, 12 GB in use: 13.8 GB needs 3g.20gb.
		{"memory picks the profile", "NVIDIA A100-SXM4-40GB", 1, 20, 12000, -1, GPUMIG, "MIG 3g.20gb", 3.0 / 7},
		// 2 H100 at 30%: 0.75 GPUs of work; 2 * 30000 * 1.15 MiB fits one.
		{"H100 pair to one", "NVIDIA H100 80GB HBM3", 2, 30, 30000, -1, GPUFewer, "1 x H100-80GB", 1},
		// T4: no MIG, nothing smaller; 80/20 = 4 shares, memory 15360 /
		// 2300 = 6 shares: 4 per GPU.
		{"T4 time-sliced", "Tesla T4", 1, 20, 2000, -1, GPUTimeSlicing, "time-slicing, 4 replicas per T4", 0.25},
		// V100 (112 TFLOPS) at 40%: 0.5 of a GPU = 56 TFLOPS of work; a T4
		// (65) holds it at 86% > 100%? 56/65 = 0.86 <= 1 and 3 GB fits.
		{"V100 to T4", "Tesla V100-SXM2-16GB", 1, 40, 3000, -1, GPUSmaller, "1 x T4", 1},
		{"busy GPU kept", "NVIDIA A100-SXM4-40GB", 1, 70, 30000, -1, GPUKeep, "1 x A100-40GB", 1},
		// vLLM: the framebuffer is preallocated; nothing smaller holds it.
		{"vLLM with a KV cache", "NVIDIA A100-SXM4-40GB", 1, 20, 36000, 0.3, GPUKeep, "1 x A100-40GB", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := gpuCase(t, tt.model, tt.gpus, tt.util, tt.fb, tt.kv)
			if g.Action != tt.action || g.Recommended != tt.recommended || !near(g.GPUs, tt.share) {
				t.Errorf("got %s %q x%v, want %s %q x%v (%s)", g.Action, g.Recommended, g.GPUs, tt.action, tt.recommended, tt.share, g.Reason)
			}
		})
	}
	g := gpuCase(t, "NVIDIA A100-SXM4-40GB", 1, 20, 36000, 0.3)
	if !g.KVCache || g.KVCacheMax != 30 || !strings.Contains(g.Reason, "vLLM preallocates the framebuffer (36000 of 40960 MiB in use), so KV-cache usage is the measure: p95 30%, peak 30%") {
		t.Errorf("kv: %+v", g)
	}
}

// TGI: KV-cache usage is the tokens held by the running batch over the max
// batch total tokens; the report says the figure is TGI's. Without a
// capacity, a TGI queue still marks the framebuffer as preallocated.
func TestRecommendGPUTGI(t *testing.T) {
	k := queries.WorkloadKey{Namespace: "ml", Name: "tgi"}
	run := func(kv func(h *History, at time.Time)) *GPURecommendation {
		t.Helper()
		h := newHistory(t, DefaultConfig(), 48*time.Hour, time.Hour)
		h.tgiAssumed = 32000
		each(h, func(i int, at time.Time) {
			ref := GPURef{Workload: k, Pod: "tgi-0", GPU: "0", Model: "NVIDIA A100-SXM4-40GB"}
			h.GPUUtil(ref, at, 20)
			h.Framebuffer(ref, at, 36000, 0)
			h.RequestsWaiting(k, TGI, at, float64(i%4))
			kv(h, at)
		})
		return workloadOf(t, mustRecommend(t, h), k).GPU
	}

	// 8000 of 32000 tokens: 25%. As for vLLM, a single GPU with a KV cache
	// below 50% is kept until TGI's preallocation is lowered.
	g := run(func(h *History, at time.Time) { h.KVCache(k, TGI, at, 8000.0/32000) })
	if !g.KVCache || g.KVCacheSource != "tgi" || g.KVCacheP95 != 25 || g.KVCacheMax != 25 || g.RequestsWaitingMax != 3 ||
		g.Action != GPUKeep || g.Recommended != "1 x A100-40GB" {
		t.Errorf("tgi: %+v", g)
	}
	want := "TGI preallocates the framebuffer (36000 of 40960 MiB in use), so KV-cache usage is the measure: p95 25%, peak 25% " +
		"(TGI's: tokens held by the running batch over its max batch total tokens, 32000 where a pod does not export them); " +
		"lower TGI's --cuda-memory-fraction to free memory before sharing the GPU"
	if !strings.HasSuffix(g.Reason, want) {
		t.Errorf("reason\n %q\ndoes not end in\n %q", g.Reason, want)
	}

	// A TGI queue without a capacity: no KV-cache figure, and the reason
	// says the framebuffer overstates the need. By the framebuffer,
	// 36000 * 1.15 MiB fits only the 7g.40gb profile: keep.
	g = run(func(*History, time.Time) {})
	if g.KVCache || g.KVCacheSource != "" || g.RequestsWaitingMax != 3 || g.Action != GPUKeep {
		t.Errorf("tgi without capacity: %+v", g)
	}
	if want := "framebuffer peak 36000 of 40960 MiB; TGI preallocates the framebuffer too, but without its max batch total tokens " +
		"(tgi_batch_max_total_tokens, or an assumed value) its KV-cache usage is unknown, so the framebuffer overstates the need"; !strings.HasSuffix(g.Reason, want) {
		t.Errorf("reason\n %q\ndoes not end in\n %q", g.Reason, want)
	}

	// Pods of both servers in one workload: both named.
	g = run(func(h *History, at time.Time) {
		h.KVCache(k, TGI, at, 0.25)
		h.KVCache(k, VLLM, at, 0.1)
	})
	if g.KVCacheSource != "vllm,tgi" || g.KVCacheMax != 25 || !strings.Contains(g.Reason, "vLLM and TGI preallocate the framebuffer") ||
		!strings.HasSuffix(g.Reason, "lower vLLM's --gpu-memory-utilization and TGI's --cuda-memory-fraction to free memory before sharing the GPU") {
		t.Errorf("vllm and tgi: %+v", g)
	}
}

func TestGPUClass(t *testing.T) {
	for model, want := range map[string]string{
		"NVIDIA A100-SXM4-40GB":   "A100-40GB",
		"NVIDIA A100 80GB PCIe":   "A100-80GB",
		"NVIDIA H100 80GB HBM3":   "H100-80GB",
		"Tesla T4":                "T4",
		"NVIDIA L4":               "L4",
		"NVIDIA A10G":             "A10G",
		"NVIDIA GeForce RTX 4090": "NVIDIA GeForce RTX 4090",
	} {
		if got := GPUClass(model); got != want {
			t.Errorf("GPUClass(%q) = %q, want %q", model, got, want)
		}
	}
}

func TestReadPrices(t *testing.T) {
	p, err := ReadPrices(strings.NewReader(`{"currency": "EUR", "cpuCoreHour": 0.02, "gpuHour": {"H100-80GB": 6.5, "default": 4}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Currency != "EUR" || p.CPUCoreHour != 0.02 || p.MemoryGiBHour != 0.0042 || p.GPU("H100-80GB") != 6.5 ||
		p.GPU("NVIDIA B200") != 4 || p.GPU("T4") != 0.35 {
		t.Errorf("got %+v", p)
	}
	for in, want := range map[string]string{
		`{"cpu": 1}`:                `prices: json: unknown field "cpu"`,
		`{"cpuCoreHour": -1}`:       "prices: cpuCoreHour = -1, must be a finite number >= 0",
		`{"gpuHour": {"T4": -0.5}}`: "prices: gpuHour.T4 = -0.5, must be a finite number >= 0",
		`{"currency": " "}`:         "prices: currency: empty",
		// A class GPUClass never returns would silently price nothing.
		`{"gpuHour": {"H100": 6.5, "MI300X": 4}}`: `prices: gpuHour: unknown GPU class "H100", "MI300X"; known: A100-40GB, A100-80GB, A10G, H100-80GB, L4, T4, V100, and default for any other GPU`,
		`not json`: "prices: invalid character 'o' in literal null (expecting 'u')",
	} {
		if _, err := ReadPrices(strings.NewReader(in)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", in, err, want)
		}
	}
}

// Costs: one replica of 1 core and 1 GiB, recommended 0.46 cores and
// 690 MiB: (1 * 0.0316 + 1 * 0.0042) * 730 = 26.13 now, (0.46 * 0.0316 +
// 690/1024 * 0.0042) * 730 = 12.68 recommended: (1 - 0.46) * 0.0316 *
// 730 = 12.46 from CPU, (1 - 690/1024) * 0.0042 * 730 = 1.00 from memory.
func TestCost(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 72*time.Hour, time.Hour)
	h.SetResources(app, Resources{CPURequest: 1, MemoryRequest: 1 * GiB})
	each(h, func(i int, at time.Time) {
		h.CPU(app, at, 0.4)
		mem := 500.0 * MiB
		if i == 30 {
			mem = 600 * MiB
		}
		h.Memory(app, at, mem)
	})
	r := mustRecommend(t, h)
	want := Cost{MonthlyNow: 26.13, MonthlyRecommended: 12.68, MonthlySavings: 13.45, SavingsBy: Savings{CPU: 12.46, Memory: 1}}
	if r.Workloads[0].Cost != want || r.Totals != want {
		t.Errorf("cost %+v, totals %+v, want %+v", r.Workloads[0].Cost, r.Totals, want)
	}
}
