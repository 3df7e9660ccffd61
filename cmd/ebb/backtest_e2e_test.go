package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ebbscale/ebb/backtest"
	"github.com/ebbscale/ebb/queries/storetest"
)

// TestBacktestFromTheStore replays three days of a job every 2h, backfilled
// into a real Prometheus, through every policy: ebb auto learns the rhythm
// in the 2-day warm-up and hides the next day's cold starts. A twin of the
// job runs 3 replicas (kube-state-metrics says so): it costs three times
// the replica-hours under every policy.
func TestBacktestFromTheStore(t *testing.T) {
	history := jobHistory()
	twin := history[0]
	twin.Labels = map[string]string{}
	for k, v := range history[0].Labels {
		twin.Labels[k] = v
	}
	twin.Labels["destination_workload"] = "report-gpu3"
	var three []storetest.Sample
	for _, s := range twin.Samples {
		three = append(three, storetest.Sample{T: s.T, V: 3})
	}
	history = append(history, twin, storetest.Series{Metric: "kube_deployment_status_replicas",
		Labels: map[string]string{"namespace": "batch", "deployment": "report-gpu3", "job": "kube-state-metrics"}, Samples: three})
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: history})
	end := storetest.Epoch.Add(72 * time.Hour)
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), []string{"backtest", "--source", "prometheus", "--prometheus-url", prom.URL,
		"--history", "1d", "--warmup", "2d", "--step", "1m", "--end", end.Format(time.RFC3339), "--format", "json"}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res backtest.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Workloads) != 2 || res.Workloads[0].Workload != "batch/report" || res.Workloads[1].Workload != "batch/report-gpu3" {
		t.Fatalf("workloads %+v, want batch/report and batch/report-gpu3", res.Workloads)
	}
	for i, o := range res.Workloads[0].Outcomes {
		if o3 := res.Workloads[1].Outcomes[i]; !near(o3.ReplicaHours, 3*o.ReplicaHours, 0.01) {
			t.Errorf("%s: %v replica-hours with 3 replicas, %v with 1; want three times", o.Policy, o3.ReplicaHours, o.ReplicaHours)
		}
	}
	w := res.Workloads[0]
	// The last day holds 12 runs of 10 minutes at 2 req/s: 14,400 requests.
	if w.Requests < 14000 || w.Requests > 14800 {
		t.Errorf("%v requests in the last day, want about 14,400", w.Requests)
	}
	by := map[string]backtest.Outcome{}
	for _, o := range w.Outcomes {
		by[o.Policy] = o
	}
	auto, fixed := by["ebb-auto"], by["ebb-15m"]
	if fixed.ColdStarts < 11 || auto.ColdStarts > 2 || auto.HiddenColdStarts < 10 || auto.GPUHours >= fixed.GPUHours {
		t.Errorf("ebb-15m %d cold starts, %v GPU-h; ebb-auto %d cold starts (%d hidden), %v GPU-h (%s); want 11-12, auto at most 2 with 10 hidden and fewer GPU-h",
			fixed.ColdStarts, fixed.GPUHours, auto.ColdStarts, auto.HiddenColdStarts, auto.GPUHours, auto.Note)
	}
}

func near(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }
