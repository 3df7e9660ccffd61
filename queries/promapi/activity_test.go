package promapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/storetest"
)

func TestIntegrationActiveSteps(t *testing.T) {
	ctx := context.Background()
	burst := queries.WorkloadKey{Namespace: "hist", Name: "burst"}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	eachStore(t, func(t *testing.T, _ *storetest.Server, src *promapi.Prometheus) {
		got, err := src.ActiveSteps(ctx, shape, 0, 10*time.Minute, step, at)
		if err != nil {
			t.Fatal(err)
		}
		// hist/burst's counter grows from the start until 4m: its 1m rate
		// is above 0 at every 15s step from the first, 15s, to 4m45s (see
		// TestIntegrationLastActive), and at none after.
		steps := got[burst]
		if len(steps) != 19 || !steps[0].Equal(storetest.Epoch.Add(step)) || !steps[18].Equal(busyUntil.Add(45*time.Second)) {
			t.Fatalf("hist/burst active at %d steps %v, want the 19 from 15s to 4m45s", len(steps), steps)
		}
		for i := 1; i < len(steps); i++ {
			if steps[i].Sub(steps[i-1]) != step {
				t.Fatalf("steps %v and %v are not one step apart", steps[i-1], steps[i])
			}
		}
		if got, err := src.ActiveSteps(ctx, shape, 1000, 10*time.Minute, step, at); err != nil || len(got) != 0 {
			t.Errorf("activation 1000: %v, %v; want nothing", got, err)
		}
		// History has every step of the rate, active or not.
		h, err := src.History(ctx, shape, 10*time.Minute, step, at)
		if err != nil {
			t.Fatal(err)
		}
		if pts := h[burst]; len(pts) != 40 || pts[len(pts)-1].V != 0 || pts[0].V <= 0 {
			t.Errorf("hist/burst history: %d points from %v to %v, want 40 from a positive rate to 0", len(pts), pts[0], pts[len(pts)-1])
		}
	})
}

func TestActiveStepsBadInput(t *testing.T) {
	src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.ActiveSteps(context.Background(), queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, 0, 0, step, at)
	var qe *queries.QueryError
	if !errors.As(err, &qe) || qe.Kind != queries.KindBadData || err.Error() != "query requests[1m]: bad_data: lookback = 0s, step = 15s: want positive durations" {
		t.Errorf("got %v", err)
	}
}
