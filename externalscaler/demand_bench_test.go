package externalscaler

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// BenchmarkHeldPush measures what #13 asks to be within 50 ms: from the
// activator's first held request (Collector.Pending) to KEDA's
// StreamIsActive client receiving true, over a real loopback socket, with
// no tick in between. Each iteration wakes an idle workload and lets it go
// idle again (idleAfter 1s, min-uptime 0, on a mock clock).
func BenchmarkHeldPush(b *testing.B) {
	src := &queriestest.FakeSource{}
	clk := clock.NewMock()
	clk.Set(t0)
	c, err := scaler.NewCollector(scaler.Config{Source: src, Interval: 5 * time.Second, Clock: clk,
		Policy: shutdown.Policy{IdleAfter: time.Second}})
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(c, Config{Clock: clk, FirstWait: time.Millisecond})
	g := NewGRPCServer(srv, c.Ready(), GRPCConfig{Registry: prometheus.NewRegistry()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	defer srv.Shutdown()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := queries.WorkloadKey{Namespace: "shop", Name: "cart"}
	stream, err := pb.NewExternalScalerClient(conn).StreamIsActive(ctx, ref("cart", map[string]string{"signal": "requests", "target": "10"}))
	if err != nil {
		b.Fatal(err)
	}
	tick := func() {
		clk.Add(5 * time.Second)
		c.Refresh(context.Background())
	}
	recv := func(want bool) {
		r, err := stream.Recv()
		if err != nil || r.Result != want {
			b.Fatalf("stream: %v, %v; want %v", r, err, want)
		}
	}
	in := c.Register(reqShape, w, 0, 0) // the stream's own interest: same key
	for c.Snapshot().Activity(in) == scaler.Unseen {
		tick()
	}
	recv(false)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		c.Pending(w, 1)
		recv(true)
		lat = append(lat, time.Since(start))
		c.Pending(w, 0)
		tick() // the demand keeps it up for idleAfter (1s) past the tick that saw it
		tick()
		recv(false)
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
