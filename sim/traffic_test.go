package sim

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// midnight is a Unix-epoch-aligned instant: a whole number of days, hours
// and 4-hour periods since the epoch, so the periodic shapes start a cycle.
var midnight = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func approx(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*max(1, math.Abs(want))
}

// rate returns t's mean request rate over (at-window, at].
func rate(t Traffic, at time.Time, window time.Duration) float64 {
	return t.Requests(at.Add(-window), at) / window.Seconds()
}

func TestTrafficRates(t *testing.T) {
	h := time.Hour
	tests := []struct {
		name    string
		traffic Traffic
		at      time.Time
		window  time.Duration
		want    float64
	}{
		{"steady 1m", Steady(4), midnight, time.Minute, 4},
		{"steady 30s", Steady(4), midnight.Add(17 * time.Second), 30 * time.Second, 4},
		{"steady 0", Steady(0), midnight, time.Minute, 0},

		// rate(t) = 10 + 5 cos(2π t / 4h), peak at midnight. Over (at-w, at]
		// the mean is 10 + (5/(ωw))·[sin(ω(at)) - sin(ω(at-w))], ω = 2π/4h.
		// Whole period: the mean.
		{"diurnal whole period", Diurnal(10, 5, 4*h, 0), midnight.Add(3 * h), 4 * h, 10},
		// (-1h, 0]: sin 0 - sin(-π/2) = 1, 5·4h/(2π·1h) = 10/π.
		{"diurnal hour before peak", Diurnal(10, 5, 4*h, 0), midnight, h, 10 + 10/math.Pi},
		// (-1h, +1h]: 2·5·4h/(2π·2h) = 10/π.
		{"diurnal around peak", Diurnal(10, 5, 4*h, 0), midnight.Add(h), 2 * h, 10 + 10/math.Pi},
		// (1h, 3h]: sin(3π/2) - sin(π/2) = -2 -> 10 - 10/π.
		{"diurnal around trough", Diurnal(10, 5, 4*h, 0), midnight.Add(3 * h), 2 * h, 10 - 10/math.Pi},
		// A phase of 1h moves the peak to 01:00: (0, 1h] is the hour before it.
		{"diurnal phase", Diurnal(10, 5, 4*h, h), midnight.Add(h), h, 10 + 10/math.Pi},
		{"diurnal phase beyond period", Diurnal(10, 5, 4*h, 5*h), midnight.Add(h), h, 10 + 10/math.Pi},
		{"diurnal flat", Diurnal(7, 0, 24*h, 0), midnight.Add(5 * time.Minute), time.Minute, 7},

		// Idle(10m, 50m, 2): active 00:00-00:10 of every hour.
		{"idle active", Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(5 * time.Minute), time.Minute, 2},
		{"idle quiet", Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(30 * time.Minute), time.Minute, 0},
		// (23:55, 00:15] holds 10 active minutes of 20.
		{"idle straddling", Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(15 * time.Minute), 20 * time.Minute, 1},
		// Three hours hold 30 active minutes of 180.
		{"idle long window", Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(3 * h), 3 * h, 2.0 / 6},
		{"idle never quiet", Idle(time.Minute, 0, 3), midnight, time.Minute, 3},
		{"idle never active", Idle(0, time.Minute, 3), midnight, time.Minute, 0},

		// Bursty with bursts as long as the slots is at its peak throughout.
		{"bursty all burst", Bursty(1, 9, time.Minute, time.Minute, 1), midnight.Add(90 * time.Second), time.Minute, 9},
		{"bursty no burst", Bursty(1, 9, time.Minute, 0, 1), midnight.Add(90 * time.Second), time.Minute, 1},
		// Whole slots hold burstLen/every of burst wherever the bursts fall.
		{"bursty whole slots", Bursty(5, 60, 10*time.Minute, 2*time.Minute, 42), midnight.Add(time.Hour), time.Hour, 5 + 55*0.2},

		{"off", Off(), midnight, time.Minute, 0},

		// Anchored at 00:30, Idle(10m, 50m, 2) is active 00:30-00:40.
		{"anchored active", Anchor(Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(30*time.Minute)), midnight.Add(35 * time.Minute), time.Minute, 2},
		{"anchored quiet", Anchor(Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(30*time.Minute)), midnight.Add(5 * time.Minute), time.Minute, 0},
		{"anchored before origin", Anchor(Idle(10*time.Minute, 50*time.Minute, 2), midnight.Add(30*time.Minute)), midnight.Add(-25 * time.Minute), time.Minute, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rate(tt.traffic, tt.at, tt.window); !approx(got, tt.want) {
				t.Errorf("got %v req/s, want %v", got, tt.want)
			}
		})
	}
}

func TestBurstyPlacement(t *testing.T) {
	b := Bursty(5, 60, 10*time.Minute, 2*time.Minute, 42).(bursty)
	every := 10 * time.Minute
	// A slot well after the epoch, and where its burst starts.
	k := midnight.UnixNano() / int64(every)
	slot := time.Unix(0, k*int64(every))
	burst := slot.Add(time.Duration(b.burstStart(k)))
	if off := burst.Sub(slot); off < 0 || off > 8*time.Minute {
		t.Fatalf("burst starts %v into its slot, want within [0, 8m]", off)
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     float64 // requests
	}{
		{"the burst", burst, burst.Add(2 * time.Minute), 60 * 120},
		{"first minute of the burst", burst, burst.Add(time.Minute), 60 * 60},
		{"slot up to the burst", slot, burst, 5 * burst.Sub(slot).Seconds()},
		{"slot up to mid-burst", slot, burst.Add(time.Minute), 5*burst.Sub(slot).Seconds() + 60*60},
		{"whole slot", slot, slot.Add(every), 5*480 + 60*120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Requests(tt.from, tt.to); !approx(got, tt.want) {
				t.Errorf("got %v requests, want %v", got, tt.want)
			}
		})
	}

	t.Run("seeded", func(t *testing.T) {
		same := Bursty(5, 60, every, 2*time.Minute, 42).(bursty)
		other := Bursty(5, 60, every, 2*time.Minute, 43).(bursty)
		differ := 0
		for i := range int64(20) {
			if got, want := same.burstStart(k+i), b.burstStart(k+i); got != want {
				t.Fatalf("slot %d: same seed, burst at %d, want %d", k+i, got, want)
			}
			if other.burstStart(k+i) != b.burstStart(k+i) {
				differ++
			}
		}
		if differ == 0 {
			t.Errorf("seeds 42 and 43 put all 20 bursts at the same offsets, want different ones")
		}
	})
}

// TestTrafficAdditive checks that every shape's counts add up over adjacent
// windows, so they integrate rather than sample.
func TestTrafficAdditive(t *testing.T) {
	replay, err := Replay(AzureCodeTrace(), ReplayOptions{Start: midnight, Loop: true, Speedup: 7})
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string]Traffic{
		"steady":  Steady(3),
		"diurnal": Diurnal(10, 9, 25*time.Minute, 3*time.Minute),
		"bursty":  Bursty(1, 50, 7*time.Minute, 90*time.Second, 3),
		"idle":    Idle(3*time.Minute, 11*time.Minute, 4),
		"replay":  replay,
	}
	for name, tr := range shapes {
		t.Run(name, func(t *testing.T) {
			a := midnight.Add(-13 * time.Minute)
			total := tr.Requests(a, a.Add(5*time.Hour))
			var sum float64
			for step := a; step.Before(a.Add(5 * time.Hour)); step = step.Add(37 * time.Second) {
				sum += tr.Requests(step, minTime(step.Add(37*time.Second), a.Add(5*time.Hour)))
			}
			if math.Abs(sum-total) > 1e-6*total {
				t.Errorf("got %v requests summed over 37s windows, want %v as over the whole 5h", sum, total)
			}
			if got := tr.Requests(a, a); got != 0 {
				t.Errorf("empty window: got %v requests, want 0", got)
			}
			if got := tr.Requests(a.Add(time.Minute), a); got != 0 {
				t.Errorf("reversed window: got %v requests, want 0", got)
			}
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestTrafficPanics(t *testing.T) {
	tests := []struct {
		name string
		make func()
		want string
	}{
		{"steady negative", func() { Steady(-1) }, "sim: Steady rps = -1, must be a finite number >= 0"},
		{"steady NaN", func() { Steady(math.NaN()) }, "sim: Steady rps = NaN, must be a finite number >= 0"},
		{"diurnal amplitude", func() { Diurnal(1, 2, time.Hour, 0) }, "sim: Diurnal amplitude = 2, must be <= mean (1)"},
		{"diurnal period", func() { Diurnal(1, 1, 0, 0) }, "sim: Diurnal period = 0s, must be > 0"},
		{"bursty burstLen", func() { Bursty(1, 2, time.Minute, 2*time.Minute, 0) }, "sim: Bursty burstLen = 2m0s, must be in [0, every = 1m0s]"},
		{"bursty every", func() { Bursty(1, 2, 0, 0, 0) }, "sim: Bursty every = 0s, must be > 0"},
		{"idle zero cycle", func() { Idle(0, 0, 1) }, "sim: Idle activeFor = 0s, idleFor = 0s, must be >= 0 with a positive sum"},
		{"idle rps", func() { Idle(time.Minute, time.Minute, -2) }, "sim: Idle rps = -2, must be a finite number >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := fmt.Sprint(recover()); got != tt.want {
					t.Errorf("got panic %q, want %q", got, tt.want)
				}
			}()
			tt.make()
		})
	}
}
