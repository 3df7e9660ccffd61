package sim

import (
	"strings"
	"testing"
	"time"
)

// tinyTrace has three requests whose GPU time at the default 10,000 prefill
// and 50 decode tokens/s is easy to add up by hand:
//
//	at  0s: 10,000 context, 50 generated -> 1 + 1  = 2 s,   busy [0, 2]
//	at  1s:  5,000 context, 100 generated -> 0.5 + 2 = 2.5 s, busy [1, 3.5]
//	at 10s:      0 context, 500 generated -> 0 + 10 = 10 s,  busy [10, 20]
const tinyCSV = `TIMESTAMP,ContextTokens,GeneratedTokens
2024-01-01 00:00:00.0000000,10000,50
2024-01-01 00:00:01.0000000,5000,100
2024-01-01 00:00:10.0000000,0,500
`

func tinyTrace(t *testing.T) *Trace {
	t.Helper()
	tr, err := ParseTrace("tiny.csv", strings.NewReader(tinyCSV))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReplay(t *testing.T) {
	s := time.Second
	tests := []struct {
		name         string
		opts         ReplayOptions
		from, to     time.Duration // after midnight
		wantRequests float64
		wantBusy     float64 // seconds
	}{
		{"first arrival", ReplayOptions{Start: midnight}, -s, 0, 1, 0},
		{"first 10s", ReplayOptions{Start: midnight}, 0, 10 * s, 2, 2 + 2.5},
		{"first 2s", ReplayOptions{Start: midnight}, 0, 2 * s, 1, 2 + 1},
		{"5s-15s", ReplayOptions{Start: midnight}, 5 * s, 15 * s, 1, 5},
		{"all", ReplayOptions{Start: midnight}, -s, 100 * s, 3, 14.5},
		{"after the end", ReplayOptions{Start: midnight}, 20 * s, time.Hour, 0, 0},
		{"before the start", ReplayOptions{Start: midnight}, -time.Hour, -s, 0, 0},
		{"at the trace's own time", ReplayOptions{}, -s, 10 * s, 3, 4.5},
		{"shifted start", ReplayOptions{Start: midnight.Add(time.Minute)}, 60 * s, 70 * s, 2, 4.5},

		// Looping every 15s: arrivals at 0, 1, 10, 15, 16, 25, 30, ...
		// (15s, 25s]: arrivals 16 and 25; busy 5 s of the 10 s request
		// from the first round, 2 + 2.5 s from the second.
		{"loop spill", ReplayOptions{Start: midnight, Loop: true, Period: 15 * s}, 15 * s, 25 * s, 2, 9.5},
		// (0, 150s]: 2 + 9·3 + 1 arrivals; rounds 0-8 served in full
		// (9·14.5 s), round 9 (from 135s) 2 + 2.5 + 5 s.
		{"loop ten rounds", ReplayOptions{Start: midnight, Loop: true, Period: 15 * s}, 0, 150 * s, 30, 140},
		// A day is 5,760 rounds of 15s: the same as (15s, 25s].
		{"loop a day later", ReplayOptions{Start: midnight, Loop: true, Period: 15 * s}, 24*time.Hour + 15*s, 24*time.Hour + 25*s, 2, 9.5},
		// The default period is the span (10s) rounded up to an hour.
		{"loop default period", ReplayOptions{Start: midnight, Loop: true}, time.Hour - s, time.Hour + 10*s, 3, 4.5},

		// Twice as fast: arrivals at 0, 0.5, 5; GPU time unchanged.
		{"speedup", ReplayOptions{Start: midnight, Speedup: 2}, 0, 5 * s, 2, 2 + 2.5},
		// Twice as fast, looping every 7.5s: (7s, 8s] holds the arrivals at
		// 7.5 and 8, 1 s of the 10 s request from 5s and 0.5 s of the 2 s
		// one from 7.5s.
		{"speedup loop", ReplayOptions{Start: midnight, Speedup: 2, Loop: true, Period: 15 * s}, 7 * s, 8 * s, 2, 1 + 0.5},
		{"rate scale", ReplayOptions{Start: midnight, RateScale: 3}, 0, 10 * s, 6, 13.5},
		// 5,000 prefill and 100 decode tokens/s: 2 + 0.5, 1 + 1 and 5 s.
		{"token rates", ReplayOptions{Start: midnight, PrefillTokensPerSec: 5000, DecodeTokensPerSec: 100}, -s, 100 * s, 3, 9.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Replay(tinyTrace(t), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			from, to := midnight.Add(tt.from), midnight.Add(tt.to)
			if got := r.Requests(from, to); !approx(got, tt.wantRequests) {
				t.Errorf("requests: got %v, want %v", got, tt.wantRequests)
			}
			if got := r.BusySeconds(from, to); !approx(got, tt.wantBusy) {
				t.Errorf("busy: got %v s, want %v", got, tt.wantBusy)
			}
		})
	}
}

func TestReplayErrors(t *testing.T) {
	tests := []struct {
		name string
		opts ReplayOptions
		want string
	}{
		{"speedup", ReplayOptions{Speedup: -1}, "replay: speedup = -1, must be > 0"},
		{"rate scale", ReplayOptions{RateScale: -0.5}, "replay: rate scale = -0.5, must be > 0"},
		{"prefill", ReplayOptions{PrefillTokensPerSec: -1}, "replay: prefill tokens/s = -1, must be > 0"},
		{"decode", ReplayOptions{DecodeTokensPerSec: -1}, "replay: decode tokens/s = -1, must be > 0"},
		{"short period", ReplayOptions{Loop: true, Period: 10 * time.Second}, "replay tiny.csv: period = 10s, must be longer than the trace (10s)"},
		{"period without loop", ReplayOptions{Period: time.Hour}, "replay tiny.csv: period = 1h0m0s without loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Replay(tinyTrace(t), tt.opts)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got error %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("no trace", func(t *testing.T) {
		if _, err := Replay(nil, ReplayOptions{}); err == nil || err.Error() != "replay: no trace" {
			t.Errorf("got error %v, want %q", err, "replay: no trace")
		}
	})
}

func TestReplaySharesIndex(t *testing.T) {
	tr := tinyTrace(t)
	a, _ := Replay(tr, ReplayOptions{Start: midnight})
	b, _ := Replay(tr, ReplayOptions{Start: midnight.Add(time.Hour), Loop: true, RateScale: 2})
	c, _ := Replay(tr, ReplayOptions{Speedup: 2})
	if a.idx != b.idx {
		t.Errorf("replays at the same speed built two indexes, want one")
	}
	if a.idx == c.idx {
		t.Errorf("replays at different speeds share an index, want two")
	}
}
