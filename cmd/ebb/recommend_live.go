package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/benbjohnson/clock"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/autopilot/live"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/shutdown"
)

// The sources of `ebb recommend` that read the cluster.
const (
	sourceMetricsServer = "metrics-server"
	sourceMerged        = "prometheus,metrics-server"
)

// liveMinHistory is the least history a recommendation from metrics-server
// alone rests on, unless --min-history says otherwise: the report's
// confidence is in days, rounded to 0.01, and is 0 below about 7 minutes.
const liveMinHistory = 10 * time.Minute

func liveSource(s string) bool { return s == sourceMetricsServer || s == sourceMerged }

// liveFlags adds the flags of sampling metrics-server.
func liveFlags(fs *flag.FlagSet, c *recommendConfig) {
	fs.DurationVar(&c.sample, "sample", 15*time.Minute, "how long to sample metrics-server (--source metrics-server or prometheus,metrics-server)")
	fs.DurationVar(&c.every, "every", 15*time.Second, "time between two samples of metrics-server")
}

// liveDeps are what tests replace in the paths that read the cluster.
type liveDeps struct {
	// clock ticks the samples; the real clock when nil.
	clock clock.Clock
	// clients connects to the API server and metrics.k8s.io of a
	// kubeconfig file ("" for in-cluster); liveClients when nil.
	clients func(kubeconfig string) (kubernetes.Interface, metricsclient.Interface, error)
	// sampled, when set, is called after each sample.
	sampled func(done, total int)
}

// liveRun is what `ebb recommend` reads from the cluster: the workloads
// from the API server, with --source prometheus too when the cluster is
// reachable, and usage from metrics-server with the metrics-server sources.
type liveRun struct {
	c       *recommendConfig
	clk     clock.Clock
	deps    liveDeps
	stderr  io.Writer
	kube    kubernetes.Interface
	metrics metricsclient.Interface // nil: no sampling
	inv     *live.Inventory
	sampler *live.Sampler
	// cut is where the Prometheus history ends and the samples begin.
	cut time.Time
}

// newLiveRun checks the flags of the cluster paths, connects and reads the
// workloads. It returns nil, and no error, for --source sim, and for
// --source prometheus outside a cluster without --kubeconfig (or --apply's
// kubeconfig): then kube-state-metrics says what exists. For metrics-server alone it makes
// --step --every and, unless given, --min-history liveMinHistory.
func newLiveRun(ctx context.Context, c *recommendConfig, fs *flag.FlagSet, deps recommendDeps, stderr io.Writer) (*liveRun, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sampling := liveSource(c.source)
	switch {
	case !sampling && (set["sample"] || set["every"]):
		return nil, fmt.Errorf("--sample and --every sample metrics-server: add --source %s or %s", sourceMetricsServer, sourceMerged)
	case !sampling:
	case set["end"]:
		return nil, fmt.Errorf("--end: metrics-server is sampled now, from now on; --end is for --source prometheus and sim")
	case c.every < time.Second || c.every%time.Second != 0:
		return nil, fmt.Errorf("--every = %s, must be a whole number of seconds, at least 1s", shutdown.FormatDuration(c.every))
	case c.sample < c.every:
		return nil, fmt.Errorf("--sample = %s, must be at least --every (%s)", shutdown.FormatDuration(c.sample), shutdown.FormatDuration(c.every))
	case c.source == sourceMetricsServer && c.store.url != "":
		return nil, fmt.Errorf("--prometheus-url with --source %s: to merge Prometheus' history, use --source %s", sourceMetricsServer, sourceMerged)
	case c.source == sourceMetricsServer && (set["history"] || set["step"]):
		return nil, fmt.Errorf("--history and --step are for Prometheus; with --source %s, --sample and --every set the history", sourceMetricsServer)
	case c.source == sourceMetricsServer && set["min-history"] && c.minHistory < liveMinHistory:
		return nil, fmt.Errorf("--min-history = %s, must be at least %s with --source %s: a shorter history has a confidence of 0 days", shutdown.FormatDuration(c.minHistory), shutdown.FormatDuration(liveMinHistory), sourceMetricsServer)
	case c.source == sourceMetricsServer && c.sample < liveMinHistory && !set["min-history"]:
		return nil, fmt.Errorf("--sample = %s, must be at least %s: a shorter sample is too little evidence for any recommendation", shutdown.FormatDuration(c.sample), shutdown.FormatDuration(liveMinHistory))
	}
	if c.source == "sim" {
		return nil, nil
	}
	l := &liveRun{c: c, clk: deps.live.clock, deps: deps.live, stderr: stderr}
	if l.clk == nil {
		l.clk = clock.New()
	}
	connect := deps.live.clients
	kubeconfig := c.kubeconfig
	if connect == nil {
		connect = liveClients
		if (sampling || c.apply) && kubeconfig == "" {
			kubeconfig = defaultKubeconfig(deps.getenv)
		}
	}
	var err error
	l.kube, l.metrics, err = connect(kubeconfig)
	switch {
	case errors.Is(err, kube.ErrNoCluster) && !sampling:
		return nil, nil // kube-state-metrics says what exists
	case errors.Is(err, kube.ErrNoCluster):
		return nil, fmt.Errorf("--source %s needs a cluster: pass --kubeconfig, set KUBECONFIG, or run ebb in the cluster", c.source)
	case err != nil:
		return nil, err
	}
	if !sampling {
		l.metrics = nil
	}
	if c.source == sourceMetricsServer {
		c.step = c.every
		if !set["min-history"] {
			c.minHistory = liveMinHistory
		}
	}
	l.inv = live.ReadInventory(ctx, l.kube, c.namespaces)
	return l, nil
}

// defaultKubeconfig is kubectl's: the first file of $KUBECONFIG, else
// ~/.kube/config when it exists; "" leaves the in-cluster account.
func defaultKubeconfig(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if list := filepath.SplitList(getenv("KUBECONFIG")); len(list) > 0 {
		return list[0]
	}
	if home := getenv("HOME"); home != "" {
		p := filepath.Join(home, ".kube", "config")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// liveClients connects to the API server and metrics.k8s.io of kubeconfig
// (see kube.Config).
func liveClients(kubeconfig string) (kubernetes.Interface, metricsclient.Interface, error) {
	rc, err := recommendRESTConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	k, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	m, err := metricsclient.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	return k, m, nil
}

// window returns the history's start and end. metrics-server alone: from
// now for --sample. Merged: Prometheus' history ends at end, the cut, and
// the samples follow it for --sample, to the next step.
func (l *liveRun) window(start, end time.Time) (time.Time, time.Time) {
	if l == nil || l.metrics == nil {
		return start, end
	}
	now := l.clk.Now().UTC()
	if l.c.source == sourceMetricsServer {
		return now, now.Add(l.c.sample)
	}
	l.cut = end
	step := l.c.step
	n := (now.Sub(end) + l.c.sample + step - 1) / step
	return start, end.Add(n * step)
}

// clip keeps the Prometheus reader before the cut: what follows is
// metrics-server's.
func (l *liveRun) clip(s autopilot.RangeQuerier) autopilot.RangeQuerier {
	if l == nil || l.cut.IsZero() {
		return s
	}
	return clippedStore{s, l.cut}
}

// clippedStore answers nothing after cut, and a query of one instant after
// it at cut.
type clippedStore struct {
	autopilot.RangeQuerier
	cut time.Time
}

func (s clippedStore) Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	if end.After(s.cut) {
		if start.Equal(end) {
			start = s.cut
		}
		end = s.cut
	}
	if start.After(end) {
		return nil, nil
	}
	return s.RangeQuerier.Range(ctx, expr, start, end, step)
}

// read samples metrics-server until the history's end, then reads the
// workloads again and writes them into h, and prints what went wrong as
// warnings. It returns the report's source.
func (l *liveRun) read(ctx context.Context, h *autopilot.History, bar *progress, source string) (string, error) {
	if l == nil {
		return source, nil
	}
	if l.metrics != nil {
		n := int(h.End().Sub(l.clk.Now())/l.c.every) + 1
		l.sampler = &live.Sampler{
			Kube: l.kube, Metrics: l.metrics, Inventory: l.inv,
			Every: l.c.every, Samples: max(n, 1), After: l.cut, Clock: l.clk,
			Progress: func(done, total int) {
				bar.sampling(done, total)
				if l.deps.sampled != nil {
					l.deps.sampled(done, total)
				}
			},
		}
		err := l.sampler.Run(ctx, h)
		bar.done()
		if err != nil {
			return "", err
		}
		l.inv.Refresh(ctx)
	}
	l.inv.Apply(h)
	for _, p := range l.inv.Problems() {
		fmt.Fprintf(l.stderr, "warning: %v\n", p.Err)
	}
	what := "Kubernetes API"
	if l.sampler != nil {
		for _, p := range l.sampler.Problems() {
			fmt.Fprintf(l.stderr, "warning: %v\n", p.Err)
		}
		for _, w := range l.sampler.Warnings() {
			fmt.Fprintf(l.stderr, "warning: %v; pods are mapped to workloads by name\n", w)
		}
		what = fmt.Sprintf("metrics-server every %s for %s", shutdown.FormatDuration(l.c.every), shutdown.FormatDuration(l.c.sample))
	}
	if l.c.source == sourceMetricsServer {
		return what, nil
	}
	return source + " + " + what, nil
}

// explain makes the report say what the cluster said (see live.Explain).
func (l *liveRun) explain(rep *autopilot.Report) {
	if l != nil {
		live.Explain(rep, l.inv, l.sampler)
	}
}

// footnote adds to a table what each recommendation rests on, which only
// the other formats show: with minutes of samples, that is little.
func (l *liveRun) footnote(w io.Writer, rep *autopilot.Report, format string) {
	if l == nil || l.sampler == nil || format != "table" {
		return
	}
	var lines []string
	for _, wl := range rep.Workloads {
		for _, c := range wl.Containers {
			if c.CPU.NotEnoughData == "" || c.Memory.NotEnoughData == "" {
				lines = append(lines, fmt.Sprintf("  %s/%s %s: CPU %s, memory %s\n", wl.Namespace, wl.Name, c.Name,
					evidenceOf(c.CPU, autopilot.FormatCPU), evidenceOf(c.Memory, autopilot.FormatMemory)))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	n, span := l.sampler.Taken()
	fmt.Fprintf(w, "\nEvidence: %d samples of metrics-server over %s", n, shutdown.FormatDuration(span))
	if l.c.source == sourceMerged {
		fmt.Fprintf(w, " after Prometheus' history")
	}
	fmt.Fprintf(w, "; days of evidence widen each request's range (--format markdown or json show it):\n%s", strings.Join(lines, ""))
}

func evidenceOf(r autopilot.ResourceRecommendation, f func(float64) string) string {
	if r.NotEnoughData != "" {
		return "no recommendation"
	}
	return fmt.Sprintf("%d samples over %gh, %g days of evidence (range %s-%s)", r.Samples, r.HistoryHours, r.Confidence, f(r.Lower), f(r.Upper))
}

// sampling draws the progress of sampling metrics-server.
func (p *progress) sampling(done, total int) { p.bar("sampling metrics-server", done, total) }
