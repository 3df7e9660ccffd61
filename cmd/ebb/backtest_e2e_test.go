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
// in the 2-day warm-up and hides the next day's cold starts.
func TestBacktestFromTheStore(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: jobHistory()})
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
	if len(res.Workloads) != 1 || res.Workloads[0].Workload != "batch/report" {
		t.Fatalf("workloads %+v, want batch/report alone", res.Workloads)
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
