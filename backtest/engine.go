package backtest

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// Workload is one workload's history to replay: the requests that arrived
// in each step and the replicas it needed to serve them.
type Workload struct {
	Key queries.WorkloadKey
	// About says what the workload is, for reports.
	About string
	// Class is the workload's class for the cold-start duration
	// (Options.ColdStart); "" is ClassCPU, or ClassGPU with GPUs.
	Class string
	// GPUsPerReplica is the GPUs each replica holds.
	GPUsPerReplica int
	// Start is the beginning of the first step; Step the length of each.
	Start time.Time
	Step  time.Duration
	// Requests[i] is the requests that arrived in step i, (Start+i*Step,
	// Start+(i+1)*Step].
	Requests []float64
	// Replicas[i] is the replicas the workload needed in step i while up,
	// at least 1 (0 or a missing value counts as 1). nil: 1 throughout.
	Replicas []float64
	// UpAtStart says the workload was up, its replicas ready, when the
	// history begins (a live workload's, as autopilot reads it): every
	// policy starts from there, and ebb's idle clock is recovered at
	// Start, as a restarted ebb finds nothing older. KEDA, which has no
	// last active time yet, scales it to zero at its first poll without
	// demand, as KEDA's documentation says it does. false: down.
	UpAtStart bool
}

// Workload classes.
const (
	ClassCPU = "cpu"
	ClassGPU = "gpu"
)

func (w *Workload) class() string {
	switch {
	case w.Class != "":
		return w.Class
	case w.GPUsPerReplica > 0:
		return ClassGPU
	}
	return ClassCPU
}

// Validate names what is wrong with w.
func (w *Workload) Validate() error {
	switch {
	case w.Key.Namespace == "" || w.Key.Name == "":
		return fmt.Errorf("workload %q: namespace and name must not be empty", w.Key)
	case w.Step <= 0:
		return fmt.Errorf("workload %s: step = %s, must be > 0", w.Key, w.Step)
	case len(w.Requests) == 0:
		return fmt.Errorf("workload %s: no steps", w.Key)
	case w.Replicas != nil && len(w.Replicas) != len(w.Requests):
		return fmt.Errorf("workload %s: %d replica values for %d steps", w.Key, len(w.Replicas), len(w.Requests))
	case w.GPUsPerReplica < 0:
		return fmt.Errorf("workload %s: GPUs per replica = %d, must be >= 0", w.Key, w.GPUsPerReplica)
	}
	for i, r := range w.Requests {
		if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			return fmt.Errorf("workload %s: requests in step %d = %v, must be a finite number >= 0", w.Key, i, r)
		}
	}
	return nil
}

// End returns the end of the last step.
func (w *Workload) End() time.Time { return w.Start.Add(time.Duration(len(w.Requests)) * w.Step) }

// Options are the costs a backtest prices its outcome with.
type Options struct {
	// ColdStart is how long a workload of each class takes from the
	// scale-up to serving (image pulled, model loaded); a class that is
	// not in the map takes DefaultColdStart.
	ColdStart map[string]time.Duration
	// GPUHourPrice and ReplicaHourPrice price a GPU-hour and a replica-hour
	// of a workload without GPUs, in dollars.
	GPUHourPrice, ReplicaHourPrice float64
	// Warmup is played through but not counted: the history a learner
	// reads before the backtest's window, as ebb reads the store's on
	// start. Every policy plays it, so all start the window alike.
	Warmup time.Duration
}

// Defaults of Options.
const (
	DefaultColdStart        = 30 * time.Second
	DefaultGPUColdStart     = 2 * time.Minute
	DefaultGPUHourPrice     = 2.00
	DefaultReplicaHourPrice = 0.05
)

// DefaultOptions returns cold starts of 2m for GPU workloads and 30s for
// others, $2.00 a GPU-hour and $0.05 a replica-hour without GPUs.
func DefaultOptions() Options {
	return Options{
		ColdStart:    map[string]time.Duration{ClassGPU: DefaultGPUColdStart, ClassCPU: DefaultColdStart},
		GPUHourPrice: DefaultGPUHourPrice, ReplicaHourPrice: DefaultReplicaHourPrice,
	}
}

func (o Options) coldStart(class string) time.Duration {
	if d, ok := o.ColdStart[class]; ok {
		return d
	}
	return DefaultColdStart
}

// Outcome is what one policy did to one workload, or to the fleet.
type Outcome struct {
	Policy       string  `json:"policy"`
	ReplicaHours float64 `json:"replicaHours"`
	GPUHours     float64 `json:"gpuHours"`
	Dollars      float64 `json:"dollars"`
	// ColdStarts counts the times demand found no ready replica; the
	// requests that arrived then and until one was ready, and the time they
	// waited in all and on average.
	ColdStarts      int     `json:"coldStarts"`
	ColdRequests    float64 `json:"coldRequests"`
	WaitSeconds     float64 `json:"waitSeconds"`
	MeanWaitSeconds float64 `json:"meanWaitSeconds"`
	// PreWakes counts wakes without demand (ebb auto), HiddenColdStarts
	// the pre-wakes demand followed: cold starts the pre-wake hid.
	PreWakes         int `json:"preWakes,omitempty"`
	HiddenColdStarts int `json:"hiddenColdStarts,omitempty"`
	// WastedPreWakes counts the pre-wakes that went back to zero without a
	// request.
	WastedPreWakes int `json:"wastedPreWakes,omitempty"`
	// Note is what the policy learned, for ebb auto.
	Note string `json:"note,omitempty"`
}

func (o *Outcome) add(x Outcome) {
	o.ReplicaHours += x.ReplicaHours
	o.GPUHours += x.GPUHours
	o.Dollars += x.Dollars
	o.ColdStarts += x.ColdStarts
	o.ColdRequests += x.ColdRequests
	o.WaitSeconds += x.WaitSeconds
	o.PreWakes += x.PreWakes
	o.HiddenColdStarts += x.HiddenColdStarts
	o.WastedPreWakes += x.WastedPreWakes
}

func (o *Outcome) round() {
	if o.ColdRequests > 0 {
		o.MeanWaitSeconds = o.WaitSeconds / o.ColdRequests
	}
	o.ReplicaHours = round(o.ReplicaHours, 3)
	o.GPUHours = round(o.GPUHours, 3)
	o.Dollars = round(o.Dollars, 2)
	o.ColdRequests = round(o.ColdRequests, 1)
	o.WaitSeconds = round(o.WaitSeconds, 1)
	o.MeanWaitSeconds = round(o.MeanWaitSeconds, 1)
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// A Policy decides when a workload runs. Start returns a fresh Runner for
// one workload.
type Policy interface {
	Name() string
	Start(w *Workload) Runner
}

// A Runner is one policy playing one workload, step by step.
type Runner interface {
	// Step sees the demand that arrived in the step (from, to] and returns
	// whether the policy wants replicas after it and, if that changed in
	// the step, when; up is the current state.
	Step(from, to time.Time, demand float64, up bool) (want bool, at time.Time)
}

// noter is a Runner that says what it learned.
type noter interface{ Note() string }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Result is a backtest of a fleet: each workload under each policy, and
// the totals.
type Result struct {
	Policies  []string         `json:"policies"`
	Workloads []WorkloadResult `json:"workloads"`
	Totals    []Outcome        `json:"totals"`
	// Start, End and Hours bound the history replayed.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Hours float64   `json:"hours"`
}

// WorkloadResult is one workload under each policy, in the order of
// Result.Policies.
type WorkloadResult struct {
	Workload string    `json:"workload"`
	About    string    `json:"about,omitempty"`
	Class    string    `json:"class"`
	GPUs     int       `json:"gpusPerReplica"`
	Requests float64   `json:"requests"`
	Outcomes []Outcome `json:"outcomes"`
}

// Run replays every workload through every policy.
func Run(ws []*Workload, ps []Policy, o Options) (*Result, error) {
	if len(ws) == 0 {
		return nil, errors.New("backtest: no workloads")
	}
	if len(ps) == 0 {
		return nil, errors.New("backtest: no policies")
	}
	res := &Result{}
	for _, p := range ps {
		res.Policies = append(res.Policies, p.Name())
		res.Totals = append(res.Totals, Outcome{Policy: p.Name()})
	}
	for _, w := range ws {
		if err := w.Validate(); err != nil {
			return nil, fmt.Errorf("backtest: %w", err)
		}
		if start := w.Start.Add(o.Warmup); res.Start.IsZero() || start.Before(res.Start) {
			res.Start = start
		}
		if w.End().After(res.End) {
			res.End = w.End()
		}
		wr := WorkloadResult{Workload: w.Key.String(), About: w.About, Class: w.class(), GPUs: w.GPUsPerReplica}
		for i, r := range w.Requests {
			if time.Duration(i)*w.Step >= o.Warmup {
				wr.Requests += r
			}
		}
		wr.Requests = round(wr.Requests, 1)
		for j, p := range ps {
			out := Replay(w, p, o)
			wr.Outcomes = append(wr.Outcomes, out)
			res.Totals[j].add(out)
		}
		res.Workloads = append(res.Workloads, wr)
	}
	for j := range res.Totals {
		res.Totals[j].round()
	}
	res.Hours = round(res.End.Sub(res.Start).Hours(), 2)
	return res, nil
}
