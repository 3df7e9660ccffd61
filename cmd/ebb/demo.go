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
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/externalscaler"
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
}

func demoFlags(c *demoConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.DurationVar(&c.duration, "duration", 3*time.Hour, "simulated time to run")
	fs.Float64Var(&c.speed, "speed", 600, "simulated seconds per real second (0: as fast as possible)")
	fs.DurationVar(&c.interval, "interval", 15*time.Second, "simulated time between ebb's ticks, which is also KEDA's polling interval here (serve's --interval, also EBB_INTERVAL, is real time)")
	fs.DurationVar(&c.cooldown, "cooldown", 5*time.Minute, "KEDA's cooldownPeriod: how long a workload must be inactive before it goes to zero")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the simulated bursts")
	fs.StringVar(&c.start, "start", "2026-11-16T08:00:00Z", "simulated start time (RFC 3339)")
	fs.StringVar(&c.table, "table", "auto", "live table: auto (redraw on a terminal, print every --table-every otherwise), always, off")
	fs.DurationVar(&c.every, "table-every", 15*time.Minute, "simulated time between tables when not redrawing in place")
	return fs
}

// demoRow is one workload's state in the KEDA-like loop.
type demoRow struct {
	spec       sim.DemoSpec
	ref        *pb.ScaledObjectRef
	replicas   int
	value      float64
	active     bool
	err        string
	lastActive time.Time

	replicaSeconds, peakSeconds float64
	peak, coldStarts, scales    int
	zeroSeconds                 float64
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
	case cfg.table != "auto" && cfg.table != "always" && cfg.table != "off":
		return fmt.Errorf("--table %q: want auto, always or off", cfg.table)
	case cfg.every < cfg.interval:
		return fmt.Errorf("--table-every = %s, must be at least --interval (%s)", cfg.every, cfg.interval)
	}
	return nil
}

func (cfg *demoConfig) run(ctx context.Context, start time.Time, stdout io.Writer) error {

	clk := clock.NewMock()
	clk.Set(start)
	cluster := sim.DemoCluster(start, cfg.seed)
	collector, err := scaler.NewCollector(scaler.Config{Source: cluster, Interval: cfg.interval, Clock: clk, ForgetAfter: 24 * time.Hour})
	if err != nil {
		return err
	}
	srv := externalscaler.NewServer(collector, externalscaler.Options{Clock: clk, MaxStaleness: 4 * cfg.interval})
	g := externalscaler.NewGRPCServer(srv, collector.Ready(), externalscaler.GRPCOptions{Logger: slog.New(slog.DiscardHandler)})
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
	rows, err := demoRows(rpc, keda, cluster, lis.Addr().String(), start)
	if err != nil {
		return err
	}
	live := cfg.table == "always" || (cfg.table == "auto" && isTerminal(stdout))
	fmt.Fprintf(stdout, "ebb demo: %d simulated workloads, ebb's gRPC server on %s, KEDA's generated client polling every %s of simulated time, %s simulated at %gx\n\n",
		len(rows), lis.Addr(), cfg.interval, cfg.duration, cfg.speed)

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
		clk.Add(cfg.interval)
		collector.Refresh(rpc)
		now := clk.Now()
		for _, r := range rows {
			if err := r.poll(rpc, keda, *cfg, now); err != nil {
				return err
			}
			r.account(cfg.interval)
			if err := cluster.SetReplicas(r.spec.Key, r.replicas); err != nil {
				return err
			}
		}
		switch {
		case live:
			fmt.Fprint(stdout, "\033[H\033[2J")
			writeDemoTable(stdout, rows, now, start)
		case cfg.table != "off" && !now.Before(nextTable):
			writeDemoTable(stdout, rows, now, start)
			fmt.Fprintln(stdout)
			nextTable = nextTable.Add(cfg.every)
		}
	}
	if interrupted {
		fmt.Fprintf(stdout, "\ninterrupted after %s of simulated time\n", clk.Now().Sub(start))
	}
	writeDemoSummary(stdout, rows, clk.Now().Sub(start), cluster)
	return nil
}

// demoRows builds one ScaledObject per demo workload and asks ebb for its
// metric spec, as KEDA does when a ScaledObject is created.
func demoRows(ctx context.Context, keda pb.ExternalScalerClient, cluster *sim.Cluster, addr string, now time.Time) ([]*demoRow, error) {
	var rows []*demoRow
	for _, spec := range sim.DemoSpecs() {
		md := map[string]string{
			"scalerAddress": addr,
			"signal":        string(spec.Signal),
			"target":        strconv.FormatFloat(spec.Target, 'g', -1, 64),
			"activation":    strconv.FormatFloat(spec.Activation, 'g', -1, 64),
			"window":        spec.Window.String(),
		}
		if spec.IdleAfter > 0 {
			md["idleAfter"] = spec.IdleAfter.String()
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
			r.coldStarts++
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

func writeDemoTable(w io.Writer, rows []*demoRow, now, start time.Time) {
	fmt.Fprintf(w, "simulated %s  (+%s)\n", now.Format("2006-01-02 15:04"), now.Sub(start))
	fmt.Fprintf(w, "%-26s %-9s %10s %8s %9s %7s  %s\n", "WORKLOAD", "SIGNAL", "VALUE", "TARGET", "REPLICAS", "ACTIVE", "NOTE")
	for _, r := range rows {
		note := r.spec.About
		if r.err != "" {
			note = "GetMetrics: " + r.err
		}
		if len(note) > 60 {
			note = note[:57] + "..."
		}
		fmt.Fprintf(w, "%-26s %-9s %10.2f %8g %5d/%-3d %7v  %s\n",
			r.spec.Key, r.spec.Signal, r.value, r.spec.Target, r.replicas, r.spec.MaxReplicas, r.active, note)
	}
}

func writeDemoSummary(w io.Writer, rows []*demoRow, elapsed time.Duration, cluster *sim.Cluster) {
	hours := elapsed.Hours()
	fmt.Fprintf(w, "\nsummary over %s of simulated time\n", elapsed)
	fmt.Fprintf(w, "%-26s %9s %9s %9s %11s %12s %7s %6s\n", "WORKLOAD", "REPLICA-H", "PEAK", "AT-PEAK-H", "GPU-H", "GPU-H@PEAK", "AT-ZERO", "COLD")
	var rh, ph, gh, gph float64
	for _, r := range rows {
		used := r.replicaSeconds / 3600
		atPeak := float64(r.peak) * hours
		gpus := float64(r.spec.GPUsPerReplica)
		rh, ph, gh, gph = rh+used, ph+atPeak, gh+used*gpus, gph+atPeak*gpus
		fmt.Fprintf(w, "%-26s %9.1f %9d %9.1f %11.1f %12.1f %6.0f%% %6d\n", r.spec.Key, used, r.peak, atPeak,
			used*gpus, atPeak*gpus, 100*r.zeroSeconds/elapsed.Seconds(), r.coldStarts)
	}
	fmt.Fprintf(w, "%-26s %9.1f %9s %9.1f %11.1f %12.1f\n", "total", rh, "", ph, gh, gph)
	if ph > 0 {
		fmt.Fprintf(w, "\nreplica-hours: %.1f used, %.1f if every workload ran at its peak size all the time (%.0f%% saved)\n", rh, ph, 100*(1-rh/ph))
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

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
