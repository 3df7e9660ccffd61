package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// startServer starts this test binary again as the bench server.
func startServer(t *testing.T, cfg ServerConfig) *ServerProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartServer(exe, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return p
}

// TestLoadSmoke runs the harness briefly on a small server: the harness
// works and every answer is right. It measures nothing.
func TestLoadSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process; skipped with -short")
	}
	p := startServer(t, ServerConfig{Workloads: 200, Interval: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunLoad(ctx, LoadConfig{Addr: p.Addr, Workloads: 200, Streams: 200, Conns: 1, Workers: 4, Duration: time.Second, Pid: p.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if res.RPCs == 0 || res.All.Calls != res.RPCs || res.StreamMsgs == 0 {
		t.Errorf("RPCs %d, latencies %d, stream messages %d: want RPCs, one latency each, and stream changes", res.RPCs, res.All.Calls, res.StreamMsgs)
	}
	if res.ServerCPU <= 0 || res.ServerRSS <= 0 {
		t.Errorf("server CPU %v, RSS %d: want both measured", res.ServerCPU, res.ServerRSS)
	}
}

// TestLoadSmokeBaseline runs the harness briefly against the control server:
// it answers every call as the harness expects.
func TestLoadSmokeBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process; skipped with -short")
	}
	p := startServer(t, ServerConfig{Workloads: 50, Baseline: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunLoad(ctx, LoadConfig{Addr: p.Addr, Workloads: 50, Streams: 50, Conns: 1, Workers: 4, Duration: 500 * time.Millisecond, Pid: p.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if res.RPCs == 0 || res.All.Calls != res.RPCs {
		t.Errorf("RPCs %d, latencies %d: want RPCs, one latency each", res.RPCs, res.All.Calls)
	}
}

// TestLoad replays KEDA's call pattern over a real socket against the real
// gRPC server in a child process, at 1,000 and 10,000 workloads, each with
// an open StreamIsActive stream:
//
//   - max: closed loop, 32 polls in flight: the most the two cores serve
//     with the load generator on them too;
//   - 20k: paced at 20,000 RPC/s (the goal), 32 workers: latency at
//     that rate;
//   - keda: paced as KEDA would poll with default settings: each
//     ScaledObject's scale loop every 30 s plus the HPA's fetches through
//     KEDA's metrics adapter every 15 s, 3 polls per 30 s;
//   - idle: one poll a second: what the server costs by itself (ticks,
//     snapshot swaps, and every open stream woken on each tick).
//
// At 1,000 workloads the max and 20k modes run again against the control
// server (1000-baseline), constant answers on a bare gRPC server: the floor
// gRPC-go and this machine set, measured in the same run.
func TestLoad(t *testing.T) {
	requireBench(t)
	dur := 10 * time.Second
	if benchLarge() {
		dur = 30 * time.Second
	}
	type mode struct {
		name    string
		workers int
		rate    float64
	}
	for _, run := range []struct {
		n        int
		baseline bool
	}{{1_000, false}, {1_000, true}, {10_000, false}} {
		n := run.n
		name := fmt.Sprint(n)
		modes := []mode{
			{"max", 32, 0},
			{"20k", 32, 20_000.0 / 3},
			{"keda", 8, float64(n) * 3 / 30},
			{"idle", 1, 1},
		}
		if run.baseline {
			name += "-baseline"
			modes = modes[:2]
		}
		t.Run(name, func(t *testing.T) {
			p := startServer(t, ServerConfig{Workloads: n, Baseline: run.baseline})
			for _, mode := range modes {
				t.Run(mode.name, func(t *testing.T) {
					var thr, p99 []float64
					for range repeats() {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
						res, err := RunLoad(ctx, LoadConfig{Addr: p.Addr, Workloads: n, Streams: n, Conns: 1,
							Workers: mode.workers, Rate: mode.rate, Duration: dur, Pid: p.Pid})
						cancel()
						if err != nil {
							t.Fatal(err)
						}
						record(t, "load.txt", "%s: %s", t.Name(), res)
						for _, m := range pollMethods {
							l := res.ByMethod[m]
							record(t, "load.txt", "    %-13s p50 %s p99 %s p99.9 %s", m, us(l.P50), us(l.P99), us(l.P999))
						}
						thr = append(thr, res.Throughput)
						p99 = append(p99, float64(res.All.P99.Nanoseconds())/1e3)
					}
					if len(thr) > 1 {
						record(t, "load.txt", "%s median of %d: %.0f RPC/s, p99 %.0fµs", t.Name(), len(thr), median(thr), median(p99))
					}
				})
			}
		})
	}
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
