package autopilot

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/storetest"
)

// The wakes in kube-state-metrics' replicas pair each rise of the desired
// replicas with the next rise of the ready ones before the following
// start; the median is the measure.
func TestKubeWakesMedian(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	w := wakeHistory{step: 30 * time.Second}
	// 60s, 90s and 150s; a start at 2000 given up (the next ready is after
	// the next start); a ready at 5000 with no start (a crash recovered).
	for _, p := range [][2]int{{100, 160}, {1000, 1090}, {2000, -1}, {3000, 3150}, {-1, 5000}} {
		if p[0] >= 0 {
			w.starts = append(w.starts, at(p[0]))
		}
		if p[1] >= 0 {
			w.readies = append(w.readies, at(p[1]))
		}
	}
	d, from, n, ok := w.measured()
	if !ok || d != 90*time.Second || n != 3 || from != "measured in kube-state-metrics' replicas: median of 3 wakes, to the 30s step" {
		t.Errorf("got %v %q %d %v; want 1m30s from 3 wakes", d, from, n, ok)
	}
	// Two wakes: the mean of the middle two.
	w = wakeHistory{step: 30 * time.Second, starts: []time.Time{at(0), at(100)}, readies: []time.Time{at(60), at(190)}}
	if d, _, n, _ := w.measured(); d != 75*time.Second || n != 2 {
		t.Errorf("two wakes: %v from %d, want 1m15s from 2", d, n)
	}
	// The activator wins where it saw a wake; its count is rounded, for
	// Prometheus extrapolates increase().
	w.activatorSum, w.activatorCount, w.activatorSeen = 1200.1, 12.001, true
	if d, from, n, _ := w.measured(); d != 100*time.Second || n != 12 || from != "measured by ebb's activator: mean of 12 wakes" {
		t.Errorf("activator: %v %q %d", d, from, n)
	}
	// No wake: nothing measured.
	if _, _, _, ok := (&wakeHistory{activatorSeen: true}).measured(); ok {
		t.Error("measured a wake time from no wake")
	}
}

// A measured wake time replaces the flags' default in the advice: idleDay's
// notebook, whose 11 cold starts a day at the GPU default of 2m keep a
// replica warm (TestBacktestKeepWarm), gets idleAfter 5m at the 30s its
// activator measured; at the 1m30s kube-state-metrics shows, 11 x 1.5 =
// 16.5 minutes of waiting a day still exceeds 15.
func TestMeasuredWakePricesColdStarts(t *testing.T) {
	h := idleDay(t, DefaultConfig())
	h.ActivatorWake(notebook, 360, 12)
	a := workloadOf(t, mustRecommend(t, h), notebook).Autoshutdown
	if !a.Recommended || a.IdleAfter != "5m" || a.ColdStart != "30s" || a.ColdStartWakes != 12 ||
		a.ColdStartFrom != "measured by ebb's activator: mean of 12 wakes" {
		t.Errorf("activator: %+v", a)
	}

	h = idleDay(t, DefaultConfig())
	for i, d := range []time.Duration{60 * time.Second, 90 * time.Second, 150 * time.Second} {
		s := h.Start().Add(time.Duration(i+1) * time.Hour)
		h.WakeStart(notebook, s, 30*time.Second)
		h.WakeReady(notebook, s.Add(d), 30*time.Second)
	}
	a = workloadOf(t, mustRecommend(t, h), notebook).Autoshutdown
	if a.Recommended || !a.KeepWarm || a.ColdStart != "1m30s" || a.ColdStartWakes != 3 || a.Candidates[0].WaitMinutesPerDay != 16.5 ||
		a.ColdStartFrom != "measured in kube-state-metrics' replicas: median of 3 wakes, to the 30s step" {
		t.Errorf("kube-state-metrics: %+v", a)
	}
}

// wakeHistorySeries is 48h of history from hs, samples every 10s:
//   - llm/coder, a Deployment at 0 that wakes at 6h, 12h and 18h (its
//     desired replicas 1 from 5s past the hour) and is ready 60s, 90s and
//     150s later, back to 0 an hour after each wake; at 30h it starts a
//     wake it gives up after 2m, never ready. At 30s steps from hs the starts show
//     at the step 30s past the hour, the readies at 90s, 2m and 3m: 60s,
//     90s and 150s, median 90s.
//   - llm/embed, a StatefulSet woken once at 20h, ready 2m later: 2m.
//   - llm/chat: ebb's activator saw 12 wakes, of 70s and 130s in turn, one
//     an hour from 2h: 1200s over 12, a mean of 100s. Its replicas also
//     show a wake of 30s at 8h, which the activator's measure overrides.
//   - llm/idle: a Deployment at 0 throughout: no wake.
func wakeHistorySeries(hs time.Time) []storetest.Series {
	end := hs.Add(48 * time.Hour)
	series := func(f func(at time.Duration) float64) []storetest.Sample {
		var out []storetest.Sample
		for at := storetest.Epoch; !at.After(end); at = at.Add(10 * time.Second) {
			out = append(out, storetest.Sample{T: at, V: f(at.Sub(hs))})
		}
		return out
	}
	s := func(sec int) time.Duration { return time.Duration(sec) * time.Second }
	// up is 1 in [from, to) of each window, else 0.
	up := func(windows ...[2]time.Duration) []storetest.Sample {
		return series(func(at time.Duration) float64 {
			for _, w := range windows {
				if at >= w[0] && at < w[1] {
					return 1
				}
			}
			return 0
		})
	}
	labels := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	ksm := func(kind, name string) map[string]string {
		return labels("namespace", "llm", kind, name, "job", "kube-state-metrics", "instance", "10.0.3.17:8080")
	}
	wake := func(at time.Duration, ready time.Duration) [2][2]time.Duration {
		return [2][2]time.Duration{{at + s(5), at + time.Hour}, {at + s(5) + ready, at + time.Hour}}
	}
	c1, c2, c3 := wake(6*time.Hour, s(60)), wake(12*time.Hour, s(90)), wake(18*time.Hour, s(150))
	gaveUp := [2]time.Duration{30*time.Hour + s(5), 30*time.Hour + s(125)}
	e := wake(20*time.Hour, s(120))
	ch := wake(8*time.Hour, s(30))
	wakes := func(sum bool) []storetest.Sample {
		return series(func(at time.Duration) float64 {
			n, total := 0.0, 0.0
			for i := range 12 {
				if at >= time.Duration(i+2)*time.Hour+s(100) {
					n++
					total += 70 + 60*float64(i%2)
				}
			}
			if sum {
				return total
			}
			return n
		})
	}
	activator := labels("namespace", "llm", "workload", "chat", "job", "ebb-activator", "instance", "10.0.5.9:9090")
	inf := labels("namespace", "llm", "workload", "chat", "job", "ebb-activator", "instance", "10.0.5.9:9090", "le", "+Inf")
	return []storetest.Series{
		{Metric: "kube_deployment_spec_replicas", Labels: ksm("deployment", "coder"), Samples: up(c1[0], c2[0], c3[0], gaveUp)},
		{Metric: "kube_deployment_status_replicas_ready", Labels: ksm("deployment", "coder"), Samples: up(c1[1], c2[1], c3[1])},
		{Metric: "kube_statefulset_replicas", Labels: ksm("statefulset", "embed"), Samples: up(e[0])},
		{Metric: "kube_statefulset_status_replicas_ready", Labels: ksm("statefulset", "embed"), Samples: up(e[1])},
		{Metric: "kube_deployment_spec_replicas", Labels: ksm("deployment", "chat"), Samples: up(ch[0])},
		{Metric: "kube_deployment_status_replicas_ready", Labels: ksm("deployment", "chat"), Samples: up(ch[1])},
		{Metric: "kube_deployment_spec_replicas", Labels: ksm("deployment", "idle"), Samples: up()},
		{Metric: "kube_deployment_status_replicas_ready", Labels: ksm("deployment", "idle"), Samples: up()},
		{Metric: "ebb_activator_wake_latency_seconds_sum", Labels: activator, Samples: wakes(true)},
		{Metric: "ebb_activator_wake_latency_seconds_count", Labels: activator, Samples: wakes(false)},
		{Metric: "ebb_activator_wake_latency_seconds_bucket", Labels: inf, Samples: wakes(false)},
	}
}

// Wake times read from a real Prometheus and a real VictoriaMetrics are the
// ones computed by hand; a workload with no wake has none, and keeps the
// flags' default.
func TestPrometheusReaderWakes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs real stores; skipped with -short")
	}
	hs := storetest.Epoch.Add(10 * time.Minute)
	history := wakeHistorySeries(hs)
	stores := []struct {
		name  string
		start func(t *testing.T) *storetest.Server
	}{
		{"prometheus", func(t *testing.T) *storetest.Server {
			return storetest.StartPrometheus(t, storetest.PromOptions{History: history})
		}},
		{"victoriametrics", func(t *testing.T) *storetest.Server {
			return storetest.StartVictoriaMetrics(t, storetest.VMOptions{History: history})
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			srv := s.start(t)
			store, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewHistory(DefaultConfig(), hs, hs.Add(48*time.Hour), 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := (&PrometheusReader{Store: store, Namespaces: []string{"llm"}}).Read(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			check := func(name string, d time.Duration, from string, n int) {
				t.Helper()
				w := h.workloads[queries.WorkloadKey{Namespace: "llm", Name: name}]
				if w == nil {
					t.Fatalf("llm/%s: not read", name)
				}
				gd, gfrom, gn, ok := w.wake.measured()
				if !ok || gd != d || gfrom != from || gn != n {
					t.Errorf("llm/%s: %v %q %d %v; want %v %q %d (starts %v, readies %v)", name, gd, gfrom, gn, ok, d, from, n, w.wake.starts, w.wake.readies)
				}
			}
			check("coder", 90*time.Second, "measured in kube-state-metrics' replicas: median of 3 wakes, to the 30s step", 3)
			check("embed", 2*time.Minute, "measured in kube-state-metrics' replicas: median of 1 wake, to the 30s step", 1)
			check("chat", 100*time.Second, "measured by ebb's activator: mean of 12 wakes", 12)
			// coder's given-up wake is a start without a ready: 4 starts, 3
			// readies. idle never rose: no row of the wakes query.
			if w := h.workloads[queries.WorkloadKey{Namespace: "llm", Name: "coder"}]; len(w.wake.starts) != 4 || len(w.wake.readies) != 3 {
				t.Errorf("llm/coder: starts %v, readies %v; want 4 and 3", w.wake.starts, w.wake.readies)
			}
			if w := h.workloads[queries.WorkloadKey{Namespace: "llm", Name: "idle"}]; w != nil {
				if d, from, _, ok := w.wake.measured(); ok || len(w.wake.starts)+len(w.wake.readies) > 0 {
					t.Errorf("llm/idle: measured %v %q from no wake (starts %v, readies %v)", d, from, w.wake.starts, w.wake.readies)
				}
			}
		})
	}
}

// The exact text the report gives the wake time's source.
func TestMeasuredWakeText(t *testing.T) {
	t.Parallel()
	w := wakeHistory{step: 5 * time.Minute, starts: []time.Time{t0}, readies: []time.Time{t0.Add(10 * time.Minute)}}
	if _, from, _, _ := w.measured(); !strings.HasSuffix(from, "median of 1 wake, to the 5m step") {
		t.Errorf("got %q", from)
	}
}
