package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ebbscale/ebb/queries/storetest"
	"github.com/ebbscale/ebb/scaler"
)

// instance is one `ebb serve` process-alike on a mock clock.
type instance struct {
	clk       *clock.Mock
	client    pb.ExternalScalerClient
	collector *scaler.Collector
	stop      func()
}

// startInstance starts `ebb serve` on a mock clock set at at, against the
// store at promURL, with --idle-after=10m --min-uptime=0s unless flags say
// otherwise (later flags win).
func startInstance(t *testing.T, promURL string, at time.Time, flags ...string) *instance {
	t.Helper()
	in := &instance{clk: clock.NewMock()}
	in.clk.Set(at)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	cols := make(chan *scaler.Collector, 1)
	done := make(chan error, 1)
	stderr := &syncBuffer{}
	go func() {
		args := append([]string{"--prometheus-url=" + promURL, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0",
			"--interval=5s", "--log-format=text", "--idle-after=10m", "--min-uptime=0s"}, flags...)
		done <- runServe(ctx, args, stderr,
			serveDeps{clock: in.clk, getenv: func(string) string { return "" }, kickGap: -1, // no pacing: the mock clock stands still while the test registers
				listening: func(g, _ string) { addrs <- g },
				started:   func(c *scaler.Collector) { cols <- c }})
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("ebb serve exited: %v\n%s", err, stderr)
	}
	in.collector = <-cols
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	in.client = pb.NewExternalScalerClient(conn)
	stopped := false
	in.stop = func() {
		if stopped {
			return
		}
		stopped = true
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ebb serve: %v\n%s", err, stderr)
		}
	}
	t.Cleanup(in.stop)
	return in
}

// advance moves the mock clock to at and waits for the tick that evaluates
// at (the collector ticks every 5s of mock time).
func (in *instance) advance(t *testing.T, at time.Time) {
	t.Helper()
	for in.collector.Snapshot().At.Before(at) {
		changed := in.collector.Changed()
		if in.clk.Now().Before(at) {
			in.clk.Set(at)
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Second):
			t.Fatalf("no tick evaluating %v (last %v)", at, in.collector.Snapshot().At)
		}
	}
}

// describe lists the collector's observations, for failure messages.
func (in *instance) describe() string {
	var b strings.Builder
	snap := in.collector.Snapshot()
	fmt.Fprintf(&b, "snapshot at %v:\n", snap.At.Sub(storetest.Epoch))
	for _, o := range snap.Observations() {
		fmt.Fprintf(&b, "  %+v\n", o)
	}
	return b.String()
}

func (in *instance) isActive(t *testing.T, ref *pb.ScaledObjectRef) bool {
	t.Helper()
	r, err := in.client.IsActive(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.Result
}

// TestRestartKeepsIdleClock restarts ebb halfway through a workload's idle
// period: the new instance recovers the last activity from the store and
// shuts the workload down at the original time, not a full idle period
// after its own start, and not at once.
func TestRestartKeepsIdleClock(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: e2eHistory()})
	wave := soRef("shop", "wave", map[string]string{"signal": "requests", "target": "5"})

	// wave's counter grows until +31m. In Prometheus 2.x rate(x[1m]) at t
	// covers [t-1m, t], so the rate is positive until +31m45s and 0 from
	// +32m; with --idle-after=10m the workload is idle from +42m at the
	// latest. Recovery works on a grid of 15s steps and counts from the end
	// of the last active step: it may answer idle up to a step later than
	// that, never earlier than +41m45s.
	notBefore := evalAt.Add(11*time.Minute + 45*time.Second)
	idleBy := evalAt.Add(12*time.Minute + 15*time.Second)

	first := startInstance(t, prom.URL, evalAt)
	if !first.isActive(t, wave) {
		t.Fatal("wave inactive while it has traffic")
	}
	first.advance(t, evalAt)
	if !first.isActive(t, wave) {
		t.Fatal("wave inactive at +30m")
	}
	first.stop()

	// Restarted at +36m, halfway through the idle period.
	second := startInstance(t, prom.URL, evalAt.Add(6*time.Minute))
	second.isActive(t, wave)                     // KEDA asks: the trigger registers
	second.advance(t, evalAt.Add(6*time.Minute)) // the refresh it asks for
	second.advance(t, evalAt.Add(6*time.Minute+5*time.Second))
	if !second.isActive(t, wave) {
		t.Fatal("restarted ebb answered idle at +36m: it must recover the last activity (+31m45s), not start from nothing")
	}
	second.advance(t, notBefore.Add(-5*time.Second))
	if !second.isActive(t, wave) {
		t.Fatalf("idle before %v", notBefore.Sub(storetest.Epoch))
	}
	second.advance(t, idleBy)
	if second.isActive(t, wave) {
		t.Fatalf("still active at %v: the restart must not restart the idle period\n%s", idleBy.Sub(storetest.Epoch), second.describe())
	}
}

// TestRestartAtZeroNeverWakes restarts ebb while a workload is idle and at
// zero: KEDA's first calls to the new instance, a poll and a push stream
// opened at once, must never see true. The first call waits for the
// trigger's first collection (and the idle clock's recovery from the
// store), and the stream sends its first message only then.
func TestRestartAtZeroNeverWakes(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: e2eHistory()})
	// wave's traffic ends at +31m45s; with --idle-after=10m it is idle from
	// +42m at the latest. ebb restarts at +50m.
	wave := soRef("shop", "wave", map[string]string{"signal": "requests", "target": "5"})
	nobody := soRef("shop", "nobody", map[string]string{"signal": "requests", "target": "5"})
	at := evalAt.Add(20 * time.Minute)
	in := startInstance(t, prom.URL, at)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := make(map[string]pb.ExternalScaler_StreamIsActiveClient)
	for _, ref := range []*pb.ScaledObjectRef{wave, nobody} {
		s, err := in.client.StreamIsActive(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		streams[ref.Name] = s
	}
	for _, ref := range []*pb.ScaledObjectRef{wave, nobody} {
		r, err := in.client.IsActive(context.Background(), ref)
		if err != nil || r.Result {
			t.Fatalf("first IsActive of %s after the restart: %v, %v; want false\n%s", ref.Name, r, err, in.describe())
		}
		m, err := in.client.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref})
		if err != nil || m.MetricValues[0].MetricValueFloat != 0 {
			t.Fatalf("first GetMetrics of %s after the restart: %v, %v; want 0", ref.Name, m, err)
		}
	}
	for name, s := range streams {
		r, err := s.Recv()
		if err != nil || r.Result {
			t.Fatalf("first message of %s's stream after the restart: %v, %v; want false", name, r, err)
		}
	}
	// Ten more ticks: nothing changes, and nothing is pushed.
	pushed := make(chan string, 2)
	for name, s := range streams {
		go func() {
			if r, err := s.Recv(); err == nil {
				pushed <- fmt.Sprintf("%s: %v", name, r.Result)
			}
		}()
	}
	for i := range 10 {
		in.advance(t, at.Add(time.Duration(i+1)*5*time.Second))
		for _, ref := range []*pb.ScaledObjectRef{wave, nobody} {
			if in.isActive(t, ref) {
				t.Fatalf("%s active %ds after the restart", ref.Name, (i+1)*5)
			}
		}
	}
	select {
	case p := <-pushed:
		t.Errorf("a stream pushed after its first message: %s", p)
	default:
	}
}
