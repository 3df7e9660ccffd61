package autopilot

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

var (
	shop = queries.WorkloadKey{Namespace: "shop", Name: "cart"}
	app  = ContainerRef{Workload: shop, Pod: "cart-0", Container: "app"}
)

func newHistory(t *testing.T, cfg Config, d, step time.Duration) *History {
	t.Helper()
	h, err := NewHistory(cfg, t0, t0.Add(d), step)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// each calls f at every step of (start, end].
func each(h *History, f func(i int, at time.Time)) {
	i := 0
	for at := h.start.Add(h.step); !at.After(h.end); at = at.Add(h.step) {
		i++
		f(i, at)
	}
}

func containerOfReport(t *testing.T, r *Report, k queries.WorkloadKey, name string) ContainerReport {
	t.Helper()
	for _, w := range r.Workloads {
		if w.Namespace == k.Namespace && w.Name == k.Name {
			for _, c := range w.Containers {
				if c.Name == name {
					return c
				}
			}
		}
	}
	t.Fatalf("no container %s in %s", name, k)
	return ContainerReport{}
}

func mustRecommend(t *testing.T, h *History) *Report {
	t.Helper()
	r, err := Recommend(h, DefaultPrices(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Three days of hourly samples: CPU at a constant 0.4 cores; memory at
// 500 MiB with one 600 MiB sample on day 1.
func TestRecommendCPUAndMemoryHandComputed(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 72*time.Hour, time.Hour)
	h.SetResources(app, Resources{CPURequest: 1, MemoryRequest: 1 * GiB, MemoryLimit: 1 * GiB})
	each(h, func(i int, at time.Time) {
		h.CPU(app, at, 0.4)
		mem := 500.0 * MiB
		if i == 30 {
			mem = 600 * MiB
		}
		h.Memory(app, at, mem)
	})
	r := mustRecommend(t, h)
	c := containerOfReport(t, r, shop, "app")

	// CPU: p90 = 0.4 (one value), +15% = 0.46. Samples at 1h..72h: span
	// 71h = 2.958 days, 72 samples = 3 days: confidence 2.96 days; bounds
	// 0.46 / (1 + 1/2.96) = 0.3438 -> 344m and 0.46 * 1.3378 = 0.6154 -> 616m.
	cpu := c.CPU
	want := ResourceRecommendation{
		CurrentRequest: 1, Request: 0.46, Lower: 0.344, Upper: 0.616, Limit: 0,
		Percentile: 0.4, Max: 0.4, Samples: 72, HistoryHours: 71, Confidence: 2.96,
		Basis: "p90 of 72 samples = 0.4 cores, +15%",
	}
	if !near(cpu.Request, want.Request) || !near(cpu.Lower, want.Lower) || !near(cpu.Upper, want.Upper) ||
		cpu.Limit != 0 || cpu.Percentile != want.Percentile || cpu.Samples != 72 || cpu.Confidence != 2.96 ||
		cpu.HistoryHours != 71 || cpu.Basis != want.Basis || cpu.CurrentRequest != 1 {
		t.Errorf("cpu:\n got %+v\nwant %+v", cpu, want)
	}

	// Memory: daily peaks (days from the start) are 500 MiB at 1h, 600 MiB
	// at 30h, 500 MiB at 48h and 500 MiB at 72h, weighing 2^(1/24), 2^1.25,
	// 2^2 and 2^3: 1.029 + 2.378 + 4 + 8 = 15.41. 500 MiB holds 13.03/15.41
	// = 85% of the weight, so p95 is 600 MiB; +15% = 690 MiB, and the limit
	// equals the request.
	mem := c.Memory
	if mem.Percentile != 600*MiB || mem.Request != 690*MiB || mem.Limit != 690*MiB {
		t.Errorf("memory: p95 %v, request %v, limit %v; want %v, %v, %v",
			mem.Percentile, mem.Request, mem.Limit, 600.0*MiB, 690.0*MiB, 690.0*MiB)
	}
	if mem.Basis != "p95 of 4 daily peaks = 600Mi, +15%" {
		t.Errorf("memory basis %q", mem.Basis)
	}
	// 1 core -> 460m and 1Gi -> 690Mi on one replica save (0.54 x 0.0316 +
	// 334/1024 x 0.0042) x 730 = $13.45 a month (now and recommended rounded to cents first): not at risk, and below
	// the $100 of a warning.
	w := r.Workloads[0]
	if w.Severity != SeverityOK || w.Cost.MonthlySavings != 13.45 {
		t.Errorf("severity %s, savings %v; want ok, 13.45", w.Severity, w.Cost.MonthlySavings)
	}
	if want := "no risk, and savings of $13.45 a month are below $100.00 or 5% of its cost"; w.SeverityReason != want {
		t.Errorf("severity reason %q, want %q", w.SeverityReason, want)
	}
}

func TestRecommendMemoryPercentileOfPeaks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MemoryPercentile = 0.8
	h := newHistory(t, cfg, 72*time.Hour, time.Hour)
	each(h, func(i int, at time.Time) {
		h.CPU(app, at, 0.4)
		mem := 500.0 * MiB
		if i == 30 {
			mem = 600 * MiB
		}
		h.Memory(app, at, mem)
	})
	// p80 stays in 500 MiB's bucket (85% of the weight): bucket 26 of
	// 1e7 * (1.05^i - 1) / 0.05, whose end is 2e8 * (1.05^27 - 1) =
	// 546,691,... bytes, +15%, rounded up to a MiB.
	end26 := 2e8 * (math.Pow(1.05, 27) - 1)
	c := containerOfReport(t, mustRecommend(t, h), shop, "app")
	if !near(c.Memory.Percentile, end26) {
		t.Errorf("p80 = %v, want %v", c.Memory.Percentile, end26)
	}
	if want := math.Ceil(end26*1.15/MiB) * MiB; c.Memory.Request != want {
		t.Errorf("request = %v, want %v", c.Memory.Request, want)
	}
}

func TestRecommendOOMBump(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 48*time.Hour, time.Hour)
	h.SetResources(app, Resources{CPURequest: 0.5, MemoryRequest: 256 * MiB, MemoryLimit: 512 * MiB})
	each(h, func(i int, at time.Time) {
		h.CPU(app, at, 0.4)
		h.Memory(app, at, 400*MiB)
		h.OOMKilled(app, at, i >= 10 && i < 12 || i >= 30) // two rises: two kills
	})
	r := mustRecommend(t, h)
	c := containerOfReport(t, r, shop, "app")
	// Peaks 400 MiB +15% = 460 MiB; killed at the 512 MiB limit:
	// max(512 + 100, 512 * 1.2 = 614.4) MiB -> 615 MiB.
	if c.OOMKills != 2 {
		t.Errorf("oom kills = %d, want 2", c.OOMKills)
	}
	if c.Memory.Request != 615*MiB {
		t.Errorf("request = %v MiB, want 615", c.Memory.Request/MiB)
	}
	if want := "p95 of 3 daily peaks = 400Mi, +15%; OOM-killed 2 times at 512Mi: max(+100Mi, x1.2) = 615Mi"; c.Memory.Basis != want {
		t.Errorf("basis %q, want %q", c.Memory.Basis, want)
	}
	// At risk: a 256 MiB request under a 400 MiB peak, and OOM kills.
	want := "app's memory request 256Mi is below its peak 400Mi: it is evicted first when the node runs short; app was OOM-killed 2 times"
	if w := r.Workloads[0]; w.Severity != SeverityCritical || w.SeverityReason != want {
		t.Errorf("severity %s %q, want critical %q", w.Severity, w.SeverityReason, want)
	}
}

// Restarts while the last termination is an OOM kill count every kill;
// the flag's rises are the fallback of pods without a restart counter.
func TestRecommendOOMRestarts(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 48*time.Hour, time.Hour)
	h.SetResources(app, Resources{CPURequest: 0.5, MemoryRequest: 256 * MiB, MemoryLimit: 512 * MiB})
	pod := func(p string) ContainerRef { r := app; r.Pod = p; return r }
	each(h, func(i int, at time.Time) {
		h.CPU(app, at, 0.4)
		h.Memory(app, at, 400*MiB)
		// cart-0: OOM-killed at hour 10, twice in hour 11 and at hour 20,
		// the flag up from hour 10 on: one rise, four kills.
		h.OOMKilled(pod("cart-0"), at, i >= 10)
		restarts := map[int]float64{10: 1, 11: 2, 20: 1}[i]
		if i >= 10 {
			h.OOMRestarts(pod("cart-0"), at, restarts) // rows only while OOMKilled
		}
		// cart-1: no restart counter; the flag rises twice: two kills.
		h.OOMKilled(pod("cart-1"), at, i >= 5 && i < 8 || i >= 30)
		// cart-2: OOMKilled before the history, never since: the counter
		// says no kill in the history (the flag alone would say one).
		h.OOMKilled(pod("cart-2"), at, true)
		h.OOMRestarts(pod("cart-2"), at, 0)
	})
	c := containerOfReport(t, mustRecommend(t, h), shop, "app")
	if c.OOMKills != 6 || c.OOMKillsFrom != "restarts, last-terminated-reason" {
		t.Errorf("%d OOM kills from %q, want 6 from restarts and the last terminated reason", c.OOMKills, c.OOMKillsFrom)
	}
	if want := "p95 of 3 daily peaks = 400Mi, +15%; OOM-killed 6 times at 512Mi: max(+100Mi, x1.2) = 615Mi"; c.Memory.Basis != want {
		t.Errorf("basis %q, want %q", c.Memory.Basis, want)
	}

	f := func(name string, feed func(h *History, i int, at time.Time), kills int, from string) {
		t.Helper()
		h := newHistory(t, DefaultConfig(), 48*time.Hour, time.Hour)
		each(h, func(i int, at time.Time) {
			h.Memory(app, at, 400*MiB)
			feed(h, i, at)
		})
		if c := containerOfReport(t, mustRecommend(t, h), shop, "app"); c.OOMKills != kills || c.OOMKillsFrom != from {
			t.Errorf("%s: %d OOM kills from %q, want %d from %q", name, c.OOMKills, c.OOMKillsFrom, kills, from)
		}
	}
	// Three kills in a row at hours 3, 4 and 5, the flag up from the
	// first on: three by the counter, one by the flag alone.
	f("three in a row", func(h *History, i int, at time.Time) {
		h.OOMKilled(app, at, i >= 3)
		if i >= 3 {
			h.OOMRestarts(app, at, map[int]float64{3: 1, 4: 1, 5: 1}[i])
		}
	}, 3, OOMFromRestarts)
	f("three in a row, no counter", func(h *History, i int, at time.Time) {
		h.OOMKilled(app, at, i >= 3)
	}, 1, OOMFromReason)
	// A restart counter that fell back by a restart of kube-state-metrics'
	// view (a negative growth) counts nothing.
	f("negative growth", func(h *History, i int, at time.Time) {
		h.OOMKilled(app, at, true)
		h.OOMRestarts(app, at, map[int]float64{2: -3, 3: 1}[i])
	}, 1, OOMFromRestarts)
	f("never", func(h *History, i int, at time.Time) { h.OOMKilled(app, at, false) }, 0, "")
}

func TestRecommendOOMBumpWithoutLimitUsesPeak(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 48*time.Hour, time.Hour)
	each(h, func(i int, at time.Time) {
		h.CPU(app, at, 0.4)
		h.Memory(app, at, 1000*MiB)
		h.OOMKilled(app, at, i == 5)
	})
	c := containerOfReport(t, mustRecommend(t, h), shop, "app")
	// max(1000 + 100, 1000 * 1.2 = 1200) MiB beats 1000 * 1.15.
	if c.Memory.Request != 1200*MiB {
		t.Errorf("request = %v MiB, want 1200", c.Memory.Request/MiB)
	}
}

func TestRecommendNotEnoughData(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 10*time.Hour, time.Hour)
	each(h, func(_ int, at time.Time) { h.CPU(app, at, 0.4) })
	other := ContainerRef{Workload: shop, Pod: "cart-0", Container: "sidecar"}
	h.SetResources(other, Resources{CPURequest: 0.1})
	r := mustRecommend(t, h)
	c := containerOfReport(t, r, shop, "app")
	if want := "CPU history covers 9h, need 24h"; c.CPU.NotEnoughData != want || c.CPU.Request != 0 {
		t.Errorf("cpu: %q, request %v; want %q, 0", c.CPU.NotEnoughData, c.CPU.Request, want)
	}
	if want := "no memory samples"; c.Memory.NotEnoughData != want {
		t.Errorf("memory: %q, want %q", c.Memory.NotEnoughData, want)
	}
	s := containerOfReport(t, r, shop, "sidecar")
	if s.CPU.NotEnoughData != "no CPU usage samples" {
		t.Errorf("sidecar cpu: %q", s.CPU.NotEnoughData)
	}
	if r.Workloads[0].Severity != SeverityUnknown {
		t.Errorf("severity %s, want unknown", r.Workloads[0].Severity)
	}
	// Without data the current request is priced as it is: no savings.
	if r.Workloads[0].Cost.MonthlySavings != 0 {
		t.Errorf("savings %v, want 0", r.Workloads[0].Cost.MonthlySavings)
	}
}

func TestRecommendFloorsAndLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CPULimitFactor = 2
	cfg.MemoryLimitFactor = 0
	h := newHistory(t, cfg, 48*time.Hour, time.Hour)
	each(h, func(_ int, at time.Time) {
		h.CPU(app, at, 0.001)
		h.Memory(app, at, 10*MiB)
	})
	r := mustRecommend(t, h)
	c := containerOfReport(t, r, shop, "app")
	if c.CPU.Request != 0.01 || c.CPU.Limit != 0.02 {
		t.Errorf("cpu request %v limit %v, want 0.01 and 0.02", c.CPU.Request, c.CPU.Limit)
	}
	if c.Memory.Request != 64*MiB || c.Memory.Limit != 0 {
		t.Errorf("memory request %v limit %v, want 64 MiB and none", c.Memory.Request, c.Memory.Limit)
	}
	if !strings.HasSuffix(c.CPU.Basis, ", raised to the floor of 10m") {
		t.Errorf("cpu basis %q", c.CPU.Basis)
	}
	if r.Policy.CPULimit != "the request x2, as configured" || !strings.HasPrefix(r.Policy.MemoryLimit, "none, as configured") {
		t.Errorf("policy %+v", r.Policy)
	}
}

// Confidence widens the bounds when history is short.
func TestRecommendConfidenceWidens(t *testing.T) {
	width := func(d time.Duration) float64 {
		h := newHistory(t, DefaultConfig(), d, time.Hour)
		each(h, func(_ int, at time.Time) { h.CPU(app, at, 1) })
		c := containerOfReport(t, mustRecommend(t, h), shop, "app")
		return c.CPU.Upper / c.CPU.Lower
	}
	short, long := width(25*time.Hour), width(14*24*time.Hour)
	// One day: (1 + 1/1)^2 = 4; 14 days: (1 + 1/13.96)^2 = 1.148.
	if !(short > 3.9 && short < 4.1) || !(long > 1.14 && long < 1.16) {
		t.Errorf("upper/lower = %v after a day, %v after 14 days; want about 4 and 1.15", short, long)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CPUPercentile = 1.5
	cfg.OOMFactor = 0.5
	cfg.MemoryLimitFactor = 0.5
	cfg.IdleAfterCandidates = []time.Duration{time.Hour, time.Minute}
	want := "cpu percentile = 1.5, must be in [0, 1]\n" +
		"oom factor = 0.5, must be >= 1\n" +
		"memory limit factor = 0.5, must be 0 (no limit) or >= 1\n" +
		"idle-after candidates = [1h0m0s 1m0s], must be positive and ascending"
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestNewHistoryErrors(t *testing.T) {
	if _, err := NewHistory(DefaultConfig(), t0, t0, time.Minute); err == nil || !strings.HasPrefix(err.Error(), "history: end 2026-01-01 00:00:00 +0000 UTC is not after start") {
		t.Errorf("got %v", err)
	}
	if _, err := NewHistory(DefaultConfig(), t0, t0.Add(time.Hour), 2*time.Hour); err == nil || err.Error() != "history: step = 2h0m0s, must be in (0, 1h0m0s]" {
		t.Errorf("got %v", err)
	}
}
