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
			h.KVCache(k, at, kv)
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
	p, err := ReadPrices(strings.NewReader(`{"currency": "EUR", "cpuCoreHour": 0.02, "gpuHour": {"H100-80GB": 6.5, "MI300X": 4}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Currency != "EUR" || p.CPUCoreHour != 0.02 || p.MemoryGiBHour != 0.0042 || p.GPU("H100-80GB") != 6.5 ||
		p.GPU("MI300X") != 4 || p.GPU("T4") != 0.35 || p.GPU("unknown") != 2.5 {
		t.Errorf("got %+v", p)
	}
	for in, want := range map[string]string{
		`{"cpu": 1}`:                `prices: json: unknown field "cpu"`,
		`{"cpuCoreHour": -1}`:       "prices: cpuCoreHour = -1, must be a finite number >= 0",
		`{"gpuHour": {"T4": -0.5}}`: "prices: gpuHour.T4 = -0.5, must be a finite number >= 0",
		`{"currency": " "}`:         "prices: currency: empty",
		`not json`:                  "prices: invalid character 'o' in literal null (expecting 'u')",
	} {
		if _, err := ReadPrices(strings.NewReader(in)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", in, err, want)
		}
	}
}

// Costs: one replica of 1 core and 1 GiB, recommended 0.46 cores and
// 690 MiB: (1 * 0.0316 + 1 * 0.0042) * 730 = 26.13 now, (0.46 * 0.0316 +
// 690/1024 * 0.0042) * 730 = 12.68 recommended.
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
	want := Cost{MonthlyNow: 26.13, MonthlyRecommended: 12.68, MonthlySavings: 13.45}
	if r.Workloads[0].Cost != want || r.Totals != want {
		t.Errorf("cost %+v, totals %+v, want %+v", r.Workloads[0].Cost, r.Totals, want)
	}
}
