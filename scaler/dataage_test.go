package scaler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
)

// TestDataAgeCardinality registers 50 custom queries, one per ScaledObject,
// and a requests trigger: ebb_data_age_seconds has two series, the
// requests shape and shape="query" holding the oldest query's age, unless
// perQuery, when it has one per query.
func TestDataAgeCardinality(t *testing.T) {
	for _, perQuery := range []bool{false, true} {
		src := &queriestest.FakeSource{}
		clk := clock.NewMock()
		clk.Set(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		c, err := NewCollector(Config{Source: src, Interval: 5 * time.Second, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		req := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
		c.Register(req, queries.WorkloadKey{Namespace: "shop", Name: "cart"}, 0, 0)
		var stale queries.Shape
		for i := range 50 {
			shape := queries.Shape{Signal: queries.SignalQuery, Expr: `sum(rate(jobs_total{namespace="shop",queue="q` + string(rune('a'+i%26)) + strings.Repeat("x", i) + `"}[1m]))`}
			c.Register(shape, queries.WorkloadKey{Namespace: "shop", Name: "worker"}, 0, 0)
			stale = shape
		}
		c.Refresh(context.Background())
		// One query fails from now on: its data ages, the others' do not.
		src.FailShape(stale, context.DeadlineExceeded)
		clk.Add(30 * time.Second)
		c.Refresh(context.Background())
		reg := prometheus.NewRegistry()
		RegisterDataAge(reg, c, perQuery)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		if want := map[bool]int{false: 2, true: 51}[perQuery]; len(got) != want {
			t.Errorf("perQuery=%v: %d series, want %d", perQuery, len(got), want)
		}
		if perQuery {
			if got[stale.String()] != 30 {
				t.Errorf("perQuery: the failing query's age = %v, want 30", got[stale.String()])
			}
			continue
		}
		want := map[string]float64{"query": 30, "requests[1m]": 0}
		if len(got) != 2 || got["query"] != want["query"] || got["requests[1m]"] != want["requests[1m]"] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
