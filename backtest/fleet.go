package backtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/sim"
)

// SimFleet samples the simulator's demo fleet (sim.DemoCluster) every step
// for span from start: each workload's requests, and the replicas its
// trigger's target asks for, ceil(value/target) within [1, MaxReplicas].
func SimFleet(start time.Time, step, span time.Duration, seed int64) []*Workload {
	c := sim.DemoCluster(start, seed)
	specs := map[queries.WorkloadKey]sim.DemoSpec{}
	for _, s := range sim.DemoSpecs() {
		specs[s.Key] = s
	}
	n := int(span / step)
	var out []*Workload
	for _, sw := range c.Workloads() {
		spec := specs[sw.Key]
		w := &Workload{Key: sw.Key, About: spec.About, GPUsPerReplica: sw.GPUsPerReplica, Start: start, Step: step,
			Requests: make([]float64, n), Replicas: make([]float64, n)}
		work, _ := sw.Traffic.(sim.GPUWork)
		for i := range n {
			from := start.Add(time.Duration(i) * step)
			to := from.Add(step)
			reqs := sw.Traffic.Requests(from, to)
			w.Requests[i] = reqs
			var value float64
			switch spec.Signal {
			case queries.SignalGPU:
				busy := reqs * sw.GPUTimePerRequest.Seconds()
				if work != nil {
					busy = work.BusySeconds(from, to)
				}
				value = 100 * busy / step.Seconds()
			default:
				value = reqs / step.Seconds()
			}
			if spec.Target > 0 {
				w.Replicas[i] = min(max(math.Ceil(value/spec.Target), 1), float64(max(spec.MaxReplicas, 1)))
			}
		}
		out = append(out, w)
	}
	return out
}

// A rhythm is when a workload is used: sessions [start, end) in time
// order.
type rhythm []session

type session struct{ start, end time.Time }

// Rhythms of use, each drawn from its own seeded generator.

// everyWithJitter: a session of length run every period ± jitter (the
// intervals between starts are uniform in [period-jitter, period+jitter]).
func everyWithJitter(first, end time.Time, period, jitter, run time.Duration, r *rand.Rand) rhythm {
	var out rhythm
	for t := first; t.Before(end); {
		out = append(out, session{t, t.Add(run)})
		t = t.Add(period + time.Duration((r.Float64()*2-1)*float64(jitter)))
	}
	return out
}

// workdays: sessions of work (20-50 minutes with 2-8 minute breaks) from
// startHour to endHour local time on weekdays.
func workdays(start, end time.Time, loc *time.Location, startHour, endHour int, r *rand.Rand) rhythm {
	var out rhythm
	for d := start.In(loc); d.Before(end); d = d.AddDate(0, 0, 1) {
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		t := time.Date(d.Year(), d.Month(), d.Day(), startHour, r.IntN(10), 0, 0, loc)
		stop := time.Date(d.Year(), d.Month(), d.Day(), endHour, 0, 0, 0, loc)
		for t.Before(stop) {
			e := t.Add(time.Duration(20+r.IntN(31)) * time.Minute)
			if e.After(stop) {
				e = stop
			}
			out = append(out, session{t, e})
			t = e.Add(time.Duration(2+r.IntN(7)) * time.Minute)
		}
	}
	return out
}

// poissonSessions: sessions of length run, exponential gaps of mean.
func poissonSessions(start, end time.Time, mean, run time.Duration, r *rand.Rand) rhythm {
	var out rhythm
	for t := start; ; {
		t = t.Add(time.Duration(r.ExpFloat64() * float64(mean)))
		if !t.Before(end) {
			return out
		}
		out = append(out, session{t, t.Add(run)})
		t = t.Add(run)
	}
}

// bursts: bursts of 20-40 minutes of use with pauses of up to 3 minutes,
// minGap to maxGap apart.
func bursts(start, end time.Time, minGap, maxGap time.Duration, r *rand.Rand) rhythm {
	var out rhythm
	for t := start; t.Before(end); {
		stop := t.Add(time.Duration(20+r.IntN(21)) * time.Minute)
		for t.Before(stop) {
			e := t.Add(time.Duration(2+r.IntN(4)) * time.Minute)
			out = append(out, session{t, e})
			t = e.Add(time.Duration(30+r.IntN(150)) * time.Second)
		}
		t = t.Add(minGap + time.Duration(r.Int64N(int64(maxGap-minGap))))
	}
	return out
}

// daily: a session at hh:mm UTC ± jitter every day.
func daily(start, end time.Time, hour, minute int, jitter, run time.Duration, r *rand.Rand) rhythm {
	var out rhythm
	for d := start; d.Before(end); d = d.AddDate(0, 0, 1) {
		t := time.Date(d.Year(), d.Month(), d.Day(), hour, minute, 0, 0, time.UTC).
			Add(time.Duration((r.Float64()*2 - 1) * float64(jitter)))
		if !t.Before(start) && t.Before(end) {
			out = append(out, session{t, t.Add(run)})
		}
	}
	return out
}

// A Demand fills sessions with requests: fill returns the arrival times
// of the requests of one session.
type Demand func(s session, r *rand.Rand) []time.Time

// SteadyDemand is requests at rps, evenly spaced, throughout a session.
func SteadyDemand(rps float64) Demand {
	return func(s session, _ *rand.Rand) []time.Time {
		var out []time.Time
		gap := time.Duration(float64(time.Second) / rps)
		for t := s.start; t.Before(s.end); t = t.Add(gap) {
			out = append(out, t)
		}
		return out
	}
}

// TraceDemand fills a session with a real slice of a trace: the requests
// of a randomly placed window of the session's length, keeping one in
// every thin, so that a session carries the trace's own pauses and bursts
// at one user's rate.
func TraceDemand(t *sim.Trace, thin int) Demand {
	return func(s session, r *rand.Rand) []time.Time {
		length := s.end.Sub(s.start)
		span := t.Span()
		var off time.Duration
		if span > length {
			off = time.Duration(r.Int64N(int64(span - length)))
		}
		i := sort.Search(t.Len(), func(i int) bool { return t.At(i).Offset >= off })
		var out []time.Time
		keep := r.IntN(thin)
		for ; i < t.Len() && t.At(i).Offset < off+length; i++ {
			if i%thin == keep {
				out = append(out, s.start.Add(t.At(i).Offset-off))
			}
		}
		return out
	}
}

// eventsWorkload counts arrivals into steps.
func eventsWorkload(key queries.WorkloadKey, about string, gpus int, start time.Time, step time.Duration, n int, arrivals []time.Time) *Workload {
	w := &Workload{Key: key, About: about, GPUsPerReplica: gpus, Start: start, Step: step, Requests: make([]float64, n)}
	for _, a := range arrivals {
		i := int(a.Sub(start) / step)
		if a.Sub(start)%step == 0 {
			i-- // (from, to]
		}
		if i >= 0 && i < n {
			w.Requests[i]++
		}
	}
	return w
}

// RhythmFleet is a fleet of workloads with the rhythms fleets have: jobs
// every 2h ± 2m and every hour ± 1m, a nightly job, notebooks used on
// weekdays in Berlin and in bursts, a rarely called model server (Poisson,
// one call every 6h on average), a developer's model server used 5 minutes
// every 2 hours (the demo's) and an internal tool used through the
// workday. demand fills each session with requests: SteadyDemand for the
// simulator's fleet, TraceDemand for a fleet built from a trace.
func RhythmFleet(start time.Time, step, span time.Duration, seed uint64, demand Demand) ([]*Workload, error) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return nil, fmt.Errorf("rhythm fleet: %w", err)
	}
	end := start.Add(span)
	n := int(span / step)
	type spec struct {
		key   queries.WorkloadKey
		about string
		gpus  int
		make  func(r *rand.Rand) rhythm
	}
	specs := []spec{
		{queries.WorkloadKey{Namespace: "batch", Name: "report-2h"}, "job every 2h ± 2m, 10 minutes", 1,
			func(r *rand.Rand) rhythm {
				return everyWithJitter(start.Add(17*time.Minute), end, 2*time.Hour, 2*time.Minute, 10*time.Minute, r)
			}},
		{queries.WorkloadKey{Namespace: "batch", Name: "embed-hourly"}, "job every hour ± 1m, 5 minutes", 1,
			func(r *rand.Rand) rhythm {
				return everyWithJitter(start.Add(5*time.Minute), end, time.Hour, time.Minute, 5*time.Minute, r)
			}},
		{queries.WorkloadKey{Namespace: "batch", Name: "nightly-train"}, "nightly at 02:00 UTC ± 5m, 40 minutes", 4,
			func(r *rand.Rand) rhythm { return daily(start, end, 2, 0, 5*time.Minute, 40*time.Minute, r) }},
		{queries.WorkloadKey{Namespace: "notebooks", Name: "carol"}, "notebook, weekdays 09-18 Europe/Berlin with breaks", 1,
			func(r *rand.Rand) rhythm { return workdays(start, end, berlin, 9, 18, r) }},
		{queries.WorkloadKey{Namespace: "notebooks", Name: "dave"}, "notebook, bursts 40m-3h apart", 1,
			func(r *rand.Rand) rhythm { return bursts(start, end, 40*time.Minute, 3*time.Hour, r) }},
		{queries.WorkloadKey{Namespace: "ml", Name: "rare-api"}, "model server called once every 6h on average (Poisson)", 1,
			func(r *rand.Rand) rhythm { return poissonSessions(start, end, 6*time.Hour, 3*time.Minute, r) }},
		{queries.WorkloadKey{Namespace: "ml", Name: "dev-llm"}, "developer's model server, 5 minutes every 2 hours", 1,
			func(r *rand.Rand) rhythm {
				return everyWithJitter(start.Add(30*time.Minute), end, 2*time.Hour, 0, 5*time.Minute, r)
			}},
		{queries.WorkloadKey{Namespace: "shop", Name: "internal-tool"}, "internal tool, weekdays 08-17 UTC", 0,
			func(r *rand.Rand) rhythm { return workdays(start, end, time.UTC, 8, 17, r) }},
	}
	var out []*Workload
	for i, s := range specs {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		var arrivals []time.Time
		for _, ses := range s.make(r) {
			arrivals = append(arrivals, demand(ses, r)...)
		}
		out = append(out, eventsWorkload(s.key, s.about, s.gpus, start, step, n, arrivals))
	}
	return out, nil
}

// StretchedTraceFleet splits a trace into tenants requests by request (the
// i-th request goes to tenant i mod tenants) and stretches its hour to
// span, so that each tenant keeps the trace's bursts and quiet minutes at
// a slower pace: quiet minutes of the trace become quiet hours.
func StretchedTraceFleet(t *sim.Trace, tenants int, start time.Time, step, span time.Duration, gpus int) []*Workload {
	n := int(span / step)
	period := (t.Span()/time.Hour + 1) * time.Hour
	factor := float64(span) / float64(period)
	arrivals := make([][]time.Time, tenants)
	for i := range t.Len() {
		at := start.Add(time.Duration(float64(t.At(i).Offset) * factor))
		arrivals[i%tenants] = append(arrivals[i%tenants], at)
	}
	out := make([]*Workload, tenants)
	for k := range tenants {
		key := queries.WorkloadKey{Namespace: "trace", Name: fmt.Sprintf("%s-tenant-%02d", trimExt(t.Name()), k)}
		out[k] = eventsWorkload(key, fmt.Sprintf("every %dth request of %s, its hour stretched to %s", tenants, t.Name(), span), gpus, start, step, n, arrivals[k])
	}
	return out
}

func trimExt(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[:i]
		}
	}
	return name
}
