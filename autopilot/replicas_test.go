package autopilot

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/backtest"
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
//
// A 30s wake makes 11 cold starts a day 5.5 minutes of waiting, within
// the 15 minutes of MaxWaitPerDay (TestBacktestKeepWarm has GPU's 2m).
func TestBacktestHandComputed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ColdStart.GPU = 30 * time.Second
	r := mustRecommend(t, idleDay(t, cfg))
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

// The idleAfter advice is the backtest package's engine: every candidate
// of idleDay at zero and cold as backtest.Replay has ebb's policy with that
// idleAfter (a tick and a rate window of one sample, min uptime, KEDA's
// cooldown) on the same series, the workload up at its first sample.
func TestBacktestIsTheEngine(t *testing.T) {
	cfg := DefaultConfig()
	a := workloadOf(t, mustRecommend(t, idleDay(t, cfg)), notebook).Autoshutdown
	// Samples at minutes 1..1440; the replay's steps end at 2..1440.
	w := &backtest.Workload{Key: notebook, Start: t0.Add(time.Minute), Step: time.Minute,
		Requests: make([]float64, 1439), UpAtStart: true}
	for i := range w.Requests {
		if r := (i + 2) % 120; r >= 1 && r <= 10 {
			w.Requests[i] = 60
		}
	}
	if len(a.Candidates) != len(cfg.IdleAfterCandidates) {
		t.Fatalf("%d candidates, want %d", len(a.Candidates), len(cfg.IdleAfterCandidates))
	}
	for i, idle := range cfg.IdleAfterCandidates {
		p := backtest.DefaultEbb(idle)
		p.MinUptime, p.Cooldown, p.Tick, p.Window = cfg.MinUptime, cfg.Cooldown, time.Minute, time.Minute
		out := backtest.Replay(w, p, backtest.Options{})
		c := a.Candidates[i]
		if zero := round(1439.0/60-out.ReplicaHours, 3); math.Abs(c.ZeroHours-zero) > 0.002 || c.ColdStarts != out.ColdStarts {
			t.Errorf("idleAfter %s: %v h at zero, %d cold starts; the engine: %v and %d", c.IdleAfter, c.ZeroHours, c.ColdStarts, zero, out.ColdStarts)
		}
	}
}

// With a GPU model server's default wake of 2m, 11 cold starts a day make
// callers wait 22 minutes a day, more than MaxWaitPerDay's 15: one replica
// is kept warm, at the cost of what idleAfter 5m would have saved. Its 2
// replicas (no requests: priced at nothing but the T4, $0.35 an hour)
// scale to 1 at a target of 0.5 req/s (1 req/s over 2 replicas), so
// idleAfter 5m saves 1211 of 1440 minutes of that one T4: 0.35 * 730 *
// 1211/1440 = $214.86 a month.
func TestBacktestKeepWarm(t *testing.T) {
	w := workloadOf(t, mustRecommend(t, idleDay(t, DefaultConfig())), notebook)
	a := w.Autoshutdown
	if a.Recommended || !a.KeepWarm || a.KeepWarmInstead != "5m" || a.KeepWarmMonthly != 214.86 || a.ColdStart != "2m" || a.ColdStartFrom != "default gpu" {
		t.Errorf("got %+v", a)
	}
	want := "keep one replica warm (minReplicas: 1): idleAfter 5m would save $214.86 a month at zero 84.1% of the time, but its 11 cold starts a day at 2m each would make callers wait about 22m a day, more than 15m; keeping one replica warm costs those $214.86; replicas assumed at today's 2 throughout"
	if a.Reason != want {
		t.Errorf("reason\n got %q\nwant %q", a.Reason, want)
	}
	if c := a.Candidates[0]; c.WaitMinutesPerDay != 22 {
		t.Errorf("5m: wait %v minutes a day, want 22", c.WaitMinutesPerDay)
	}
	if w.Scaling.MinReplicas != 1 {
		t.Errorf("min replicas %d, want 1 (kept warm)", w.Scaling.MinReplicas)
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

// A gap in the data is unknown: the workload keeps the replicas it had (here
// zero, as KEDA keeps them on a scaler error), and the return of data
// without traffic is no wake and no cold start.
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
	// Idle at 1+5 = 6, at zero from 11 to 120 (109 min): through the gap
	// from 31 to 90, and after it, since no traffic came back.
	if c.ZeroHours != round(109.0/60, 3) || c.ColdStarts != 0 {
		t.Errorf("got %+v, want %v h at zero and no cold start", c, round(109.0/60, 3))
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
	if !(s.Basis == "p95 of the request rate while active (23.61 req/s) over today's 4 replicas; maxReplicas from the highest 1h rate, 24 req/s at 2026-01-02 00:00 UTC, +15% headroom") {
		t.Errorf("basis %q", s.Basis)
	}
}

// An autoscaled workload: 2 replicas at 20 req/s for 12 hours, 10 at 100
// req/s for 12, 2 today. Every replica handled 10 req/s, so the target is
// p95 of 10s: bucket 127's end (0.02 * (1.05^128 - 1) = 10.29) capped at
// the largest sample, 10. Today's 2 replicas would have made it the p95 of
// the workload's rate, 100, over 2: 50. p10 is 20's bucket end, 20.39 ->
// 3 replicas; max 100 * 1.15 / 10 = 11.5 -> 12.
func TestScalingTargetFromReplicasOverTime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CPU.HalfLife = 0
	h := newHistory(t, cfg, 24*time.Hour, time.Hour)
	h.SetReplicas(shop, 2)
	each(h, func(i int, at time.Time) {
		replicas, rps := 2.0, 20.0
		if i > 12 {
			replicas, rps = 10, 100
		}
		h.Replicas(shop, at, replicas)
		h.RequestRate(shop, at, rps)
	})
	s := workloadOf(t, mustRecommend(t, h), shop).Scaling
	if s.TargetRPS != 10 || s.MinReplicas != 3 || s.MaxReplicas != 12 {
		t.Errorf("target %v, replicas %d..%d; want 10, 3..12 (got %+v)", s.TargetRPS, s.MinReplicas, s.MaxReplicas, s)
	}
	if want := "p95 of the request rate per replica while active (10 req/s), each over the replicas that ran then; maxReplicas from the highest 1h rate, 100 req/s at 2026-01-01 13:00 UTC, +15% headroom"; s.Basis != want {
		t.Errorf("basis %q, want %q", s.Basis, want)
	}
}

// replicaDay is idleDay's traffic (1 req/s in minutes 1..10 of every 2
// hours) for a workload whose current replicas are today, with replicas
// read from minute from on: before until minute 720, after from 721. Its
// pod has one T4 (a framebuffer sample, no utilization: the GPU gets no
// recommendation and is priced as it is) and a container of 1 core and
// 1 GiB without usage samples (priced as it is).
func replicaDay(t *testing.T, from int, before, after float64, today int) *History {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ColdStart.GPU = 30 * time.Second // 11 cold starts a day within MaxWaitPerDay
	h := newHistory(t, cfg, 24*time.Hour, time.Minute)
	h.SetReplicas(notebook, today)
	h.SetResources(ContainerRef{Workload: notebook, Pod: "notebook-0", Container: "jupyter"}, Resources{CPURequest: 1, MemoryRequest: GiB})
	h.Framebuffer(GPURef{Workload: notebook, Pod: "notebook-0", GPU: "0", Model: "Tesla T4"}, t0, 1000, 15360)
	each(h, func(m int, at time.Time) {
		if m >= from {
			n := before
			if m > 720 {
				n = after
			}
			h.Replicas(notebook, at, n)
		}
		rps := 0.0
		if r := m % 120; r >= 1 && r <= 10 {
			rps = 1
		}
		h.RequestRate(notebook, at, rps)
	})
	return h
}

// The backtest prices each minute at zero at the replicas that ran then.
// TestBacktestHandComputed's minutes at zero: with idleAfter 5m those
// ending at 120k+21 .. 120k+121 (101 a cycle, 100 in the last), with 15m
// at 120k+31 .. 120k+121 (91, and 90).
func TestBacktestReplicasOverTime(t *testing.T) {
	// 3 replicas until minute 720, then 1; today 5, which must not count.
	//   5m:  cycles 0-4 at 3: 5*101*3 = 1515; cycle 5 (621..721): 100*3 + 1;
	//        cycles 6-10: 5*101; cycle 11: 100. 2421 replica-minutes = 40.35 h.
	//   15m: 5*91*3 = 1365; cycle 5 (631..721): 90*3 + 1; 5*91; 90.
	//        2181 replica-minutes = 36.35 h.
	// Used: 720*3 + 720*1 = 2880 replica-minutes = 48 h; 2 on average.
	w := workloadOf(t, mustRecommend(t, replicaDay(t, 1, 3, 1, 5)), notebook)
	if want := (ReplicaHistory{Source: ReplicasFromHistory, Mean: 2, Min: 1, Max: 3, Samples: 1440, Hours: 24, ReplicaHours: 48,
		Note: "1 to 3 replicas, 2 on average, over 24 hours"}); w.ReplicaHistory != want {
		t.Errorf("replica history\n got %+v\nwant %+v", w.ReplicaHistory, want)
	}
	a := w.Autoshutdown
	if a.ReplicaHoursUsed != 48 || a.GPUHoursUsed != 48 {
		t.Errorf("used %v replica-hours, %v GPU-hours; want 48 and 48", a.ReplicaHoursUsed, a.GPUHoursUsed)
	}
	byIdle := map[string]Backtest{}
	for _, c := range a.Candidates {
		byIdle[c.IdleAfter] = c
	}
	check := func(idle string, saved, with float64) {
		t.Helper()
		if c := byIdle[idle]; c.ReplicaHoursSaved != saved || c.ReplicaHoursWith != with || c.GPUHoursSaved != saved {
			t.Errorf("idleAfter %s: %+v; want %v replica- and GPU-hours saved, %v with", idle, c, saved, with)
		}
	}
	check("5m", 40.35, 7.65)
	check("15m", 36.35, 11.65)
	check("4h", 0, 48)
	if !a.Recommended || a.IdleAfter != "5m" || !strings.Contains(a.Reason, "saving 40.35 of its 48 replica-hours ($236.84 a month), with 11 cold starts (11 a day, about 5m30s of waiting a day at 30s each)") ||
		strings.Contains(a.Reason, "assumed") {
		t.Errorf("recommendation %v %q: %s", a.Recommended, a.IdleAfter, a.Reason)
	}
	// Cost per replica-hour: 1 core 0.0316 + 1 GiB 0.0042 + a T4 0.35 =
	// 0.3858. Now: 2 replicas on average, 0.3858 * 730 * 2 = 563.27.
	// Scaling: each replica handled 1/3 or 1 req/s, p95 1: target 1, 1-2
	// replicas; replayed, every minute needs 1 (1 req/s or none): 1
	// replica saved, 281.63. With idleAfter 5m that one replica is at zero
	// 1211 of 1440 minutes (20.183 h, rounded to 3 decimals): 281.634 *
	// 20.183/24 = 236.84 saved, 44.79 left.
	if want := (Cost{MonthlyNow: 563.27, MonthlyRecommended: 44.79, MonthlySavings: 518.48,
		SavingsBy: Savings{Replicas: 281.63, Autoshutdown: 236.84}}); w.Cost != want {
		t.Errorf("cost %+v, want %+v", w.Cost, want)
	}
	if w.Replicas != 5 {
		t.Errorf("replicas %d, want today's 5", w.Replicas)
	}
}

// Before a workload's first replica sample it ran none, as far as both the
// replica-hours used and saved go; today's 4 replicas do not stand in.
func TestBacktestReplicasFromMidHistory(t *testing.T) {
	// 1 replica from minute 601. 5m: minutes at zero ending at 601 (1),
	// in cycles 5-10 (6*101) and 11 (100): 707 replica-minutes = 11.783 h
	// of 840 replica-minutes = 14 h used.
	w := workloadOf(t, mustRecommend(t, replicaDay(t, 601, 1, 1, 4)), notebook)
	if rh := w.ReplicaHistory; rh.Source != ReplicasFromHistory || rh.Mean != 1 || rh.Samples != 840 || rh.Hours != 14 || rh.ReplicaHours != 14 {
		t.Errorf("replica history %+v", rh)
	}
	c := w.Autoshutdown.Candidates[0]
	if c.IdleAfter != "5m" || c.ReplicaHoursSaved != 11.783 || c.ReplicaHoursWith != 2.217 {
		t.Errorf("5m: %+v, want 11.783 replica-hours saved, 2.217 with", c)
	}
}

// Without replica samples, today's replicas stand for the whole history,
// and the report says so.
func TestBacktestReplicasFallBackToCurrent(t *testing.T) {
	w := workloadOf(t, mustRecommend(t, idleDay(t, DefaultConfig())), notebook)
	want := ReplicaHistory{Source: ReplicasFromCurrent, Mean: 2, Min: 2, Max: 2, Hours: 24, ReplicaHours: 48,
		Note: "no replicas over time in the history (kube-state-metrics' Deployment and StatefulSet status.replicas): today's 2 assumed throughout"}
	if w.ReplicaHistory != want {
		t.Errorf("replica history\n got %+v\nwant %+v", w.ReplicaHistory, want)
	}
	a := w.Autoshutdown
	if a.ReplicaHoursUsed != 48 || !strings.HasSuffix(a.Reason, "; replicas assumed at today's 2 throughout") {
		t.Errorf("used %v, reason %q", a.ReplicaHoursUsed, a.Reason)
	}
	// 1211 minutes at zero at 2 replicas: 40.367 h saved, 7.633 with.
	if c := a.Candidates[0]; c.ReplicaHoursSaved != round(2*1211.0/60, 3) || c.ReplicaHoursWith != round(48-2*1211.0/60, 3) {
		t.Errorf("5m: %+v", c)
	}
}

// Replica changes wait for the request rate only up to settleReplicas:
// whatever the history's length, a workload keeps at most the changes of
// one chunk, with a request rate or without.
func TestReplicasMemoryBounded(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 30*24*time.Hour, time.Minute)
	quiet := queries.WorkloadKey{Namespace: "ml", Name: "quiet"} // replicas only
	most := 0
	each(h, func(m int, at time.Time) {
		n := float64(m % 2) // a change every minute
		h.Replicas(quiet, at, n)
		h.Replicas(notebook, at, n)
		h.RequestRate(notebook, at, 0)
		if m%(24*60) == 0 { // the end of a chunk of a day
			most = max(most, len(h.workloads[quiet].replicaPending))
			h.settleReplicas(at)
			if n := len(h.workloads[quiet].replicaPending); n != 0 {
				t.Fatalf("minute %d: %d changes pending after settling", m, n)
			}
		}
		if n := len(h.workloads[notebook].replicaPending); n != 0 {
			t.Fatalf("minute %d: %d changes pending after the request rate", m, n)
		}
	})
	if most != 24*60 {
		t.Errorf("at most %d changes pending in a chunk, want a day's 1440", most)
	}
	// A workload with replicas only is not a row of the report.
	for _, w := range mustRecommend(t, h).Workloads {
		if w.Name == "quiet" {
			t.Errorf("workload %s/%s with replicas only in the report", w.Namespace, w.Name)
		}
	}
}
