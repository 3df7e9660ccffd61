package shutdown_test

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

var modelSink *shutdown.Model

var decisionSink shutdown.Decision

// BenchmarkLearn is what the collector spends learning one workload's model
// from 7 days of activity observed every 5s (its tick).
func BenchmarkLearn(b *testing.B) {
	end := monday.AddDate(0, 0, 7)
	for _, c := range []struct {
		name string
		p    pattern
	}{
		{"periodic-2h", periodic(monday.Add(30*time.Minute), end, 2*time.Hour, 2*time.Minute, 10*time.Minute, 7)},
		{"every-5m", periodic(monday, end, 5*time.Minute, time.Minute, 2*time.Minute, 8)},
		{"never", nil},
	} {
		a := &shutdown.Activity{Step: 5 * time.Second}
		for t := monday; t.Before(end); t = t.Add(5 * time.Second) {
			a.Observe(t, c.p.active(t))
		}
		cfg := shutdown.DefaultLearnConfig()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				modelSink = shutdown.Learn(a, end, cfg)
			}
		})
	}
}

// BenchmarkDecideAuto compares Decide with a learned model in force against
// the fixed policy, the control.
func BenchmarkDecideAuto(b *testing.B) {
	end := monday.AddDate(0, 0, 4)
	p := periodic(monday.Add(30*time.Minute), end, 2*time.Hour, 2*time.Minute, 10*time.Minute, 7)
	a := history(p, monday, end)
	fixed := shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute}
	auto := shutdown.Learn(a, end, shutdown.DefaultLearnConfig()).Apply(shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute, Auto: true})
	s := shutdown.State{Known: true, LastActive: a.LastActive()}
	now := a.LastActive().Add(30 * time.Minute)
	for _, c := range []struct {
		name string
		p    shutdown.Policy
	}{{"fixed", fixed}, {"auto", auto}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decisionSink = c.p.Decide(s, now)
			}
		})
	}
}
