package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/externalscaler"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// ServerConfig configures the ebb server the load harness runs against: the
// real collector, external scaler and gRPC server of `ebb serve`, with a
// synthetic source in place of Prometheus.
type ServerConfig struct {
	// Workloads is how many workloads the source has values for.
	Workloads int `json:"workloads"`
	// Interval is the collector's tick; default 1s, five times `ebb serve`'s
	// default, so that snapshot swaps and stream wake-ups weigh more.
	Interval time.Duration `json:"interval"`
	// FlipPerTick is how many workloads go to zero traffic each tick (and
	// come back three ticks later), so that open streams see changes;
	// default Workloads/100.
	FlipPerTick int `json:"flipPerTick"`
	// CPUProfile and MemProfile, when set, are files the server process
	// writes its CPU profile (while it runs) and heap profile (when
	// ServerProcess.WriteHeapProfile asks) to.
	CPUProfile string `json:"cpuProfile,omitempty"`
	MemProfile string `json:"memProfile,omitempty"`
	// Baseline serves the control instead of ebb: constant answers on a
	// bare gRPC server (see baseline).
	Baseline bool `json:"baseline,omitempty"`
}

func (c *ServerConfig) setDefaults() {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.FlipPerTick == 0 {
		c.FlipPerTick = max(1, c.Workloads/100)
	}
}

// SyntheticValue is workload i's value while it has traffic; each tick a
// band of workloads answers 0 instead (see ServerConfig.FlipPerTick).
func SyntheticValue(i int) float64 { return 1 + promdata.RequestRate(i) }

// synthetic is a Source of requests values for workloads 0..n-1.
type synthetic struct {
	n, flip int
	mu      sync.Mutex
	tick    int
}

var _ queries.Source = (*synthetic)(nil)

func (s *synthetic) Instant(_ context.Context, shape queries.Shape, _ time.Time) ([]queries.Sample, error) {
	if shape.Signal != queries.SignalRequests {
		return nil, nil
	}
	s.mu.Lock()
	s.tick++
	lo := s.tick * s.flip
	s.mu.Unlock()
	out := make([]queries.Sample, s.n)
	for i := range out {
		v := SyntheticValue(i)
		if d := ((i-lo)%s.n + s.n) % s.n; d < 3*s.flip {
			v = 0
		}
		out[i] = queries.Sample{Workload: queries.WorkloadKey{Namespace: promdata.Namespace(i), Name: promdata.Name(i)}, Value: v}
	}
	return out, nil
}

// Serve runs ebb's gRPC server on lis until ctx ends, answering from a
// collector that ticks over a synthetic source.
func Serve(ctx context.Context, lis net.Listener, cfg ServerConfig) error {
	cfg.setDefaults()
	if cfg.Workloads < 1 {
		return fmt.Errorf("workloads = %d, must be positive", cfg.Workloads)
	}
	reg := prometheus.NewRegistry()
	collector, err := scaler.NewCollector(scaler.Config{
		Source:   &synthetic{n: cfg.Workloads, flip: cfg.FlipPerTick},
		Interval: cfg.Interval,
		// Short enough that flipped workloads go idle and streams send.
		Policy:  shutdown.Policy{IdleAfter: cfg.Interval, MinUptime: cfg.Interval},
		Metrics: scaler.NewMetrics(reg),
	})
	if err != nil {
		return err
	}
	srv := externalscaler.NewServer(collector, externalscaler.Config{})
	g := externalscaler.NewGRPCServer(srv, collector.Ready(), externalscaler.GRPCConfig{Registry: reg})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	go collector.Run(ctx)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	srv.Shutdown()
	g.Stop()
	return err
}

// serverEnv carries a ServerConfig, as JSON, to a child process.
const serverEnv = "EBB_BENCH_SERVER"

// ServeIfChild runs the server and exits when this process was started by
// StartServer; otherwise it returns at once. Call it first thing in main
// or TestMain.
func ServeIfChild() {
	raw, ok := os.LookupEnv(serverEnv)
	if !ok {
		return
	}
	var cfg ServerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		// The parent holds our stdin: "heap" asks for a heap profile; when it
		// closes it (or dies), stop.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "heap" && cfg.MemProfile != "" {
				if err := writeHeapProfile(cfg.MemProfile); err != nil {
					fmt.Fprintln(os.Stderr, "bench server:", err)
				}
			}
		}
		stop()
	}()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
	}
	fmt.Println(lis.Addr().String())
	if cfg.Baseline {
		err = serveBaseline(ctx, lis)
	} else {
		err = Serve(ctx, lis, cfg)
	}
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// writeHeapProfile writes the heap profile to path, and what the runtime's
// memory is made of to stderr.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Fprintf(os.Stderr, "bench server: %d goroutines; heap in use %.1f MiB, stacks %.1f MiB, total from the OS %.1f MiB\n",
		runtime.NumGoroutine(), float64(m.HeapInuse)/(1<<20), float64(m.StackInuse)/(1<<20), float64(m.Sys)/(1<<20))
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ServerProcess is the bench server running as a child process, so that its
// CPU time and memory can be measured apart from the load's.
type ServerProcess struct {
	Addr  string
	Pid   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// StartServer starts exe (a binary that calls ServeIfChild, such as the
// running test binary or loadgen) as the bench server and waits until it
// listens.
func StartServer(exe string, cfg ServerConfig) (*ServerProcess, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serverEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &ServerProcess{Pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case addr, ok := <-lines:
		if ok && strings.HasPrefix(addr, "127.0.0.1:") {
			p.Addr = addr
			return p, nil
		}
		p.Stop()
		return nil, fmt.Errorf("bench server printed %q, want its address", addr)
	case <-time.After(30 * time.Second):
		p.Stop()
		return nil, errors.New("bench server did not listen within 30s")
	}
}

// WriteHeapProfile asks the server to write its heap profile to
// ServerConfig.MemProfile, and waits a moment for it to be written.
func (p *ServerProcess) WriteHeapProfile() error {
	if _, err := io.WriteString(p.stdin, "heap\n"); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // a GC and a write
	return nil
}

// Stop ends the server and waits for it.
func (p *ServerProcess) Stop() error {
	p.stdin.Close()
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		return fmt.Errorf("bench server did not stop within 10s: %v", <-p.done)
	}
}
