package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ebbscale/ebb/backtest"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/shutdown"
	"github.com/ebbscale/ebb/sim"
)

// backtestConfig is `ebb backtest`'s flags.
type backtestConfig struct {
	source       string
	trace        string
	tenants      int
	thin         int
	store        storeClient
	queryTimeout time.Duration
	history      string
	warmup       string
	step         time.Duration
	start        string
	end          string
	seed         int64
	coldStart    string
	gpuPrice     float64
	replicaPrice float64
	gpus         int
	format       string
	output       string
	idleAfter    time.Duration
	minHistory   time.Duration
	budget       int
	kedaCooldown time.Duration
}

// backtestStart is where the simulated fleets begin when --start is not
// given, a Monday, so that `ebb backtest` prints the same every time.
var backtestStart = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// The fleets --source names.
const (
	sourceSim       = "sim"        // the demo's cluster
	sourceRhythms   = "rhythms"    // the simulator's fleet with rhythms of use
	sourceTrace     = "trace"      // rhythms filled with a trace's requests
	sourceStretched = "stretched"  // a trace split into tenants, stretched
	sourceStore     = "prometheus" // the store's history
)

var backtestSources = []string{sourceRhythms, sourceSim, sourceTrace, sourceStretched, sourceStore}

func backtestFlags(c *backtestConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	fs.StringVar(&c.source, "source", sourceRhythms, "the workloads to replay: "+strings.Join(backtestSources, ", "))
	fs.StringVar(&c.trace, "trace", "", "an Azure LLM inference trace CSV for --source trace or stretched; default the embedded code-completion trace")
	fs.IntVar(&c.tenants, "tenants", 8, "--source stretched: workloads the trace is split into")
	fs.IntVar(&c.thin, "thin", 40, "--source trace: keep one request in this many of the trace's, one user's rate")
	c.store.flags(fs)
	fs.DurationVar(&c.queryTimeout, "query-timeout", 2*time.Minute, "timeout of each range query to the store")
	fs.StringVar(&c.history, "history", "7d", "the history the policies are compared over: 7d, 36h")
	fs.StringVar(&c.warmup, "warmup", "2d", "history played before it and not counted, which ebb auto learns from (as serve reads the store on start)")
	fs.DurationVar(&c.step, "step", 10*time.Second, "resolution of the replay (the store's range-query step for --source prometheus)")
	fs.StringVar(&c.start, "start", "", "start of the warm-up for simulated sources (RFC 3339); default "+backtestStart.Format(time.RFC3339))
	fs.StringVar(&c.end, "end", "", "--source prometheus: end of the history (RFC 3339); default now")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the simulated fleets")
	fs.StringVar(&c.coldStart, "cold-start", "gpu=2m,cpu=30s", "time from scale-up to serving, per workload class: class=duration,...")
	fs.Float64Var(&c.gpuPrice, "gpu-hour-price", backtest.DefaultGPUHourPrice, "dollars per GPU-hour")
	fs.Float64Var(&c.replicaPrice, "replica-hour-price", backtest.DefaultReplicaHourPrice, "dollars per replica-hour of a workload without GPUs")
	fs.IntVar(&c.gpus, "gpus-per-replica", 1, "--source prometheus: GPUs per replica of every workload (0: none)")
	fs.StringVar(&c.format, "format", "table", "output: "+strings.Join(backtest.Formats, ", "))
	fs.StringVar(&c.output, "output", "", "write the report to this file instead of stdout")
	fs.DurationVar(&c.idleAfter, "idle-after", shutdown.DefaultIdleAfter, "ebb auto's fixed fallback")
	fs.DurationVar(&c.minHistory, "learn-min-history", shutdown.DefaultLearnMinHistory, "history ebb auto needs before it learns")
	fs.DurationVar(&c.kedaCooldown, "ebb-cooldown", 30*time.Second, "KEDA's cooldownPeriod on the ScaledObjects in front of ebb's policies (the README's examples say 30s; KEDA's default is 300s)")
	fs.IntVar(&c.budget, "prewake-budget", shutdown.DefaultPreWakeBudget, "pre-wakes a day not followed by demand before ebb auto backs off; 0 turns pre-wake off")
	return fs
}

// backtestOptions checks the flags that need more than their type.
func (c *backtestConfig) options() (backtest.Options, shutdown.LearnConfig, time.Duration, error) {
	o := backtest.DefaultOptions()
	lc := shutdown.DefaultLearnConfig()
	history, err := parseHistory(c.history)
	if err != nil {
		return o, lc, 0, err
	}
	warmup, err := parseHistory(c.warmup)
	if err != nil {
		return o, lc, 0, errors.New(strings.Replace(err.Error(), "--history", "--warmup", 1))
	}
	switch {
	case !slicesContains(backtestSources, c.source):
		return o, lc, 0, fmt.Errorf("--source %q: want one of %s", c.source, strings.Join(backtestSources, ", "))
	case !slicesContains(backtest.Formats, c.format):
		return o, lc, 0, fmt.Errorf("--format %q: want one of %s", c.format, strings.Join(backtest.Formats, ", "))
	case history < time.Hour || history > 90*24*time.Hour:
		return o, lc, 0, fmt.Errorf("--history %s: must be in [1h, 90d]", c.history)
	case warmup < 0 || warmup > 30*24*time.Hour:
		return o, lc, 0, fmt.Errorf("--warmup %s: must be in [0, 30d]", c.warmup)
	case c.step < time.Second || c.step > 5*time.Minute:
		return o, lc, 0, fmt.Errorf("--step %s: must be in [1s, 5m]", c.step)
	case c.gpuPrice < 0 || c.replicaPrice < 0:
		return o, lc, 0, errors.New("--gpu-hour-price and --replica-hour-price must not be negative")
	case c.tenants < 1 || c.tenants > 1000:
		return o, lc, 0, fmt.Errorf("--tenants %d: must be in [1, 1000]", c.tenants)
	case c.kedaCooldown < 0 || c.kedaCooldown > time.Hour:
		return o, lc, 0, fmt.Errorf("--ebb-cooldown %s: must be in [0s, 1h]", c.kedaCooldown)
	case c.thin < 1:
		return o, lc, 0, fmt.Errorf("--thin %d: must be >= 1", c.thin)
	case c.source == sourceStore && c.store.url == "":
		return o, lc, 0, errors.New("--source prometheus needs --prometheus-url")
	}
	cs, err := parseColdStarts(c.coldStart)
	if err != nil {
		return o, lc, 0, err
	}
	o.ColdStart, o.GPUHourPrice, o.ReplicaHourPrice, o.Warmup = cs, c.gpuPrice, c.replicaPrice, warmup
	lc.Fixed, lc.MinHistory, lc.PreWakeBudget = c.idleAfter, c.minHistory, c.budget
	if err := lc.Validate(); err != nil {
		return o, lc, 0, fmt.Errorf("ebb auto: %w", err)
	}
	return o, lc, history, nil
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// parseColdStarts reads "gpu=2m,cpu=30s".
func parseColdStarts(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		class, raw, ok := strings.Cut(part, "=")
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		switch {
		case !ok || strings.TrimSpace(class) == "":
			return nil, fmt.Errorf("--cold-start %q: want class=duration, such as gpu=2m", part)
		case err != nil || d < 0 || d > time.Hour:
			return nil, fmt.Errorf("--cold-start %q: the duration must be in [0s, 1h]", part)
		}
		out[strings.TrimSpace(class)] = d
	}
	return out, nil
}

// backtestDeps are what tests replace.
type backtestDeps struct {
	now func() time.Time
	env flagEnv
}

// runBacktest is `ebb backtest`: it builds the fleet, replays it through
// every policy and writes the report.
func runBacktest(ctx context.Context, args []string, stdout io.Writer, deps backtestDeps) error {
	var c backtestConfig
	fs := backtestFlags(&c)
	if err := parseFlags(fs, args, deps.env); err != nil {
		return err
	}
	o, lc, history, err := c.options()
	if err != nil {
		return usage("backtest", err)
	}
	ws, err := c.fleet(ctx, o.Warmup+history, deps)
	if err != nil {
		return err
	}
	res, err := backtest.Run(ws, backtest.StandardPolicies(lc, c.kedaCooldown, o.ColdStart), o)
	if err != nil {
		return err
	}
	out := stdout
	if c.output != "" {
		f, err := os.Create(c.output)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	if err := backtest.Write(out, res, c.format); err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && c.output != "" {
		return f.Close()
	}
	return nil
}

// fleet builds the workloads of --source over span.
func (c *backtestConfig) fleet(ctx context.Context, span time.Duration, deps backtestDeps) ([]*backtest.Workload, error) {
	start := backtestStart
	if c.start != "" {
		t, err := time.Parse(time.RFC3339, c.start)
		if err != nil {
			return nil, usage("backtest", fmt.Errorf("--start %q: want RFC 3339, such as 2026-11-02T00:00:00Z", c.start))
		}
		start = t
	}
	switch c.source {
	case sourceSim:
		return backtest.SimFleet(start, c.step, span, c.seed), nil
	case sourceRhythms:
		return backtest.RhythmFleet(start, c.step, span, uint64(c.seed), backtest.SteadyDemand(0.5))
	case sourceTrace, sourceStretched:
		tr, err := c.readTrace()
		if err != nil {
			return nil, err
		}
		if c.source == sourceStretched {
			return backtest.StretchedTraceFleet(tr, c.tenants, start, c.step, span, 1), nil
		}
		return backtest.RhythmFleet(start, c.step, span, uint64(c.seed), backtest.TraceDemand(tr, c.thin))
	}
	return c.storeFleet(ctx, span, deps)
}

func (c *backtestConfig) readTrace() (*sim.Trace, error) {
	if c.trace == "" {
		return sim.AzureCodeTrace(), nil
	}
	f, err := os.Open(c.trace)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := c.trace
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return sim.ParseTrace(name, f)
}

// storeFleet reads every workload's request rate over span from the store
// at --step: a step's requests are its rate times the step; and the
// replicas it ran, from kube-state-metrics, which it needs while up.
func (c *backtestConfig) storeFleet(ctx context.Context, span time.Duration, deps backtestDeps) ([]*backtest.Workload, error) {
	end := deps.now()
	if c.end != "" {
		t, err := time.Parse(time.RFC3339, c.end)
		if err != nil {
			return nil, usage("backtest", fmt.Errorf("--end %q: want RFC 3339, such as 2026-11-16T08:00:00Z", c.end))
		}
		end = t
	}
	end = end.Truncate(c.step)
	hc, err := c.store.httpConfig()
	if err != nil {
		return nil, err
	}
	store, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: c.store.url, Timeout: c.queryTimeout, HTTP: hc})
	if err != nil {
		return nil, err
	}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: max(time.Minute, 2*c.step)}
	hist, err := store.History(ctx, shape, span, c.step, end)
	if err != nil {
		return nil, fmt.Errorf("read the request rates: %w", err)
	}
	start := end.Add(-span)
	n := int(span / c.step)
	keys := make([]queries.WorkloadKey, 0, len(hist))
	for k := range hist {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var ws []*backtest.Workload
	for _, k := range keys {
		w := &backtest.Workload{Key: k, About: "from the store", GPUsPerReplica: c.gpus, Start: start, Step: c.step, Requests: make([]float64, n)}
		for _, p := range hist[k] {
			i := int(p.T.Sub(start)/c.step) - 1 // the point at the end of step i
			if i >= 0 && i < n {
				w.Requests[i] = p.V * c.step.Seconds()
			}
		}
		ws = append(ws, w)
	}
	if len(ws) > 0 {
		if err := c.storeReplicas(ctx, store, ws, start, end); err != nil {
			return nil, err
		}
	}
	if len(ws) == 0 {
		return nil, &emptyReportError{msg: fmt.Sprintf("no request-rate series in the store from %s to %s", start.Format(time.RFC3339), end.Format(time.RFC3339))}
	}
	return ws, nil
}

// replicasExpr is the replicas of every Deployment and StatefulSet as
// kube-state-metrics reports them, labelled by workload.
const replicasExpr = `label_replace(kube_deployment_status_replicas, "workload", "$1", "deployment", "(.+)") or ` +
	`label_replace(kube_statefulset_status_replicas, "workload", "$1", "statefulset", "(.+)")`

// storeReplicas fills each workload's replicas at each step from
// kube-state-metrics; a workload it has no series for keeps 1 while up.
func (c *backtestConfig) storeReplicas(ctx context.Context, store *promapi.Prometheus, ws []*backtest.Workload, start, end time.Time) error {
	series, err := store.Range(ctx, replicasExpr, start.Add(c.step), end, c.step)
	if err != nil {
		return fmt.Errorf("read the replicas: %w", err)
	}
	byKey := map[queries.WorkloadKey]*backtest.Workload{}
	for _, w := range ws {
		byKey[w.Key] = w
	}
	for _, s := range series {
		w := byKey[queries.WorkloadKey{Namespace: s.Labels["namespace"], Name: s.Labels["workload"]}]
		if w == nil {
			continue
		}
		if w.Replicas == nil {
			w.Replicas = make([]float64, len(w.Requests))
		}
		for _, p := range s.Points {
			if i := int(p.T.Sub(start)/c.step) - 1; i >= 0 && i < len(w.Replicas) {
				w.Replicas[i] = max(w.Replicas[i], p.V)
			}
		}
	}
	return nil
}
