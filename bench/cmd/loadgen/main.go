// Command loadgen replays KEDA's call pattern (GetMetricSpec, GetMetrics and
// IsActive per trigger per poll, plus open StreamIsActive streams) against
// ebb's gRPC server and reports throughput, latency, and the server's CPU
// and memory.
//
// Without -addr it starts its own server, a child process running ebb's real
// collector, external scaler and gRPC server over a synthetic source of
// -workloads workloads:
//
//	go run ./bench/cmd/loadgen -workloads 10000 -duration 30s
//
// With -addr it loads a server that is already running (whose source must
// know workloads 0..N-1 of bench/promdata); -pid names its process so that
// its CPU time and memory can be read from /proc.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/ebbscale/ebb/bench"
)

func main() {
	bench.ServeIfChild()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg bench.LoadConfig
	var interval time.Duration
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", "", "gRPC address of a running server; empty starts one")
	fs.IntVar(&cfg.Pid, "pid", 0, "process of the server at -addr, for its CPU and memory")
	fs.IntVar(&cfg.Workloads, "workloads", 1000, "ScaledObjects polled")
	fs.IntVar(&cfg.Streams, "streams", -1, "open StreamIsActive streams; -1 means one per workload")
	fs.IntVar(&cfg.Conns, "conns", 1, "client connections (KEDA keeps one per scaler address)")
	fs.IntVar(&cfg.Workers, "workers", 8, "polls in flight at once")
	fs.Float64Var(&cfg.Rate, "rate", 0, "polls per second (3 RPCs each); 0 polls as fast as the server answers")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&interval, "interval", time.Second, "collector tick of the server started without -addr")
	var srvCfg bench.ServerConfig
	fs.StringVar(&srvCfg.CPUProfile, "server-cpuprofile", "", "CPU profile file of the server started without -addr")
	fs.StringVar(&srvCfg.MemProfile, "server-memprofile", "", "heap profile file of the server started without -addr, written after the measurement")
	fs.BoolVar(&srvCfg.Baseline, "baseline", false, "start the control server instead of ebb: constant answers on a bare gRPC server, the floor gRPC and the machine set")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if cfg.Streams < 0 {
		cfg.Streams = cfg.Workloads
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var server *bench.ServerProcess
	if cfg.Addr == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		srvCfg.Workloads, srvCfg.Interval = cfg.Workloads, interval
		p, err := bench.StartServer(exe, srvCfg)
		if err != nil {
			return err
		}
		defer p.Stop()
		server = p
		cfg.Addr, cfg.Pid = p.Addr, p.Pid
	}
	if server != nil && srvCfg.MemProfile != "" {
		cfg.Measured = func() {
			if err := server.WriteHeapProfile(); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: heap profile:", err)
			}
		}
	}
	res, err := bench.RunLoad(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println(res)
	for _, m := range []string{"GetMetricSpec", "GetMetrics", "IsActive"} {
		l := res.ByMethod[m]
		fmt.Printf("  %-13s %8d calls  p50 %6.0fµs  p99 %6.0fµs  p99.9 %6.0fµs  max %6.0fµs\n",
			m, l.Calls, micro(l.P50), micro(l.P99), micro(l.P999), micro(l.Max))
	}
	return nil
}

func micro(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
