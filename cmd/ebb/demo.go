package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/externalscaler"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/sim"
)

type demoConfig struct {
	duration time.Duration
	speed    float64
	interval time.Duration
	cooldown time.Duration
	seed     int64
	start    string
	table    string
	every    time.Duration
	width    int

	activator bool
	podStart  time.Duration
}

func demoFlags(c *demoConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.DurationVar(&c.duration, "duration", 3*time.Hour, "simulated time to run")
	fs.Float64Var(&c.speed, "speed", 600, "simulated seconds per real second (0: as fast as possible)")
	fs.DurationVar(&c.interval, "interval", 15*time.Second, "simulated time between ebb's ticks, which is also KEDA's polling interval here (serve's --interval, also EBB_INTERVAL, is real time)")
	fs.DurationVar(&c.cooldown, "cooldown", 5*time.Minute, "KEDA's cooldownPeriod: how long a workload must be inactive before it goes to zero")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the simulated bursts")
	fs.StringVar(&c.start, "start", "2026-11-16T08:00:00Z", "simulated start time (RFC 3339)")
	fs.StringVar(&c.table, "table", "auto", "live table: auto (redraw in place on a terminal, print every --table-every otherwise), always (the same; kept for old scripts), off")
	fs.DurationVar(&c.every, "table-every", 15*time.Minute, "simulated time between tables when not redrawing in place")
	fs.IntVar(&c.width, "width", 0, "columns the tables fit in; 0: the terminal's width, or 100 when the output is no terminal")
	fs.BoolVar(&c.activator, "activator", true, "hold the requests that reach a workload at zero while it wakes, as ebb serve --activator-addr does; false: they fail until a pod is ready")
	fs.DurationVar(&c.podStart, "pod-start", 30*time.Second, "simulated time from a wake to the first ready pod")
	return fs
}

// demoRow is one workload's state in the KEDA-like loop.
type demoRow struct {
	spec       sim.DemoSpec
	ref        *pb.ScaledObjectRef
	replicas   int
	value      float64
	active     bool
	everActive bool // IsActive answered true at least once
	err        string
	lastActive time.Time

	replicaSeconds, peakSeconds float64
	peak, coldStarts, scales    int
	zeroSeconds                 float64

	wake wake    // requests that arrive at zero
	pre  preWake // demo_rhythm.go
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return demo(ctx, args, stdout, stderr, flagEnv{help: stdout, warn: stderr})
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer, env flagEnv) error {
	var cfg demoConfig
	fs := demoFlags(&cfg)
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return usage("demo", err)
	}
	start, _ := time.Parse(time.RFC3339, cfg.start)
	return cfg.run(ctx, start, stdout)
}

func (cfg *demoConfig) validate() error {
	_, err := time.Parse(time.RFC3339, cfg.start)
	switch {
	case err != nil:
		return fmt.Errorf("--start %q: want RFC 3339, e.g. 2026-11-16T08:00:00Z", cfg.start)
	case cfg.duration <= 0:
		return fmt.Errorf("--duration = %s, must be positive", cfg.duration)
	case cfg.speed < 0:
		return fmt.Errorf("--speed = %g, must not be negative", cfg.speed)
	case cfg.interval < time.Second:
		return fmt.Errorf("--interval = %s, must be at least 1s", cfg.interval)
	case cfg.cooldown < 0:
		return fmt.Errorf("--cooldown = %s, must not be negative", cfg.cooldown)
	case cfg.podStart < 0:
		return fmt.Errorf("--pod-start = %s, must not be negative", cfg.podStart)
	case cfg.table != "auto" && cfg.table != "always" && cfg.table != "off":
		return fmt.Errorf("--table %q: want auto, always or off", cfg.table)
	case cfg.every < cfg.interval:
		return fmt.Errorf("--table-every = %s, must be at least --interval (%s)", cfg.every, cfg.interval)
	case cfg.width != 0 && cfg.width < minDemoWidth:
		return fmt.Errorf("--width = %d, must be 0 (the terminal's) or at least %d", cfg.width, minDemoWidth)
	}
	return nil
}

func (cfg *demoConfig) run(ctx context.Context, start time.Time, stdout io.Writer) error {

	clk := clock.NewMock()
	clk.Set(start)
	cluster := sim.DemoCluster(start, cfg.seed)
	rhythm, err := addDemoRhythm(cluster, start) // demo_rhythm.go
	if err != nil {
		return err
	}
	collector, err := scaler.NewCollector(scaler.Config{Source: cluster, Interval: cfg.interval, Clock: clk, ForgetAfter: 24 * time.Hour, MaxStaleness: 4 * cfg.interval})
	if err != nil {
		return err
	}
	srv := externalscaler.NewServer(collector, externalscaler.Config{Clock: clk})
	g := externalscaler.NewGRPCServer(srv, collector.Ready(), externalscaler.GRPCConfig{Logger: slog.New(slog.DiscardHandler)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go g.Serve(lis)
	defer g.Stop()
	defer srv.Shutdown()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	keda := pb.NewExternalScalerClient(conn)

	// RPCs run to completion; ctx (Ctrl-C) only ends the loop.
	rpc := context.WithoutCancel(ctx)
	rows, err := demoRows(rpc, keda, cluster, lis.Addr().String(), start, rhythm)
	if err != nil {
		return err
	}
	// Escape codes only ever go to a terminal.
	terminal := isTerminal(stdout)
	live := cfg.table != "off" && terminal
	width := cfg.width
	if width == 0 {
		width = terminalWidth(stdout)
	}
	header := demoHeader(len(rows), lis.Addr().String(), cfg.interval, cfg.duration, cfg.speed)
	fmt.Fprint(stdout, header+"\n")

	traffic := make(map[string]sim.Traffic)
	for _, w := range cluster.Workloads() {
		traffic[w.Key.String()] = w.Traffic
	}
	end := start.Add(cfg.duration)
	nextTable := start.Add(cfg.every)
	pace := time.NewTicker(time.Hour)
	if cfg.speed > 0 {
		pace.Reset(time.Duration(float64(cfg.interval) / cfg.speed))
	}
	defer pace.Stop()
	interrupted := false
loop:
	for clk.Now().Before(end) {
		if cfg.speed > 0 {
			select {
			case <-ctx.Done():
				interrupted = true
				break loop
			case <-pace.C:
			}
		} else if ctx.Err() != nil {
			interrupted = true
			break
		}
		prev := clk.Now()
		clk.Add(cfg.interval)
		collector.Refresh(rpc)
		now := clk.Now()
		for _, r := range rows {
			r.arrive(traffic[r.spec.Key.String()], collector, *cfg, prev, now)
			if err := r.poll(rpc, keda, *cfg, now); err != nil {
				return err
			}
			r.woke(collector, *cfg, now)
			r.followed()
			r.account(cfg.interval)
			if err := cluster.SetReplicas(r.spec.Key, r.replicas); err != nil {
				return err
			}
		}
		switch {
		case live:
			// The header stays on screen above the table.
			fmt.Fprint(stdout, "\033[H\033[2J"+header+"\n")
			writeDemoTable(stdout, rows, now, start, width)
		case cfg.table != "off" && !now.Before(nextTable):
			writeDemoTable(stdout, rows, now, start, width)
			fmt.Fprintln(stdout)
			nextTable = nextTable.Add(cfg.every)
		}
	}
	if interrupted {
		fmt.Fprintf(stdout, "\ninterrupted after %s of simulated time\n", clk.Now().Sub(start))
	}
	writeDemoSummary(stdout, rows, clk.Now().Sub(start), cluster)
	writeDemoPreWakes(stdout, rows)
	writeDemoServers(stdout, rows, clk.Now(), cluster)
	writeDemoWakes(stdout, rows, *cfg)
	return nil
}

// demoRows builds one ScaledObject per demo workload and asks ebb for its
// metric spec, as KEDA does when a ScaledObject is created.
func demoRows(ctx context.Context, keda pb.ExternalScalerClient, cluster *sim.Cluster, addr string, now time.Time, extra ...sim.DemoSpec) ([]*demoRow, error) {
	var rows []*demoRow
	for _, spec := range append(sim.DemoSpecs(), extra...) {
		md := map[string]string{
			"scalerAddress": addr,
			"signal":        string(spec.Signal),
			"target":        strconv.FormatFloat(spec.Target, 'g', -1, 64),
			"activation":    strconv.FormatFloat(spec.Activation, 'g', -1, 64),
			"window":        spec.Window.String(),
		}
		if v := demoIdleAfter(spec); v != "" {
			md["idleAfter"] = v
		}
		if spec.Server != "" {
			md["server"] = string(spec.Server)
		}
		ref := &pb.ScaledObjectRef{Name: spec.Key.Name, Namespace: spec.Key.Namespace, ScalerMetadata: md}
		if _, err := keda.GetMetricSpec(ctx, ref); err != nil {
			return nil, fmt.Errorf("GetMetricSpec %s: %w", spec.Key, err)
		}
		replicas, _ := cluster.Replicas(spec.Key)
		rows = append(rows, &demoRow{spec: spec, ref: ref, replicas: replicas, active: true, lastActive: now, peak: replicas})
	}
	return rows, nil
}

// poll does what KEDA and the HPA do for one ScaledObject in one polling
// interval: IsActive decides between zero and the HPA; GetMetrics feeds the
// HPA's formula; a workload goes to zero only after cooldown of inactivity.
func (r *demoRow) poll(ctx context.Context, keda pb.ExternalScalerClient, cfg demoConfig, now time.Time) error {
	act, err := keda.IsActive(ctx, r.ref)
	if status.Code(err) == codes.Unavailable {
		// ebb does not know: KEDA keeps the replicas as they are.
		r.err = status.Convert(err).Message()
		return nil
	}
	if err != nil {
		return fmt.Errorf("IsActive %s: %w", r.spec.Key, err)
	}
	r.active = act.Result
	r.everActive = r.everActive || act.Result
	r.err = ""
	if m, err := keda.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r.ref}); err != nil {
		r.err = err.Error() // KEDA would log it and keep the replicas
	} else if len(m.MetricValues) == 1 {
		r.value = m.MetricValues[0].MetricValueFloat
	}
	hpa := scaler.HPA{Target: r.spec.Target, MinReplicas: r.spec.MinReplicas, MaxReplicas: r.spec.MaxReplicas, Tolerance: 0.1}
	before := r.replicas
	switch {
	case r.active:
		r.lastActive = now
		if r.err == "" || r.replicas == 0 {
			r.replicas = hpa.Desired(r.value, true, r.replicas)
		}
	case now.Sub(r.lastActive) >= cfg.cooldown:
		r.replicas = hpa.Desired(r.value, false, r.replicas)
	case r.replicas > 0 && r.err == "":
		// Inactive within the cooldown: the HPA keeps scaling, at least 1.
		r.replicas = hpa.Desired(r.value, true, r.replicas)
	}
	if r.replicas != before {
		r.scales++
		if before == 0 {
			r.scaledUp()
		}
	}
	return nil
}

func (r *demoRow) account(step time.Duration) {
	s := step.Seconds()
	r.replicaSeconds += float64(r.replicas) * s
	r.peak = max(r.peak, r.replicas)
	if r.replicas == 0 {
		r.zeroSeconds += s
	}
}

// minDemoWidth is the narrowest table: its columns before NOTE, and a
// few characters of NOTE.
const minDemoWidth = 80

// demoHeader says what the demo runs, in lines that fit 80 columns.
func demoHeader(workloads int, addr string, interval, duration time.Duration, speed float64) string {
	pace := fmt.Sprintf("at %gx", speed)
	if speed == 0 {
		pace = "as fast as possible"
	}
	return fmt.Sprintf("ebb demo: %d simulated workloads; ebb's gRPC server on %s\n"+
		"KEDA's generated client polls it every %s of simulated time;\n"+
		"%s of simulated time, %s\n", workloads, addr, interval, duration, pace)
}

// demoValue formats a value, never as -0.00.
func demoValue(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if s == "-0.00" {
		return "0.00"
	}
	return s
}

// note says in n characters at most what a row's workload is, or why it
// is inactive or unknown.
func (r *demoRow) note(now time.Time, n int) string {
	switch {
	case r.err != "":
		return cut("unknown: "+r.err, n)
	case r.active:
		return cut(r.spec.About, n)
	case !r.everActive && n >= len("never active: idle at once"):
		return "never active: idle at once"
	case !r.everActive:
		return cut("never active", n)
	}
	// 15m0s reads as 15m; 1h0m0s as 1h0m.
	return "idle " + strings.TrimSuffix(now.Sub(r.lastActive).Round(time.Minute).String(), "0s")
}

// cut shortens s to n characters, with "..." at the end when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 3 {
		return s[:max(n, 0)]
	}
	return s[:n-3] + "..."
}

// demoTableColumns is the width of a table row before NOTE.
const demoTableColumns = 24 + 1 + 8 + 1 + 8 + 1 + 6 + 1 + 8 + 1 + 6 + 2

func writeDemoTable(w io.Writer, rows []*demoRow, now, start time.Time, width int) {
	fmt.Fprintf(w, "simulated %s  (+%s)\n", now.Format("2006-01-02 15:04"), now.Sub(start))
	fmt.Fprintf(w, "%-24s %-8s %8s %6s %8s %6s  %s\n", "WORKLOAD", "SIGNAL", "VALUE", "TARGET", "REPLICAS", "ACTIVE", "NOTE")
	for _, r := range rows {
		note := r.note(now, width-demoTableColumns)
		fmt.Fprintf(w, "%-24s %-8s %8s %6g %4d/%-3d %6v  %s\n",
			cut(r.spec.Key.String(), 24), r.spec.Signal, demoValue(r.value), r.spec.Target, r.replicas, r.spec.MaxReplicas, r.active, note)
	}
}

func writeDemoSummary(w io.Writer, rows []*demoRow, elapsed time.Duration, cluster *sim.Cluster) {
	hours := elapsed.Hours()
	fmt.Fprintf(w, "\nsummary over %s of simulated time\n", elapsed)
	fmt.Fprintf(w, "%-24s %9s %4s %9s %6s %10s %7s %4s\n", "WORKLOAD", "REPLICA-H", "PEAK", "AT-PEAK-H", "GPU-H", "GPU-H@PEAK", "AT-ZERO", "COLD")
	var rh, ph, gh, gph float64
	for _, r := range rows {
		used := r.replicaSeconds / 3600
		atPeak := float64(r.peak) * hours
		gpus := float64(r.spec.GPUsPerReplica)
		rh, ph, gh, gph = rh+used, ph+atPeak, gh+used*gpus, gph+atPeak*gpus
		fmt.Fprintf(w, "%-24s %9.1f %4d %9.1f %6.1f %10.1f %6.0f%% %4d\n", cut(r.spec.Key.String(), 24), used, r.peak, atPeak,
			used*gpus, atPeak*gpus, 100*r.zeroSeconds/elapsed.Seconds(), r.coldStarts)
	}
	fmt.Fprintf(w, "%-24s %9.1f %4s %9.1f %6.1f %10.1f\n", "total", rh, "", ph, gh, gph)
	if ph > 0 {
		fmt.Fprintf(w, "\nreplica-hours: %.1f used, %.1f at peak size all the time (%.0f%% saved)\n", rh, ph, 100*(1-rh/ph))
	}
	if gph > 0 {
		fmt.Fprintf(w, "GPU-hours:     %.1f used, %.1f always-on at peak (%.0f%% saved)\n", gh, gph, 100*(1-gh/gph))
	}
	var n int
	for _, c := range cluster.Queries() {
		n += c
	}
	fmt.Fprintf(w, "store queries: %d batched queries for %d workloads (%d shapes per tick)\n", n, len(rows), len(cluster.Queries()))
}

// writeDemoServers compares the LLM workloads that replay the same trace
// on the same batching server, scaled on the server's own signal and on
// GPU utilization: the replica-hours each used, and how long requests
// waited for a place in the batch.
func writeDemoServers(w io.Writer, rows []*demoRow, now time.Time, cluster *sim.Cluster) {
	byKey := map[string]*demoRow{}
	for _, r := range rows {
		byKey[r.spec.Key.String()] = r
	}
	header := false
	for _, r := range rows {
		twin, ok := byKey[r.spec.SameTraceAs.String()]
		if !ok || r.spec.Signal == queries.SignalGPU {
			continue // each pair once, from its model-server side
		}
		if !header {
			fmt.Fprintf(w, "\nmodel servers: the same trace on the server's signal and on GPU utilization\n")
			fmt.Fprintf(w, "%-24s %-8s %9s %4s %13s %9s\n", "WORKLOAD", "SIGNAL", "REPLICA-H", "PEAK", "TIME-WAITING", "MEAN-WAIT")
			header = true
		}
		var used [2]float64
		for i, x := range []*demoRow{r, twin} {
			st, _ := cluster.Serving(x.spec.Key, now)
			waiting := 0.0
			if st.Seconds > 0 {
				waiting = 100 * st.WaitingSeconds / st.Seconds
			}
			used[i] = x.replicaSeconds / 3600
			fmt.Fprintf(w, "%-24s %-8s %9.1f %4d %12.0f%% %9s\n", cut(x.spec.Key.String(), 24), x.spec.Signal, used[i], x.peak,
				waiting, st.MeanWait.Round(10*time.Millisecond))
		}
		if used[1] > 0 {
			fmt.Fprintf(w, "  %s: %.0f%% of the replica-hours of GPU-utilization scaling\n", r.spec.Signal, 100*used[0]/used[1])
		}
	}
	if header {
		fmt.Fprintln(w, "  (TIME-WAITING: share of time with at least one request waiting for the batch)")
	}
}

// terminalWidth is w's width when w is a terminal, else 100.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return max(cols, minDemoWidth)
		}
	}
	return 100
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
