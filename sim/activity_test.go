package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
)

func TestActiveSteps(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 16, 8, 0, 0, 0, time.UTC)
	nb := queries.WorkloadKey{Namespace: "notebooks", Name: "carol"}
	c, err := NewCluster(
		// 10 minutes at 1 req/s every 2 hours from start-4h (start-4h, start-2h, start, ...).
		Workload{Key: nb, Traffic: Anchor(Idle(10*time.Minute, 110*time.Minute, 1), start.Add(-4*time.Hour)), Replicas: 1},
		Workload{Key: queries.WorkloadKey{Namespace: "a", Name: "never"}, Traffic: Steady(0), Replicas: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	got, err := c.ActiveSteps(context.Background(), shape, 0, 5*time.Hour, time.Minute, start)
	if err != nil {
		t.Fatal(err)
	}
	// Over (start-5h, start]: the runs from start-4h and start-2h, each
	// seen by the 1m rate at the 10 steps from a minute after its start to
	// its end; the run from start has no request at or before start.
	steps := got[nb]
	if len(steps) != 20 || !steps[0].Equal(start.Add(-4*time.Hour+time.Minute)) || !steps[10].Equal(start.Add(-2*time.Hour+time.Minute)) {
		t.Errorf("got %d steps from %v, want 20: 10 a run from a minute after each start", len(steps), steps)
	}
	if _, ok := got[queries.WorkloadKey{Namespace: "a", Name: "never"}]; ok || len(got) != 1 {
		t.Errorf("got %d workloads, want only the notebook", len(got))
	}
	if n := len(c.Queries()); n != 0 {
		t.Errorf("%d shapes counted as queries, want none", n)
	}
	c.SetFault(errors.New("down"))
	if _, err := c.ActiveSteps(context.Background(), shape, 0, time.Hour, time.Minute, start); err == nil || err.Error() == "" {
		t.Error("no error while the cluster fails")
	}
	if _, err := c.ActiveSteps(context.Background(), queries.Shape{Signal: queries.SignalQuery, Expr: "x"}, 0, time.Hour, time.Minute, start); err == nil ||
		err.Error() != `query query:x: bad_data: the simulator keeps the past of the requests and gpu signals only, not "query"` {
		t.Errorf("query shape: %v", err)
	}
}
