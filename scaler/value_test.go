package scaler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
)

func TestValue(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection refused")
	now := t0.Add(time.Hour)
	tests := []struct {
		name    string
		o       Observation
		want    float64
		wantErr string
	}{
		{"fresh", Observation{Value: 4, At: now.Add(-5 * time.Second), OK: true}, 4, ""},
		{"fresh after a failed query", Observation{Value: 4, At: now.Add(-30 * time.Second), Err: boom}, 4, ""},
		{"stale", Observation{Value: 4, At: now.Add(-61 * time.Second), Err: boom}, 0, "value is 1m1s old (max staleness 1m0s): connection refused"},
		{"stale without error", Observation{Value: 4, At: now.Add(-2 * time.Minute), OK: true}, 0, "value is 2m0s old (max staleness 1m0s)"},
		{"never observed", Observation{}, 0, "no value observed yet"},
		{"never observed, failing", Observation{Err: boom}, 0, "no value observed yet: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := value(&tt.o, now, time.Minute)
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
	_, err := value(&Observation{Value: 1, At: t0, Err: boom}, now, time.Minute)
	var se *StaleError
	if !errors.As(err, &se) || !errors.Is(err, boom) || se.Age != time.Hour {
		t.Errorf("stale error %v: want a *StaleError of age 1h wrapping the cause", err)
	}
	if _, err := value(&Observation{}, now, time.Minute); !errors.Is(err, ErrNoValue) {
		t.Errorf("got %v, want ErrNoValue", err)
	}
}

func TestSnapshotValueAndActive(t *testing.T) {
	t.Parallel()
	src := &queriestest.FakeSource{}
	c, clk := newTestCollector(t, src)
	busy := c.Register(reqShape, wk("a", "busy"), 0, 0)
	src.Set(reqShape, queries.Sample{Workload: wk("a", "busy"), Value: 7.5})
	if v, err := c.Snapshot().Value(busy, clk.Now(), time.Minute); !errors.Is(err, ErrNoValue) || v != 0 {
		t.Errorf("before the first tick: %v, %v, want 0 and ErrNoValue", v, err)
	}
	if a := c.Snapshot().Activity(busy); a != Unseen {
		t.Errorf("before the first tick Activity = %s, want unseen", a)
	}
	c.Refresh(context.Background())
	s := c.Snapshot()
	if v, err := s.Value(busy, clk.Now(), time.Minute); err != nil || v != 7.5 {
		t.Errorf("after a tick: %v, %v, want 7.5", v, err)
	}
	if a := s.Activity(busy); a != Active {
		t.Errorf("after a tick Activity = %s, want active", a)
	}
	o, _ := s.Lookup(busy)
	if a := s.Activity(busy); (a == Active) != o.Active {
		t.Errorf("Activity %s disagrees with the observation's %v", a, o.Active)
	}
	if _, err := s.Value(busy, clk.Now().Add(2*time.Minute), time.Minute); err == nil || err.Error() != "value is 2m0s old (max staleness 1m0s)" {
		t.Errorf("two minutes later: %v, want the staleness error", err)
	}
	// An interest registered after the snapshot has no value in it, even if
	// it reuses a forgotten interest's slot.
	late := &Interest{slot: busy.slot}
	if _, err := s.Value(late, clk.Now(), time.Minute); !errors.Is(err, ErrNoValue) {
		t.Errorf("another interest in the same slot: %v, want ErrNoValue", err)
	}
}
