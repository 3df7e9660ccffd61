package main

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries/storetest"
)

// jobRuns are the starts of batch/report's runs: 10 minutes of 2 req/s
// every 2 hours from Epoch+10m, for three days (the last at +70h10m).
func jobRuns() []time.Time {
	var out []time.Time
	for t := storetest.Epoch.Add(10 * time.Minute); t.Before(storetest.Epoch.Add(71 * time.Hour)); t = t.Add(2 * time.Hour) {
		out = append(out, t)
	}
	return out
}

// jobHistory is three days of batch/report's istio_requests_total as
// Istio's sidecar reports it, 15s apart until +73h: a counter that grows
// by 30 each sample during a run and stays flat between them.
func jobHistory() []storetest.Series {
	runs := jobRuns()
	end := storetest.Epoch.Add(73 * time.Hour)
	var samples []storetest.Sample
	v := 0.0
	for t := storetest.Epoch; !t.After(end); t = t.Add(15 * time.Second) {
		for _, r := range runs {
			if t.After(r) && !t.After(r.Add(10*time.Minute)) {
				v += 2 * 15
			}
		}
		samples = append(samples, storetest.Sample{T: t, V: v})
	}
	return []storetest.Series{{Metric: "istio_requests_total", Labels: map[string]string{
		"namespace": "batch", "reporter": "destination", "destination_workload_namespace": "batch", "destination_workload": "report",
		"response_code": "200", "source_workload": "report-cron", "source_workload_namespace": "batch"},
		Samples: samples}}
}

// startAutoInstance is `ebb serve --idle-after auto` on a mock clock set at
// at, against the store at promURL.
func startAutoInstance(t *testing.T, promURL string, at time.Time) *instance {
	t.Helper()
	return startInstance(t, promURL, at, "--idle-after=auto", "--min-uptime=1m", "--learn-min-history=48h", "--prewake-budget=4")
}

// TestAutoPreWakesFromBackfilledHistory starts `ebb serve --idle-after
// auto` on a real Prometheus holding three days of a job that runs 10
// minutes every 2 hours (backfilled with promtool), during the last run:
// ebb learns the rhythm from the store on start, answers idle right after
// the work, and active shortly before the next run, with no traffic yet.
func TestAutoPreWakesFromBackfilledHistory(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: jobHistory()})
	runs := jobRuns()
	last := runs[len(runs)-1] // +70h10m
	next := last.Add(2 * time.Hour)
	job := soRef("batch", "report", map[string]string{"signal": "requests", "target": "1"})

	in := startAutoInstance(t, prom.URL, last.Add(5*time.Minute))
	in.isActive(t, job) // KEDA asks: the trigger registers
	in.advance(t, last.Add(5*time.Minute+5*time.Second))
	if !in.isActive(t, job) {
		t.Fatalf("inactive during the run\n%s", in.describe())
	}
	// The counter stops at +70h20m; the 1m rate shows traffic until about
	// +70h21m; the learned keep-alive is 1m: idle by +70h23m.
	in.advance(t, last.Add(23*time.Minute))
	if in.isActive(t, job) {
		t.Fatalf("active 3 minutes after the work: want idle (learned keep-alive)\n%s", in.describe())
	}
	// Idle through the gap...
	in.advance(t, next.Add(-10*time.Minute))
	if in.isActive(t, job) {
		t.Fatalf("active 10 minutes before the next run\n%s", in.describe())
	}
	// ...and active before the next run, which has not started.
	in.advance(t, next.Add(-time.Minute))
	if !in.isActive(t, job) {
		t.Fatalf("idle a minute before the next run: want active (pre-wake)\n%s", in.describe())
	}
}
