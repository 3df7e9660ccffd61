package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/autopilot/live"
	"github.com/ebbscale/ebb/autopilot/report"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/shutdown"
	"github.com/ebbscale/ebb/sim"
)

type recommendConfig struct {
	source       string
	store        storeClient
	namespaces   stringList
	history      string
	step         time.Duration
	end          string
	format       string
	output       string
	annotate     bool
	apply        bool
	kubeconfig   string
	prices       string
	queryTimeout time.Duration
	seed         int64
	tgiMaxTokens int64
	sample       time.Duration // recommend_live.go
	every        time.Duration

	cpuPercentile     float64
	margin            float64
	halfLife          time.Duration
	minHistory        time.Duration
	cpuLimitFactor    float64
	memoryLimitFactor float64
	coldStart         coldStartFlag
	maxWait           time.Duration
	warningShare      float64
	warningAmount     float64
	wide              bool
}

// recommendDeps are what tests replace.
type recommendDeps struct {
	now     func() time.Time
	getenv  func(string) string
	environ func() []string // the environment's list, for warnings about unknown EBB_ variables
	// progress, when set, overrides the terminal check for the progress bar.
	progress *bool
	// kubeClient connects to the cluster --apply patches; newKubeClient
	// when nil.
	kubeClient func(kubeconfig string) (kubernetes.Interface, error)
	live       liveDeps // recommend_live.go
}

// simEnd is the end of the embedded simulator's history when --end is not
// given, so that `ebb recommend --source sim` prints the same every time.
var simEnd = time.Date(2026, 11, 16, 8, 0, 0, 0, time.UTC)

func recommendFlags(c *recommendConfig) *flag.FlagSet {
	d := autopilot.DefaultConfig()
	fs := flag.NewFlagSet("recommend", flag.ContinueOnError)
	fs.StringVar(&c.source, "source", "prometheus", "where history comes from: prometheus, sim (the embedded simulator), metrics-server, or prometheus,metrics-server")
	c.store.flags(fs)
	fs.Var(&c.namespaces, "namespace", "namespace to read (repeatable; default all)")
	fs.StringVar(&c.history, "history", "14d", "how much history to read: 14d, 36h, 90m")
	fs.DurationVar(&c.step, "step", 5*time.Minute, "resolution of the history")
	fs.StringVar(&c.end, "end", "", "end of the history (RFC 3339); default now, or "+simEnd.Format(time.RFC3339)+" for --source sim")
	fs.StringVar(&c.format, "format", "table", "output: "+strings.Join(report.Formats, ", "))
	fs.StringVar(&c.output, "output", "", "write the report to this file instead of stdout")
	fs.BoolVar(&c.annotate, "annotate", false, "print the "+autopilot.AnnotationKey+" patch of every workload (a dry run unless --apply)")
	fs.BoolVar(&c.apply, "apply", false, "with --annotate, patch the workloads in the cluster")
	liveFlags(fs, c)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster --apply patches; default $KUBECONFIG, else ~/.kube/config, else the in-cluster service account")
	fs.StringVar(&c.prices, "prices", "", "JSON file overriding the default price table")
	fs.DurationVar(&c.queryTimeout, "query-timeout", time.Minute, "timeout of each range query")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the simulator's bursts (--source sim)")
	fs.Int64Var(&c.tgiMaxTokens, "tgi-max-batch-total-tokens", 0, "KV-cache capacity in tokens assumed for text-generation-inference pods that do not export tgi_batch_max_total_tokens (their --max-batch-total-tokens); 0: none, they get no KV-cache usage")
	fs.Float64Var(&c.cpuPercentile, "cpu-percentile", d.CPUPercentile, "share of CPU usage the request covers")
	fs.Float64Var(&c.margin, "margin", d.Margin, "margin on top of the CPU and memory percentiles")
	fs.DurationVar(&c.halfLife, "half-life", d.CPU.HalfLife, "half-life of the histograms' weights")
	fs.DurationVar(&c.minHistory, "min-history", d.MinHistory, "least history for a recommendation")
	fs.Float64Var(&c.cpuLimitFactor, "cpu-limit-factor", d.CPULimitFactor, "CPU limit as a multiple of the request; 0: no limit")
	fs.Float64Var(&c.memoryLimitFactor, "memory-limit-factor", d.MemoryLimitFactor, "memory limit as a multiple of the request; 0: no limit")
	c.coldStart = coldStartFlag{d: d.ColdStart}
	fs.Var(&c.coldStart, "cold-start", "how long a wake from zero takes where the history shows no wake (ebb's activator or kube-state-metrics' replicas), by kind: gpu (GPU model servers), cpu (the rest) or a GPU class ("+
		strings.Join(autopilot.GPUClasses(), ", ")+"), e.g. gpu=3m,H100-80GB=5m")
	fs.DurationVar(&c.maxWait, "max-cold-start-wait", d.MaxWaitPerDay, "most a day's cold starts may make callers wait (wakes a day x the wake time) before one replica is kept warm instead of autoshutdown")
	fs.Float64Var(&c.warningShare, "warning-share", d.WarningShare, "severity warning from savings of at least this share of a workload's cost (and --warning-amount)")
	fs.Float64Var(&c.warningAmount, "warning-amount", d.WarningAmount, "severity warning from savings of at least this much a month, in the price table's currency (and --warning-share)")
	fs.BoolVar(&c.wide, "wide", false, "with --format table: every column and reason, however wide; by default the table fits 120 columns")
	return fs
}

// parseHistory reads a duration with a day unit too: "14d", "1d12h", "90m".
func parseHistory(s string) (time.Duration, error) {
	var days int64
	rest := s
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("--history %q: want a duration such as 14d, 36h or 1d12h", s)
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("--history %q: want a duration such as 14d, 36h or 1d12h", s)
		}
	}
	return time.Duration(days)*24*time.Hour + d, nil
}

// emptyReportError is a report without any workload: it says why, and
// main exits with exitEmptyReport.
type emptyReportError struct{ msg string }

func (e *emptyReportError) Error() string { return e.msg }

func recommend(ctx context.Context, args []string, stdout, stderr io.Writer, deps recommendDeps) error {
	if deps.now == nil {
		deps.now = time.Now
	}
	var c recommendConfig
	fs := recommendFlags(&c)
	if err := parseFlags(fs, args, flagEnv{getenv: deps.getenv, environ: deps.environ, help: stdout, warn: stderr}); err != nil {
		return err
	}
	history, err := c.validate()
	if err != nil {
		return usage("recommend", err)
	}
	live, err := newLiveRun(ctx, &c, fs, deps, stderr)
	if err != nil {
		return err
	}
	end, err := c.endTime(deps.now)
	if err != nil {
		return usage("recommend", err)
	}
	start := end.Add(-history)
	start, end = live.window(start, end)

	cfg, err := c.autopilotConfig()
	if err != nil {
		return usage("recommend", err)
	}
	prices, err := c.readPrices()
	if err != nil {
		return usage("recommend", err)
	}
	h, err := autopilot.NewHistory(cfg, start, end, c.step)
	if err != nil {
		return err
	}
	// Connect before reading history, which may take minutes.
	var client kubernetes.Interface
	if c.apply {
		if client, err = connectKube(c.kubeconfig, deps); err != nil {
			return err
		}
	}

	var seen *seriesSeen // the store's reads, for an empty report
	if c.readsStore() {
		if seen, err = c.openStore(); err != nil {
			return err
		}
	}
	bar := newProgress(stderr, deps.progress)
	source, err := c.readHistory(ctx, h, start, seen, live, bar)
	bar.done()
	if err == nil {
		source, err = live.read(ctx, h, bar, source)
	}
	if err != nil {
		return err
	}
	rep, err := autopilot.Recommend(h, prices, source)
	if err != nil {
		return err
	}
	live.explain(rep)

	if err := c.writeReport(stdout, rep, live); err != nil {
		return err
	}
	if reportedWorkloads(rep) == 0 {
		return emptyReport(ctx, &c, seen, start, end)
	}
	switch {
	case c.apply:
		return applyPatches(ctx, stdout, client, rep, end)
	case c.annotate:
		return printPatches(stdout, rep, end)
	}
	return nil
}

// autopilotConfig is the recommender's configuration from the flags,
// checked.
func (c *recommendConfig) autopilotConfig() (autopilot.Config, error) {
	cfg := autopilot.DefaultConfig()
	cfg.CPUPercentile, cfg.Margin, cfg.MinHistory = c.cpuPercentile, c.margin, c.minHistory
	cfg.CPU.HalfLife, cfg.Memory.HalfLife = c.halfLife, c.halfLife
	cfg.CPULimitFactor, cfg.MemoryLimitFactor = c.cpuLimitFactor, c.memoryLimitFactor
	cfg.ColdStart, cfg.MaxWaitPerDay = c.coldStart.d, c.maxWait
	cfg.WarningShare, cfg.WarningAmount = c.warningShare, c.warningAmount
	return cfg, cfg.Validate()
}

// readsStore reports whether the history comes from the store: neither
// the simulator nor metrics-server alone.
func (c *recommendConfig) readsStore() bool {
	return c.source != "sim" && c.source != sourceMetricsServer
}

// openStore connects to the store, recording what its reads find (for an
// empty report).
func (c *recommendConfig) openStore() (*seriesSeen, error) {
	hc, err := c.store.httpConfig()
	if err != nil {
		return nil, err
	}
	store, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: c.store.url, Timeout: c.queryTimeout, HTTP: hc})
	if err != nil {
		return nil, err
	}
	cat := autopilot.DefaultHistoryCatalog()
	cat.TGI.AssumedMaxBatchTotalTokens = c.tgiMaxTokens
	return newSeriesSeen(store, cat), nil
}

// readHistory reads the simulator's history, or the store's through seen,
// into h, and returns the source to name in the report. metrics-server
// alone reads nothing here: the live run does.
func (c *recommendConfig) readHistory(ctx context.Context, h *autopilot.History, start time.Time, seen *seriesSeen, live *liveRun, bar *progress) (source string, err error) {
	switch {
	case c.source == "sim":
		r := simReader(start, c.seed, c.namespaces)
		r.Progress = bar.update
		return c.source, r.Read(ctx, h)
	case c.readsStore():
		r := &autopilot.PrometheusReader{Store: live.clip(seen), Catalog: seen.cat, Namespaces: c.namespaces, Progress: bar.update}
		return c.store.url, withStoreHint(r.Read(ctx, h))
	}
	return c.source, nil
}

// writeReport renders rep, with the live run's footnote, to --output or
// stdout.
func (c *recommendConfig) writeReport(stdout io.Writer, rep *autopilot.Report, live *liveRun) error {
	out := stdout
	if c.output != "" {
		f, err := os.Create(c.output)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		defer f.Close()
		out = f
	}
	if err := report.RenderWith(out, rep, c.format, report.Options{Wide: c.wide}); err != nil {
		return err
	}
	live.footnote(out, rep, c.format)
	if c.output != "" {
		if err := out.(*os.File).Close(); err != nil {
			return fmt.Errorf("--output: %w", err)
		}
	}
	return nil
}

// validate checks the flags, and returns --history as a duration.
func (c *recommendConfig) validate() (time.Duration, error) {
	history, err := parseHistory(c.history)
	if err != nil {
		return 0, err
	}
	switch {
	case c.source != "prometheus" && c.source != "sim" && !liveSource(c.source):
		return 0, fmt.Errorf("--source %q: want prometheus, metrics-server, prometheus,metrics-server or sim", c.source)
	case (c.source == "prometheus" || c.source == sourceMerged) && c.store.url == "":
		return 0, errors.New("--prometheus-url (or EBB_PROMETHEUS_URL) is required; to try it on the embedded simulator, run: ebb recommend --source sim")
	case c.source == "sim" && c.store.url != "":
		return 0, errors.New("--prometheus-url and --source sim exclude each other")
	case c.step < time.Second || c.step%time.Second != 0:
		return 0, fmt.Errorf("--step = %s, must be a whole number of seconds, at least 1s", c.step)
	case history < c.step:
		return 0, fmt.Errorf("--history = %s, must be at least --step (%s)", c.history, c.step)
	case c.apply && !c.annotate:
		return 0, errors.New("--apply needs --annotate")
	case c.apply && c.source == "sim":
		return 0, errors.New("--apply with --source sim: the simulator's workloads are not in a cluster; --annotate alone prints the patches")
	case c.queryTimeout <= 0:
		return 0, fmt.Errorf("--query-timeout = %s, must be positive", c.queryTimeout)
	case c.wide && c.format != "table":
		return 0, fmt.Errorf("--wide applies to --format table, not %s", c.format)
	case c.tgiMaxTokens < 0:
		return 0, fmt.Errorf("--tgi-max-batch-total-tokens = %d, must be 0 (none) or positive", c.tgiMaxTokens)
	}
	if err := c.store.validate(); err != nil {
		return 0, err
	}
	if _, err := formatOK(c.format); err != nil {
		return 0, err
	}
	for _, ns := range c.namespaces {
		if err := autopilot.ValidNamespace(ns); err != nil {
			return 0, fmt.Errorf("--namespace: %w", err)
		}
	}
	return history, nil
}

// endTime is the end of the history: --end, the simulator's end, or now.
func (c *recommendConfig) endTime(now func() time.Time) (time.Time, error) {
	switch {
	case c.end != "":
		end, err := time.Parse(time.RFC3339, c.end)
		if err != nil {
			return end, fmt.Errorf("--end %q: want RFC 3339, e.g. 2026-11-16T08:00:00Z", c.end)
		}
		return end, nil
	case c.source == "sim":
		return simEnd, nil
	}
	return now().UTC().Truncate(c.step), nil
}

// readPrices reads --prices, or returns the default prices.
func (c *recommendConfig) readPrices() (autopilot.Prices, error) {
	if c.prices == "" {
		return autopilot.DefaultPrices(), nil
	}
	f, err := os.Open(c.prices)
	if err != nil {
		return autopilot.Prices{}, fmt.Errorf("--prices: %w", err)
	}
	defer f.Close()
	prices, err := autopilot.ReadPrices(f)
	if err != nil {
		return prices, fmt.Errorf("--prices %s: %w", c.prices, err)
	}
	return prices, nil
}

func formatOK(f string) (string, error) {
	for _, x := range report.Formats {
		if f == x {
			return f, nil
		}
	}
	return "", fmt.Errorf("--format %q: want %s", f, strings.Join(report.Formats, ", "))
}

// printPatches prints, as a dry run, the merge patch of every workload.
func printPatches(w io.Writer, r *autopilot.Report, at time.Time) error {
	fmt.Fprintf(w, "\n# dry run: the patches --apply would send (kubectl patch --type merge)\n")
	for _, wl := range r.Workloads {
		if wl.Name == live.AllNamespaces {
			continue // a row about a namespace's problem, not a workload
		}
		ann, err := wl.Annotations(at)
		if err != nil {
			return err
		}
		p, err := kube.AnnotationsPatch(ann, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s/%s: %s\n", wl.Namespace, wl.Name, p)
	}
	return nil
}

// connectKube returns the client of the cluster --apply patches, found by
// kube.Config in the kubeconfig file of --kubeconfig, else in
// defaultKubeconfig's, else in-cluster.
func connectKube(kubeconfig string, deps recommendDeps) (kubernetes.Interface, error) {
	if kubeconfig == "" {
		kubeconfig = defaultKubeconfig(deps.getenv)
	}
	connect := deps.kubeClient
	if connect == nil {
		connect = newKubeClient
	}
	client, err := connect(kubeconfig)
	switch {
	case errors.Is(err, kube.ErrNoCluster):
		return nil, fmt.Errorf("--apply: %w; pass --kubeconfig", err)
	case err != nil:
		return nil, fmt.Errorf("--apply: %w", err)
	}
	return client, nil
}

// recommendRESTConfig is the API server configuration `ebb recommend` uses
// (see kube.Config): reads in bursts, a minute per request at most.
func recommendRESTConfig(kubeconfig string) (*rest.Config, error) {
	rc, err := kube.Config(kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = kube.UserAgent + "/" + version
	rc.QPS, rc.Burst = 20, 40
	rc.Timeout = time.Minute
	return rc, nil
}

// newKubeClient connects to the API server of kubeconfig.
func newKubeClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := recommendRESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// applyPatches sets the recommendation annotation of every workload in the
// cluster, one line per workload: patched, skipped when the cluster has no
// Deployment or StatefulSet of its name, or not patched and why. It tries
// every workload, and fails when any was not patched for another reason.
func applyPatches(ctx context.Context, w io.Writer, client kubernetes.Interface, r *autopilot.Report, at time.Time) error {
	fmt.Fprintf(w, "\n# --apply: setting %s on each workload\n", autopilot.AnnotationKey)
	failed := 0
	for _, wl := range r.Workloads {
		if wl.Name == live.AllNamespaces {
			continue // a row about a namespace's problem, not a workload
		}
		key := queries.WorkloadKey{Namespace: wl.Namespace, Name: wl.Name}
		ann, err := wl.Annotations(at)
		if err != nil {
			return err
		}
		kind, err := kube.AnnotateWorkload(ctx, client, key, ann)
		switch {
		case err == nil:
			fmt.Fprintf(w, "%s: patched %s\n", key, kind)
		case errors.Is(err, kube.ErrNoWorkload):
			fmt.Fprintf(w, "%s: skipped, %v\n", key, kube.ErrNoWorkload)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			failed++
			fmt.Fprintf(w, "%s: not patched: %v\n", key, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("--apply: %d of %d workloads not patched (see above)", failed, len(r.Workloads))
	}
	return nil
}

// simReader returns a reader of the embedded demo cluster, its workloads
// given pods with a fixed resource model: what `ebb demo` scales.
func simReader(start time.Time, seed int64, namespaces []string) *autopilot.SourceReader {
	cluster := sim.DemoCluster(start, seed)
	// The GPUs of the demo's GPU workloads, and the model server they run
	// (the simulator's batching servers report KV cache and queue).
	gpus := map[string]struct {
		model  string
		fbMiB  float64
		server autopilot.ModelServer
	}{
		"llm-code":       {"NVIDIA A100-SXM4-40GB", 30000, autopilot.TGI},
		"llm-code-gpu":   {"NVIDIA A100-SXM4-40GB", 30000, autopilot.TGI},
		"llm-chat":       {"NVIDIA H100 80GB HBM3", 73000, autopilot.VLLM},
		"llm-chat-gpu":   {"NVIDIA H100 80GB HBM3", 73000, autopilot.VLLM},
		"dev-llm":        {"NVIDIA A100-SXM4-40GB", 12000, ""},
		"alice-notebook": {"Tesla T4", 5000, ""},
		"bob-notebook":   {"Tesla T4", 3000, ""},
	}
	in := map[string]bool{}
	for _, ns := range namespaces {
		in[ns] = true
	}
	r := &autopilot.SourceReader{Source: cluster}
	for _, w := range cluster.Workloads() {
		if len(in) > 0 && !in[w.Key.Namespace] {
			continue
		}
		sw := autopilot.SyntheticWorkload{
			Key: w.Key, Replicas: w.Replicas, GPUsPerReplica: w.GPUsPerReplica,
			Current: autopilot.Resources{CPURequest: 1, MemoryRequest: autopilot.GiB, MemoryLimit: autopilot.GiB},
			CPUBase: 0.05, CPUPerRPS: 0.01, MemoryBase: 200 * autopilot.MiB, MemoryPerRPS: 2 * autopilot.MiB,
		}
		if w.GPUsPerReplica > 0 {
			g, ok := gpus[w.Key.Name]
			if !ok { // a GPU workload the map does not know: a generic GPU
				g.model = "NVIDIA L4"
			}
			sw.GPUModel, sw.FramebufferMiB, sw.Server = g.model, g.fbMiB, g.server
			sw.Current = autopilot.Resources{CPURequest: 4, MemoryRequest: 16 * autopilot.GiB, MemoryLimit: 16 * autopilot.GiB, GPUs: float64(w.GPUsPerReplica)}
			sw.CPUBase, sw.CPUPerRPS, sw.MemoryBase, sw.MemoryPerRPS = 0.5, 0.2, 6*autopilot.GiB, 20*autopilot.MiB
		}
		r.Workloads = append(r.Workloads, sw)
	}
	return r
}

// progress draws a bar on stderr while history is read, only on a terminal.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(w io.Writer, force *bool) *progress {
	p := &progress{w: w}
	if force != nil {
		p.on = *force
	} else if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) update(done, total int) { p.bar("reading history", done, total) }

// bar draws one progress bar line, redrawn in place.
func (p *progress) bar(label string, done, total int) {
	if !p.on || total <= 0 {
		return
	}
	const width = 30
	n := min(done*width/total, width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// coldStartFlag is --cold-start: kind=duration pairs over the defaults.
type coldStartFlag struct{ d autopilot.ColdStarts }

func (f *coldStartFlag) String() string {
	if f == nil {
		return ""
	}
	return formatColdStarts(f.d)
}

// Set reads "gpu=2m,cpu=15s,H100-80GB=5m".
func (f *coldStartFlag) Set(s string) error {
	out := f.d
	out.ByClass = map[string]time.Duration{}
	for k, v := range f.d.ByClass {
		out.ByClass[k] = v
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("%q: want kind=duration, e.g. gpu=2m", kv)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q: %q is not a duration >= 0 such as 2m or 30s", kv, v)
		}
		switch {
		case k == "gpu":
			out.GPU = d
		case k == "cpu":
			out.Other = d
		case slices.Contains(autopilot.GPUClasses(), k):
			out.ByClass[k] = d
		default:
			return fmt.Errorf("%q: unknown kind %q; want gpu, cpu or a GPU class: %s", kv, k, strings.Join(autopilot.GPUClasses(), ", "))
		}
	}
	f.d = out
	return nil
}

// formatColdStarts renders cold starts as --cold-start takes them.
func formatColdStarts(c autopilot.ColdStarts) string {
	parts := []string{"gpu=" + shutdown.FormatDuration(c.GPU), "cpu=" + shutdown.FormatDuration(c.Other)}
	for _, k := range autopilot.GPUClasses() {
		if d, ok := c.ByClass[k]; ok {
			parts = append(parts, k+"="+shutdown.FormatDuration(d))
		}
	}
	return strings.Join(parts, ",")
}
