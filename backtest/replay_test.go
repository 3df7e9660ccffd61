package backtest_test

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/backtest"
	"github.com/ebbscale/ebb/queries"
)

// A workload up at the start with no demand: each policy takes it down as
// its timing says, counting from the start.
func TestReplayUpAtStart(t *testing.T) {
	t.Parallel()
	w := &backtest.Workload{Key: queries.WorkloadKey{Namespace: "ml", Name: "idle"}, Start: start,
		Step: 10 * time.Second, Requests: make([]float64, 180), UpAtStart: true}
	for _, c := range []struct {
		policy backtest.Policy
		up     time.Duration
	}{
		// No last active time: to zero at the first poll, at the start.
		{backtest.DefaultKEDA(), 0},
		// The stable window and the grace from the start.
		{backtest.DefaultKnative(), 90 * time.Second},
		// The idle clock recovered at the start: idle 15m later, then
		// KEDA's 30s cooldown.
		{backtest.DefaultEbb(15 * time.Minute), 15*time.Minute + 30*time.Second},
	} {
		got := backtest.Replay(w, c.policy, backtest.DefaultOptions())
		if !near(got.ReplicaHours, c.up.Hours(), 0.0005) || got.ColdStarts != 0 {
			t.Errorf("%s: %.4f replica-hours, %d cold starts; want %.4f, 0", c.policy.Name(), got.ReplicaHours, got.ColdStarts, c.up.Hours())
		}
	}
}

// Steps without data hold the replicas where they are: ebb neither idles
// nor wakes a workload through them, and its idle clock and KEDA's cooldown
// resume when data returns. Minute steps, ebb 5m ticking with them.
func TestReplayerUnknownHoldsReplicas(t *testing.T) {
	t.Parallel()
	ebb := backtest.DefaultEbb(5 * time.Minute)
	ebb.Tick, ebb.Window = time.Minute, time.Minute
	f := func(name string, known func(m int) bool, up time.Duration, cold int) {
		t.Helper()
		w := &backtest.Workload{Key: queries.WorkloadKey{Namespace: "ml", Name: name}, Start: start, Step: time.Minute, UpAtStart: true}
		r := backtest.NewReplayer(w, ebb, backtest.DefaultOptions())
		var got time.Duration
		for m := range 60 {
			from := start.Add(time.Duration(m) * time.Minute)
			demand := 0.0
			if m == 40 {
				demand = 1
			}
			if known(m) {
				got += r.Step(from, from.Add(time.Minute), demand, 1)
			} else {
				got += r.Unknown(from, from.Add(time.Minute), 1)
			}
		}
		out := r.Finish(start.Add(time.Hour))
		if got != up || out.ColdStarts != cold || !near(out.ReplicaHours, up.Hours(), 0.0005) {
			t.Errorf("%s: up %s (%.4f replica-hours), %d cold starts; want %s, %d", name, got, out.ReplicaHours, out.ColdStarts, up, cold)
		}
	}
	// Recovered at 0: idle at the tick of 5m, down at 5m30s's tick, 6m;
	// woken by the request at 40m (the tick at 41m), up to 41m + the 5m
	// min uptime + the 30s cooldown at the tick: 47m. 6 + 6 = 12m.
	f("known", func(int) bool { return true }, 12*time.Minute, 1)
	// No data from 2m to 30m: up through it; idle and down at the first
	// ticks after it, 31m and 32m; the request as before.
	f("gap while up", func(m int) bool { return m < 2 || m >= 30 }, 32*time.Minute+6*time.Minute, 1)
	// No data from 10m to 45m, the request in it unseen: at zero through
	// it, no cold start.
	f("gap while down", func(m int) bool { return m < 10 || m >= 45 }, 6*time.Minute, 0)
}

// ebb auto's pre-wake leads by its workload class's cold start: a CPU
// workload run 5 minutes every hour is woken 2m30s ahead with the
// learner's default lead (a GPU model server's 2m cold start and 30s of
// sampling), 1m ahead with its class's 30s.
func TestEbbAutoLeadsByTheClassColdStart(t *testing.T) {
	t.Parallel()
	w := &backtest.Workload{Key: queries.WorkloadKey{Namespace: "shop", Name: "tool"}, Start: start,
		Step: 10 * time.Second, Requests: make([]float64, 3*24*360)}
	for on := 0; on < len(w.Requests); on += 360 {
		for j := on; j < on+30; j++ { // 5 minutes
			w.Requests[j] = 1
		}
	}
	o := backtest.DefaultOptions() // cpu=30s
	for _, c := range []struct {
		coldStart map[string]time.Duration
		want      string
	}{
		{nil, "auto: keep-alive 1m learned from 71 idle gaps, pre-wake 51m-56m after activity"},
		{o.ColdStart, "auto: keep-alive 1m learned from 71 idle gaps, pre-wake 53m-55m after activity"},
	} {
		auto := backtest.DefaultEbbAuto()
		auto.ColdStart = c.coldStart
		if got := backtest.Replay(w, auto, o).Note; got != c.want {
			t.Errorf("cold starts %v: learned %q, want %q", c.coldStart, got, c.want)
		}
	}
}
