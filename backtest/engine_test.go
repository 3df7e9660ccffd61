package backtest_test

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/backtest"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

var start = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday

// oneRequest is a GPU workload that gets one request at 10m05s, the middle
// of the step from 10m to 10m10s, in 30 minutes.
func oneRequest() *backtest.Workload {
	w := &backtest.Workload{Key: queries.WorkloadKey{Namespace: "ml", Name: "dev-llm"}, GPUsPerReplica: 2,
		Start: start, Step: 10 * time.Second, Requests: make([]float64, 180)}
	w.Requests[60] = 1
	return w
}

func TestReplayTimings(t *testing.T) {
	t.Parallel()
	o := backtest.DefaultOptions() // 2m cold start for GPU workloads
	for _, c := range []struct {
		policy backtest.Policy
		up     time.Duration
		wait   float64
	}{
		// Polls at 10m30s (wake, ready 12m30s: 145s after the request)
		// and 11m00s (the 1m rate still shows it); to zero at the poll
		// 300s after that, 16m00s.
		{backtest.DefaultKEDA(), 5*time.Minute + 30*time.Second, 145},
		// Woken at the request; ready 2m later; to zero 60s + 30s after it.
		{backtest.DefaultKnative(), 90 * time.Second, 120},
		{backtest.DefaultKubeElasti(), 15 * time.Minute, 120},
		// ebb ticks with the 10s steps: wakes at 10m10s (ready 12m10s),
		// active while the 1m rate shows the request (to 11m00s) and
		// min-uptime 5m from the wake, to 15m10s; KEDA's 30s cooldown: 15m40s.
		{backtest.DefaultEbb(time.Minute), 5*time.Minute + 30*time.Second, 125},
		// idleAfter 15m from the last active tick at 11m00s: 26m00s, 26m30s.
		{backtest.DefaultEbb(15 * time.Minute), 16*time.Minute + 20*time.Second, 125},
	} {
		got := backtest.Replay(oneRequest(), c.policy, o)
		wantHours := c.up.Hours()
		if !near(got.ReplicaHours, wantHours, 0.001) || !near(got.GPUHours, 2*wantHours, 0.002) ||
			got.ColdStarts != 1 || got.ColdRequests != 1 || got.WaitSeconds != c.wait {
			t.Errorf("%s: %.4f replica-hours, %.4f GPU-hours, %d cold starts, %v requests waiting %vs; want %.4f, %.4f, 1, 1, %vs",
				c.policy.Name(), got.ReplicaHours, got.GPUHours, got.ColdStarts, got.ColdRequests, got.WaitSeconds, wantHours, 2*wantHours, c.wait)
		}
	}
}

func near(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }

func TestAutoHidesPeriodicColdStarts(t *testing.T) {
	t.Parallel()
	ws, err := backtest.RhythmFleet(start, 10*time.Second, 5*24*time.Hour, 1, backtest.SteadyDemand(0.5))
	if err != nil {
		t.Fatal(err)
	}
	var job *backtest.Workload
	for _, w := range ws {
		if w.Key.Name == "report-2h" {
			job = w
		}
	}
	o := backtest.DefaultOptions()
	o.Warmup = 48 * time.Hour
	fixed := backtest.Replay(job, backtest.DefaultEbb(15*time.Minute), o)
	keda := backtest.Replay(job, backtest.DefaultKEDA(), o)
	auto := backtest.Replay(job, backtest.DefaultEbbAuto(), o)
	// Three days of runs every 2h: 36 cold starts for any fixed policy.
	if fixed.ColdStarts < 35 || keda.ColdStarts < 35 {
		t.Fatalf("fixed 15m %d, KEDA %d cold starts, want about 36", fixed.ColdStarts, keda.ColdStarts)
	}
	// Woken ahead of each run and let go after it: about KEDA's
	// GPU-hours (its 5m cooldown against the pre-wake's lead), fewer than
	// the fixed 15m's.
	if auto.ColdStarts > fixed.ColdStarts/6 || auto.HiddenColdStarts < 30 || auto.GPUHours >= fixed.GPUHours || auto.GPUHours > 1.1*keda.GPUHours {
		t.Errorf("auto: %d cold starts, %d hidden, %.2f GPU-hours; want at most %d, at least 30 hidden, fewer than fixed 15m's %.2f, within 10%% of KEDA's %.2f (%s)",
			auto.ColdStarts, auto.HiddenColdStarts, auto.GPUHours, fixed.ColdStarts/6, fixed.GPUHours, keda.GPUHours, auto.Note)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	f := func(ws []*backtest.Workload, ps []backtest.Policy, want string) {
		t.Helper()
		if _, err := backtest.Run(ws, ps, backtest.DefaultOptions()); err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	ps := backtest.StandardPolicies(shutdown.DefaultLearnConfig(), 0, nil)
	f(nil, ps, "backtest: no workloads")
	f([]*backtest.Workload{oneRequest()}, nil, "backtest: no policies")
	bad := oneRequest()
	bad.Requests[3] = -1
	f([]*backtest.Workload{bad}, ps, "backtest: workload ml/dev-llm: requests in step 3 = -1, must be a finite number >= 0")
	bad = oneRequest()
	bad.Replicas = []float64{1}
	f([]*backtest.Workload{bad}, ps, "backtest: workload ml/dev-llm: 1 replica values for 180 steps")
}
