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

// busyUntil is when hist/burst's traffic and GPU use stop: its counter
// stays flat and its GPU at 0% afterwards, for the rest of the 10 minutes.
var busyUntil = storetest.Epoch.Add(4 * time.Minute)

func burstHistory() []storetest.Series {
	reqs := storetest.Linear(storetest.Epoch, step, n, 1000, 3*step.Seconds())
	util := storetest.Constant(storetest.Epoch, step, n, 50)
	for i := range reqs {
		if reqs[i].T.After(busyUntil) {
			reqs[i].V = reqs[i-1].V
			util[i].V = 0
		}
	}
	return []storetest.Series{
		{Metric: "istio_requests_total", Labels: destination("hist", "burst", "hist", "client", "200"), Samples: reqs},
		{Metric: "DCGM_FI_DEV_GPU_UTIL", Labels: map[string]string{"gpu": "0", "namespace": "hist", "pod": "burst-0"}, Samples: util},
	}
}

func TestIntegrationLastActive(t *testing.T) {
	ctx := context.Background()
	burst := queries.WorkloadKey{Namespace: "hist", Name: "burst"}
	// The last step (15 s apart, the history's own) whose value is above
	// activation 0, looking back 10m from +10m.
	tests := []struct {
		name  string
		shape queries.Shape
		want  map[string]time.Time // by store
	}{
		// The last increase is between the samples at 3m45s and 4m.
		// Prometheus 2.x range selectors cover [t-1m, t] (Prometheus 3 made
		// them left-open), so at 4m45s both samples are inside and at 5m
		// only flat ones. VictoriaMetrics covers (t-1m, t] but also uses
		// the sample just before: at 4m45s that is the one at 3m45s.
		{"requests", queries.Shape{Signal: queries.SignalRequests, Window: time.Minute},
			map[string]time.Time{"prometheus": busyUntil.Add(45 * time.Second), "victoriametrics": busyUntil.Add(45 * time.Second)}},
		// avg_over_time holds the 50% sample at 4m while it is in the
		// window: up to 5m in Prometheus 2.x's [t-1m, t], 4m45s in
		// VictoriaMetrics' (t-1m, t].
		{"gpu", queries.Shape{Signal: queries.SignalGPU, Window: time.Minute},
			map[string]time.Time{"prometheus": busyUntil.Add(time.Minute), "victoriametrics": busyUntil.Add(45 * time.Second)}},
		// An instant selector sees the 50% sample until the 0% one at 4m15s.
		{"query", queries.Shape{Signal: queries.SignalQuery, Expr: `sum(DCGM_FI_DEV_GPU_UTIL{namespace="hist"})`},
			map[string]time.Time{"prometheus": busyUntil, "victoriametrics": busyUntil}},
	}
	eachStore(t, func(t *testing.T, srv *storetest.Server, src *promapi.Prometheus) {
		for _, tt := range tests {
			got, err := src.LastActive(ctx, tt.shape, 0, 10*time.Minute, step, at)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var found *queries.LastActive
			for i := range got {
				w := got[i].Workload
				if w == burst || (tt.shape.Signal == queries.SignalQuery && w == queries.WorkloadKey{}) {
					found = &got[i]
				}
			}
			if found == nil {
				t.Errorf("%s: no last activity for %v in %v", tt.name, burst, got)
				continue
			}
			if want := tt.want[srv.Name]; !found.At.Equal(want) {
				t.Errorf("%s: last active %v, want %v", tt.name, found.At.Sub(storetest.Epoch), want.Sub(storetest.Epoch))
			}
		}
		// Steady workloads are active at the last step; a high activation
		// finds nobody.
		got, err := src.LastActive(ctx, queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, 0, 10*time.Minute, step, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, la := range got {
			if la.Workload == (queries.WorkloadKey{Namespace: "shop", Name: "web"}) && !la.At.Equal(at) {
				t.Errorf("shop/web last active %v, want %v", la.At, at)
			}
		}
		if got, err := src.LastActive(ctx, queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, 1000, 10*time.Minute, step, at); err != nil || len(got) != 0 {
			t.Errorf("activation 1000: %v, %v; want nothing", got, err)
		}
	})
}

func TestLastActiveBadInput(t *testing.T) {
	src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.LastActive(context.Background(), queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, 0, 0, step, at)
	var qe *queries.QueryError
	if !errors.As(err, &qe) || qe.Kind != queries.KindBadData || err.Error() != "query requests[1m]: bad_data: lookback = 0s, step = 15s, activation = 0: want positive durations and a finite activation" {
		t.Errorf("got %v", err)
	}
}

func TestIntegrationPing(t *testing.T) {
	eachStore(t, func(t *testing.T, _ *storetest.Server, src *promapi.Prometheus) {
		if err := src.Ping(context.Background(), at); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
	down, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	var qe *queries.QueryError
	if err := down.Ping(context.Background(), at); !errors.As(err, &qe) || qe.Kind != queries.KindUnreachable {
		t.Errorf("Ping of a closed port: %v, want unreachable", err)
	}
}
