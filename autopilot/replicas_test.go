package autopilot

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

var notebook = queries.WorkloadKey{Namespace: "ml", Name: "notebook"}

// A day of minutes: 1 req/s in the first 10 minutes of every 2 hours
// (minutes m with m mod 120 in 1..10), else 0.
func idleDay(t *testing.T, cfg Config) *History {
	t.Helper()
	h := newHistory(t, cfg, 24*time.Hour, time.Minute)
	h.SetReplicas(notebook, 2)
	each(h, func(m int, at time.Time) {
		rps := 0.0
		if r := m % 120; r >= 1 && r <= 10 {
			rps = 1
		}
		h.RequestRate(notebook, at, rps)
		h.GPUUtil(GPURef{Workload: notebook, Pod: "notebook-0", GPU: "0", Model: "Tesla T4"}, at, rps*50)
	})
	return h
}

func workloadOf(t *testing.T, r *Report, k queries.WorkloadKey) WorkloadReport {
	t.Helper()
	for _, w := range r.Workloads {
		if w.Namespace == k.Namespace && w.Name == k.Name {
			return w
		}
	}
	t.Fatalf("no workload %s", k)
	return WorkloadReport{}
}

// Hand-computed backtest: the last active minute of a cycle is 120k+10.
// With idleAfter 15m the policy turns idle at 120k+25, the 5m cooldown
// ends at 120k+30, and the workload stays at zero until traffic returns at
// 120(k+1)+1, a cold start: 91 minutes a cycle, 90 in the last (to 1440),
// 11*91 + 90 = 1091 minutes and 11 cold starts. With idleAfter 5m: 101 a
// cycle, 11*101 + 100 = 1211 minutes.
func TestBacktestHandComputed(t *testing.T) {
	r := mustRecommend(t, idleDay(t, DefaultConfig()))
	w := workloadOf(t, r, notebook)
	a := w.Autoshutdown
	if a == nil {
		t.Fatal("no autoshutdown recommendation")
	}
	byIdle := map[string]Backtest{}
	for _, c := range a.Candidates {
		byIdle[c.IdleAfter] = c
	}
	check := func(idle string, minutes float64, cold int) {
		t.Helper()
		c := byIdle[idle]
		zh := round(minutes/60, 3)
		if c.ZeroHours != zh || c.ColdStarts != cold || c.ReplicaHoursSaved != round(2*minutes/60, 3) ||
			c.GPUHoursSaved != round(2*minutes/60, 3) || c.ZeroShare != round(minutes/1440, 4) {
			t.Errorf("idleAfter %s: got %+v, want %v h at zero, %d cold starts, %v replica- and GPU-hours",
				idle, c, zh, cold, round(2*minutes/60, 3))
		}
	}
	check("5m", 1211, 11)
	check("15m", 1091, 11)
	check("4h", 0, 0) // active every 2 h: never idle for 4 h
	if !a.Recommended || a.IdleAfter != "5m" {
		t.Errorf("recommended %v %q, want 5m", a.Recommended, a.IdleAfter)
	}
	// 10 of every 120 minutes are active: idle 110/120.
	if a.IdleShare != round(1320.0/1440, 4) {
		t.Errorf("idle share %v", a.IdleShare)
	}
	if w.Scaling == nil || w.Scaling.MinReplicas != 0 {
		t.Errorf("scaling %+v: min replicas must be 0 with autoshutdown", w.Scaling)
	}
}

func TestBacktestColdStartBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxColdStartsPerDay = 10
	a := workloadOf(t, mustRecommend(t, idleDay(t, cfg)), notebook).Autoshutdown
	if a.Recommended {
		t.Errorf("recommended %s despite 11 cold starts a day", a.IdleAfter)
	}
	if want := "no idleAfter keeps the workload at zero 10% of the time with at most 10 cold starts a day"; a.Reason != want {
		t.Errorf("reason %q, want %q", a.Reason, want)
	}
}

// A gap in the data is unknown: the fail-safe keeps the workload up, and
// the return of data is not a cold start.
func TestBacktestGapIsNotIdle(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleAfterCandidates = []time.Duration{5 * time.Minute}
	h := newHistory(t, cfg, 2*time.Hour, time.Minute)
	h.SetReplicas(notebook, 1)
	each(h, func(m int, at time.Time) {
		if m > 30 && m <= 90 {
			return // no data
		}
		h.RequestRate(notebook, at, 0)
	})
	c := workloadOf(t, mustRecommend(t, h), notebook).Autoshutdown.Candidates[0]
	// Idle at 1+5 = 6, at zero from 11 to 30 (19 min); up again at 91
	// (unknown before), idle at 96, zero from 101 to 120 (19 min).
	if c.ZeroHours != round(38.0/60, 3) || c.ColdStarts != 0 {
		t.Errorf("got %+v, want %v h at zero and no cold start", c, round(38.0/60, 3))
	}
}

func TestScalingHandComputed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CPU.HalfLife = 0
	h := newHistory(t, cfg, 24*time.Hour, time.Hour)
	h.SetReplicas(shop, 4)
	// 24 hourly rates 1..24 req/s. Buckets start at 0.02 * (1.05^i - 1)
	// (FirstBucket 0.001). p95 is the 23rd value (22.8 of 24), in bucket
	// 144 (ln(23/0.02 + 1) / ln 1.05 = 144.46), whose end is
	// 0.02 * (1.05^145 - 1) = 23.61; per replica 23.61 / 4 = 5.90 req/s.
	// p10 is 3 (2.4 of 24), bucket 102's end 3.025 -> 1 replica; max
	// 24 * 1.15 / 5.9 = 4.68 -> 5 replicas.
	each(h, func(i int, at time.Time) { h.RequestRate(shop, at, float64(i)) })
	s := workloadOf(t, mustRecommend(t, h), shop).Scaling
	if s.TargetRPS != 5.9 || s.RPSP95 != 23.6108 || s.MinReplicas != 1 || s.MaxReplicas != 5 || s.RPSMax != 24 || s.RPSMean != 12.5 {
		t.Errorf("got %+v", s)
	}
	if !(s.Basis == "p95 of the request rate while active (23.61 req/s) over 4 replicas; max 24 req/s +15% headroom") {
		t.Errorf("basis %q", s.Basis)
	}
}
