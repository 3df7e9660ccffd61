package backtest

import "time"

// Replay plays one workload through one policy. Replicas run from each
// scale-up (they cost while they start) until the scale-down; they serve
// from ColdStart after the scale-up. Requests of a step arrive at its
// middle; those that find no ready replica wait for one: the one starting,
// or the scale-up they cause. A scale-up with no request waiting is a
// pre-wake; a request that finds one ready is a cold start it hid.
func Replay(w *Workload, p Policy, o Options) Outcome {
	r := NewReplayer(w, p, o)
	for i, demand := range w.Requests {
		from := w.Start.Add(time.Duration(i) * w.Step)
		replicas := 1.0
		if w.Replicas != nil {
			replicas = w.Replicas[i]
		}
		r.Step(from, from.Add(w.Step), demand, replicas)
	}
	return r.Finish(w.End())
}

// A Replayer is Replay one step at a time, for a history read as a stream
// (autopilot's idleAfter advice) rather than held whole: it holds the
// policy's state and the outcome so far, never the steps. Only w's Key,
// Class, GPUsPerReplica, Start, Step and UpAtStart are read; its Requests
// and Replicas are not.
type Replayer struct {
	w       *Workload
	o       Options
	cold    time.Duration
	measure time.Time // counting starts here, after the warm-up
	run     Runner
	out     Outcome
	up      bool
	readyAt time.Time
	pending []waiting // requests that arrived while down
	preWoke bool      // up from a pre-wake no request has reached yet
	counted bool      // this scale-up's cold start is counted
	secs    float64   // replica-seconds counted
}

type waiting struct {
	at time.Time
	n  float64
}

// NewReplayer starts p on w, down unless w.UpAtStart.
func NewReplayer(w *Workload, p Policy, o Options) *Replayer {
	return &Replayer{w: w, o: o, cold: o.coldStart(w.class()), measure: w.Start.Add(o.Warmup),
		run: p.Start(w), out: Outcome{Policy: p.Name()}, up: w.UpAtStart}
}

// Step plays the step (from, to], in which demand requests arrived and the
// workload needed replicas while up, and returns how long the policy kept
// it up in the step. Steps follow each other without gaps or overlap.
func (r *Replayer) Step(from, to time.Time, demand, replicas float64) (up time.Duration) {
	counting := !from.Before(r.measure)
	want, at := r.run.Step(from, to, demand, r.up)
	if at.IsZero() || at.Before(from) || at.After(to) {
		at = to
	}
	switch {
	case want && !r.up:
		r.up, r.readyAt, r.counted = true, at.Add(r.cold), false
		r.preWoke = len(r.pending) == 0 && (demand <= 0 || at.Before(from.Add(to.Sub(from)/2)))
		if r.preWoke && counting {
			r.out.PreWakes++
		}
		for _, q := range r.pending {
			if counting {
				r.out.ColdRequests += q.n
				r.out.WaitSeconds += q.n * r.readyAt.Sub(q.at).Seconds()
			}
		}
		if len(r.pending) > 0 && counting {
			r.out.ColdStarts++
			r.counted = true
		}
		r.pending = r.pending[:0]
		up = to.Sub(at)
	case !want && r.up:
		r.up = false
		up = at.Sub(from)
		if r.preWoke && counting {
			r.out.WastedPreWakes++
		}
		r.preWoke = false
	case r.up:
		up = to.Sub(from)
	}
	if !(replicas > 1) {
		replicas = 1
	}
	if counting {
		r.secs += up.Seconds() * replicas
	}
	if demand <= 0 {
		return up
	}
	arrive := from.Add(to.Sub(from) / 2)
	switch {
	case !r.up:
		r.pending = append(r.pending, waiting{arrive, demand})
	case !r.readyAt.After(arrive):
		if r.preWoke && counting {
			r.out.HiddenColdStarts++
		}
	default:
		if counting {
			if !r.counted {
				r.out.ColdStarts++
			}
			r.out.ColdRequests += demand
			r.out.WaitSeconds += demand * r.readyAt.Sub(arrive).Seconds()
		}
		r.counted = true
	}
	r.preWoke = false
	return up
}

// Unknown plays the step (from, to] in which nothing is known of the
// workload (the store had no data): the replicas stay as they are, as KEDA
// keeps them when its scaler fails, and a policy that models the failure
// (ebb's) sees it. It returns how long the workload was up in the step.
func (r *Replayer) Unknown(from, to time.Time, replicas float64) (up time.Duration) {
	if u, ok := r.run.(unknownStepper); ok {
		u.Unknown(from, to)
	}
	if !r.up {
		return 0
	}
	if !(replicas > 1) {
		replicas = 1
	}
	if !from.Before(r.measure) {
		r.secs += to.Sub(from).Seconds() * replicas
	}
	return to.Sub(from)
}

// unknownStepper is a Runner that sees the steps without data.
type unknownStepper interface{ Unknown(from, to time.Time) }

// Up reports whether the policy has the workload up.
func (r *Replayer) Up() bool { return r.up }

// Finish ends the history at end and returns the outcome: requests still
// waiting waited to the end.
func (r *Replayer) Finish(end time.Time) Outcome {
	out := r.out
	if len(r.pending) > 0 && !end.Before(r.measure) {
		out.ColdStarts++
		for _, q := range r.pending {
			out.ColdRequests += q.n
			out.WaitSeconds += q.n * end.Sub(q.at).Seconds()
		}
	}
	out.ReplicaHours = r.secs / 3600
	out.GPUHours = out.ReplicaHours * float64(r.w.GPUsPerReplica)
	if r.w.GPUsPerReplica > 0 {
		out.Dollars = out.GPUHours * r.o.GPUHourPrice
	} else {
		out.Dollars = out.ReplicaHours * r.o.ReplicaHourPrice
	}
	if n, ok := r.run.(noter); ok {
		out.Note = n.Note()
	}
	out.round()
	return out
}
